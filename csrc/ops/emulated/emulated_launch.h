// What the host emulation of the CUDA kernels needs of CUDA's execution model beyond ops/device/simt.h: a launch's
// configuration check, and a warp's 32 lanes run in lockstep for device::warp_sum.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "ops/descriptors.h"
#include "ops/device/simt.h"

namespace ikd {
namespace emulated {

using device::kWarp;

// The multiprocessor count of the emulated device, checked.
inline int emulated_sms(const char* op, int64_t sms) {
  TORCH_CHECK(sms >= 1 && sms <= 65535, op, ": sms must lie in [1, 65535] (got ", sms, ")");
  return static_cast<int>(sms);
}

// A launch CUDA would refuse ("invalid configuration argument") fails here too.
inline void check_launch(const char* kernel, int64_t grid_x, int64_t grid_y, int threads) {
  TORCH_CHECK(grid_x >= 1 && grid_x <= device::kMaxGridX && grid_y >= 1 && grid_y <= device::kMaxGridY &&
                  threads >= 1 && threads <= 1024,
              "emulated launch of ", kernel, ": invalid configuration argument (grid ", grid_x, " x ", grid_y, ", ",
              threads, " threads per block)");
}

// The values of one warp's 32 lanes.
template <typename T>
struct Lanes {
  T v[kWarp];
  Lanes& operator+=(const Lanes& o) {
    for (int l = 0; l < kWarp; ++l) v[l] += o.v[l];
    return *this;
  }
};

// __shfl_down_sync(0xffffffff, v, o): lane l receives lane l + o's value, its own where l + o >= 32.
template <typename T>
Lanes<T> shfl_down(const Lanes<T>& a, int o) {
  Lanes<T> r;
  for (int l = 0; l < kWarp; ++l) r.v[l] = l + o < kWarp ? a.v[l + o] : a.v[l];
  return r;
}

}  // namespace emulated
}  // namespace ikd

// The pieces of CUDA's execution model the kernels use, written so that the host emulation (ops/emulated) runs
// them too: a thread's place in a launch, the grid-stride loop, and the warp's shuffle-down tree sum.
#pragma once

#include <cstdint>

#include "ops/device/host_device.h"

namespace ikd {
namespace device {

constexpr int kWarp = 32;

// One thread's place along x: blockIdx.x, threadIdx.x, blockDim.x, gridDim.x. The device reads CUDA's built-ins, the
// emulation its own loops over blocks and threads.
struct ThreadPos {
  uint32_t block, thread, block_dim, grid_dim;
};

#if defined(__CUDACC__)
__device__ __forceinline__ ThreadPos thread_pos_x() { return {blockIdx.x, threadIdx.x, blockDim.x, gridDim.x}; }
#endif

// A grid-stride loop: i = grid_start(t), then every grid_stride(t) on, while i < n.
template <typename index_t>
IKD_HD index_t grid_start(const ThreadPos& t) {
  return t.block * static_cast<index_t>(t.block_dim) + t.thread;
}

template <typename index_t>
IKD_HD index_t grid_stride(const ThreadPos& t) {
  return static_cast<index_t>(t.grid_dim) * t.block_dim;
}

template <typename index_t, typename Body>
IKD_HD void grid_stride_loop(const ThreadPos& t, index_t n, Body&& body) {
  for (index_t i = grid_start<index_t>(t); i < n; i += grid_stride<index_t>(t)) body(i);
}

#if defined(__CUDACC__)
__device__ __forceinline__ float shfl_down(float v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl_down(double v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
#endif

// Lane 0 of the result is the sum of the warp's 32 values, added in the tree order of __shfl_down_sync. `V` is one
// lane's value on the device, all 32 lanes' values in the emulation (emulated::Lanes); shfl_down(v, o) gives every
// lane the value of lane + o (its own where lane + o >= 32).
template <typename V>
IKD_HD V warp_sum(V v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += shfl_down(v, o);
  return v;
}

}  // namespace device
}  // namespace ikd

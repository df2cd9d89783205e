// Host emulation of the CUDA adv_step (ops/cuda/adv_step_kernel.cu): its two launches for a device with `sms`
// multiprocessors, every block and thread of them, running the kernels' own functions (ops/device/adv_step.h). The
// block reduction keeps CUDA's order of additions: each thread's grid-stride sum, then per warp the shuffle-down tree
// (device::warp_sum on the warp's 32 lanes at once), then the first warp's tree over the warps' sums in shared memory.
// Registered as the CPU op ikd::_emulated_adv_step (schema in emulated_ops.cpp) for the tests.
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>

#include "ops/device/adv_step.h"
#include "ops/emulated/emulated_launch.h"
#include "ops/host.h"

namespace ikd {
namespace device {

// fp16 / bf16 <-> float, rounded to nearest even as __float2half_rn / __float2bfloat16_rn.
template <>
struct Element<c10::Half> {
  static float load(c10::Half v) { return static_cast<float>(v); }
  static c10::Half store(float v) { return c10::Half(v); }
};

template <>
struct Element<c10::BFloat16> {
  static float load(c10::BFloat16 v) { return static_cast<float>(v); }
  static c10::BFloat16 store(float v) { return c10::BFloat16(v); }
};

}  // namespace device

namespace emulated {
namespace {

using device::kAdvThreads;
constexpr int kWarps = kAdvThreads / kWarp;

// l1_partial_kernel, block (bx, by) on sample b: its threads' sums, two warp trees, one partial.
template <typename T, typename acc_t>
acc_t l1_block(const T* grad, int64_t per_sample, uint32_t bx, uint32_t chunks) {
  acc_t warp_sums[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    Lanes<acc_t> lanes;
    for (int l = 0; l < kWarp; ++l) {
      const device::ThreadPos t{bx, static_cast<uint32_t>(w * kWarp + l), kAdvThreads, chunks};
      lanes.v[l] = device::l1_thread_sum<T, acc_t>(grad, per_sample, t);
    }
    warp_sums[w] = device::warp_sum(lanes).v[0];
  }
  Lanes<acc_t> first;
  for (int l = 0; l < kWarp; ++l) first.v[l] = l < kWarps ? warp_sums[l] : acc_t(0);
  return device::warp_sum(first).v[0];
}

template <typename T, typename acc_t>
void emulate_l1_partials(const device::AdvStepDesc& d) {
  const device::Grid2 grid = device::adv_l1_grid(d);
  check_launch("l1_partial_kernel", grid.x, grid.y, kAdvThreads);
  const T* grad = static_cast<const T*>(d.grad);
  auto* partial = static_cast<acc_t*>(d.partial);
  const int64_t per_sample = d.C * d.HW;
  for (int64_t by = 0; by < grid.y; ++by) {
    for (int64_t b = by; b < d.B; b += grid.y) {
      for (int64_t bx = 0; bx < grid.x; ++bx) {
        partial[device::partial_slot(b, static_cast<int>(grid.x), bx)] = l1_block<T, acc_t>(
            grad + b * per_sample, per_sample, static_cast<uint32_t>(bx), static_cast<uint32_t>(grid.x));
      }
    }
  }
}

// adv_update_kernel: every block (bx, by) sums its plane's partials with the first warp, then strides over the plane.
template <typename T, typename acc_t>
void emulate_update(const device::AdvStepDesc& d) {
  const device::Grid2 grid = device::adv_update_grid(d);
  check_launch("adv_update_kernel", grid.x, grid.y, kAdvThreads);
  const auto a = device::make_update<T, acc_t>(d);
  for (int64_t by = 0; by < grid.y; ++by) {
    for (int64_t plane = by; plane < a.planes; plane += grid.y) {
      for (int64_t bx = 0; bx < grid.x; ++bx) {
        Lanes<acc_t> lanes;
        for (int l = 0; l < kWarp; ++l) lanes.v[l] = device::lane_partial_sum(a.partial, plane / a.C, a.chunks, l);
        const auto p = device::plane_step(a, plane, device::warp_sum(lanes).v[0]);
        for (int thread = 0; thread < kAdvThreads; ++thread) {
          const device::ThreadPos t{static_cast<uint32_t>(bx), static_cast<uint32_t>(thread), kAdvThreads,
                                    static_cast<uint32_t>(grid.x)};
          device::grid_stride_loop(t, a.hw, [&](int64_t k) { device::update_element(a, p, plane, k); });
        }
      }
    }
  }
}

void emulate_adv_step(const device::AdvStepDesc& d) {
  device::dispatch_adv_step<c10::Half, c10::BFloat16>(d.dtype, [&](auto t, auto acc) {
    using T = typename decltype(t)::type;
    using acc_t = typename decltype(acc)::type;
    emulate_l1_partials<T, acc_t>(d);
    emulate_update<T, acc_t>(d);
  });
}

std::tuple<at::Tensor, at::Tensor> adv_step(const at::Tensor& x_adv, const at::Tensor& x_clean, const at::Tensor& grad,
                                            const at::Tensor& momentum, const at::Tensor& step_size,
                                            const at::Tensor& eps, const at::Tensor& lo, const at::Tensor& hi,
                                            double decay, int64_t sms) {
  const AdvStepInputs in = adv_step_inputs(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi);
  return adv_step_on_device(in, decay, emulated_sms("emulated adv_step", sms), emulate_adv_step);
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CPU, m) { m.impl("_emulated_adv_step", &adv_step); }

}  // namespace emulated
}  // namespace ikd

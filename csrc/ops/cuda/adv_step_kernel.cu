// CUDA kernels of adv_step, two launches (the op glue and registration are in adv_step_cuda.cpp); their arithmetic is
// ops/device/adv_step.h, which the host emulation (ops/emulated) runs too:
//   1. per-sample partial L1 sums of the gradient: a (chunks, samples) grid, each block writes one partial (no
//      atomics, no memset, deterministic);
//   2. one elementwise pass that sums its sample's partials, normalises the gradient, updates the momentum, takes
//      the sign step and projects onto the eps ball and the per-channel range.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernels.h"
#include "ops/device/adv_step.h"

namespace ikd {
namespace device {

template <>
struct Element<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};

template <>
struct Element<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

}  // namespace device

namespace cuda {
namespace {

using namespace device;

// grid (chunks, samples): partial[partial_slot(b, chunks, chunk)] = sum |grad| over the chunk's share of sample b;
// block row y walks the samples b = y, y + gridDim.y, ...
template <typename T, typename acc_t>
__global__ void l1_partial_kernel(const T* __restrict__ grad, acc_t* __restrict__ partial, int64_t samples,
                                  int64_t per_sample) {
  __shared__ acc_t warp_sums[kAdvThreads / kWarp];
  for (int64_t b = blockIdx.y; b < samples; b += gridDim.y) {
    __syncthreads();  // the previous sample's warp_sums are no longer read
    acc_t s = warp_sum(l1_thread_sum<T, acc_t>(grad + b * per_sample, per_sample, thread_pos_x()));
    if (threadIdx.x % kWarp == 0) warp_sums[threadIdx.x / kWarp] = s;
    __syncthreads();
    if (threadIdx.x < kWarp) {
      s = warp_sum(threadIdx.x < kAdvThreads / kWarp ? warp_sums[threadIdx.x] : acc_t(0));
      if (threadIdx.x == 0) partial[partial_slot(b, gridDim.x, blockIdx.x)] = s;
    }
  }
}

// grid (blocks_x, planes): block row y walks the (sample, channel) planes; threads stride over the plane's pixels.
template <typename T, typename acc_t>
__global__ void adv_update_kernel(Update<T, acc_t> a) {
  __shared__ acc_t norm_s;
  for (int64_t plane = blockIdx.y; plane < a.planes; plane += gridDim.y) {
    __syncthreads();  // the previous plane's norm_s is no longer read
    if (threadIdx.x < kWarp) {
      const acc_t v = warp_sum(lane_partial_sum(a.partial, plane / a.C, a.chunks, threadIdx.x));
      if (threadIdx.x == 0) norm_s = v;
    }
    __syncthreads();
    const PlaneStep<acc_t> p = plane_step(a, plane, norm_s);
    grid_stride_loop(thread_pos_x(), a.hw, [&](int64_t k) { update_element(a, p, plane, k); });
  }
}

}  // namespace

cudaError_t launch_adv_step(const AdvStepDesc& d, cudaStream_t stream) {
  dispatch_adv_step<__half, __nv_bfloat16>(d.dtype, [&](auto t, auto acc) {
    using T = typename decltype(t)::type;
    using acc_t = typename decltype(acc)::type;
    const Grid2 l1 = adv_l1_grid(d), update = adv_update_grid(d);
    l1_partial_kernel<T, acc_t><<<dim3(l1.x, l1.y), kAdvThreads, 0, stream>>>(
        static_cast<const T*>(d.grad), static_cast<acc_t*>(d.partial), d.B, d.C * d.HW);
    adv_update_kernel<T, acc_t><<<dim3(update.x, update.y), kAdvThreads, 0, stream>>>(make_update<T, acc_t>(d));
  });
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace ikd

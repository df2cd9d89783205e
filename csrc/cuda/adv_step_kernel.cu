// CUDA kernels of adv_step, two launches (the op glue and registration are in adv_step_cuda.cpp):
//   1. per-sample partial L1 sums of the gradient: a (chunks, B) grid, each block writes one partial (no atomics,
//      no memset, deterministic);
//   2. one elementwise pass that sums its sample's partials, normalises the gradient, updates the momentum, takes
//      the sign step and projects onto the eps ball and the per-channel range.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels.h"

namespace ikd {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// load/store as the accumulation type (float for fp16/bf16/fp32, double for fp64)
__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ double load(const double* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(double* p, int64_t i, double v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// grid (chunks, B): partial[b * chunks + chunk] = sum |grad| over the chunk's share of sample b.
template <typename T, typename acc_t>
__global__ void l1_partial_kernel(const T* __restrict__ grad, acc_t* __restrict__ partial, int64_t per_sample) {
  __shared__ acc_t warp_sums[kThreads / 32];
  const T* g = grad + static_cast<int64_t>(blockIdx.y) * per_sample;
  acc_t s = 0;
#pragma unroll 4
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < per_sample;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    s += std::abs(load(g, i));
  }
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    s = warp_sum(threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : acc_t(0));
    if (threadIdx.x == 0) partial[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = s;
  }
}

template <typename T, typename acc_t>
struct Update {
  T *x_out, *m_out;
  const T *x_adv, *x_clean, *grad, *mom;
  const acc_t* partial;
  const double *step, *eps, *lo, *hi;
  acc_t decay;
  int64_t C, hw, planes;
  int chunks;
};

// grid (blocks_x, planes): block row y walks the (sample, channel) planes; threads stride over the plane's pixels.
template <typename T, typename acc_t>
__global__ void adv_update_kernel(Update<T, acc_t> a) {
  __shared__ acc_t norm_s;
  for (int64_t plane = blockIdx.y; plane < a.planes; plane += gridDim.y) {
    const int64_t b = plane / a.C;
    __syncthreads();  // the previous plane's norm_s is no longer read
    if (threadIdx.x < 32) {
      acc_t v = 0;
      for (int k = threadIdx.x; k < a.chunks; k += 32) v += a.partial[b * a.chunks + k];
      v = warp_sum(v);
      if (threadIdx.x == 0) norm_s = v;
    }
    __syncthreads();
    const acc_t norm = norm_s;
    const bool has_grad = norm > acc_t(0);  // a zero gradient gives a zero step direction, not NaN
    const acc_t denom = has_grad ? norm : acc_t(1);
    const acc_t step = static_cast<acc_t>(a.step[b]), eps = static_cast<acc_t>(a.eps[b]);
    const acc_t lo = static_cast<acc_t>(a.lo[plane]), hi = static_cast<acc_t>(a.hi[plane]);
    const int64_t base = plane * a.hw;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; k < a.hw;
         k += static_cast<int64_t>(gridDim.x) * kThreads) {
      const int64_t i = base + k;
      const acc_t g = has_grad ? load(a.grad, i) / denom : acc_t(0);
      const acc_t m = a.decay * load(a.mom, i) + g;
      const acc_t sign = m > acc_t(0) ? acc_t(1) : (m < acc_t(0) ? acc_t(-1) : acc_t(0));
      const acc_t xc = load(a.x_clean, i);
      const acc_t d = ::min(::max(load(a.x_adv, i) + step * sign - xc, -eps), eps);
      store(a.x_out, i, ::min(::max(xc + d, lo), hi));
      store(a.m_out, i, m);
    }
  }
}

template <typename T, typename acc_t>
void launch_typed(const AdvStepDesc& d, cudaStream_t stream) {
  const int64_t per_sample = d.C * d.HW, planes = d.B * d.C;
  const int chunks = adv_step_partials(d.B, per_sample);
  auto* partial = static_cast<acc_t*>(d.partial);
  l1_partial_kernel<T, acc_t><<<dim3(chunks, static_cast<unsigned>(d.B)), kThreads, 0, stream>>>(
      static_cast<const T*>(d.grad), partial, per_sample);
  const int sms = sm_count();
  const int grid_y = static_cast<int>(std::min<int64_t>(planes, 65535));
  const int grid_x = static_cast<int>(std::clamp<int64_t>(
      std::min<int64_t>((8 * sms + grid_y - 1) / grid_y, (d.HW + kThreads * 4 - 1) / (kThreads * 4)), 1, 65535));
  const Update<T, acc_t> a{static_cast<T*>(d.x_out), static_cast<T*>(d.m_out), static_cast<const T*>(d.x_adv),
                           static_cast<const T*>(d.x_clean), static_cast<const T*>(d.grad),
                           static_cast<const T*>(d.mom), partial, d.step, d.eps, d.lo, d.hi,
                           static_cast<acc_t>(d.decay), d.C, d.HW, planes, chunks};
  adv_update_kernel<T, acc_t><<<dim3(grid_x, grid_y), kThreads, 0, stream>>>(a);
}

}  // namespace

// Enough blocks to fill the GPU ~8x over, >= ~4k elements per block, at most 256 partials per sample.
int adv_step_partials(int64_t batch, int64_t per_sample) {
  const int64_t by_gpu = (8 * sm_count() + batch - 1) / batch, by_size = (per_sample + 4095) / 4096;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_gpu, by_size), 1, 256));
}

cudaError_t launch_adv_step(const AdvStepDesc& d, cudaStream_t stream) {
  switch (d.dtype) {
    case DType::Float: launch_typed<float, float>(d, stream); break;
    case DType::Double: launch_typed<double, double>(d, stream); break;
    case DType::Half: launch_typed<__half, float>(d, stream); break;
    case DType::BFloat16: launch_typed<__nv_bfloat16, float>(d, stream); break;
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace ikd

// Plain C++ interface between the CUDA kernels (csrc/cuda/*_kernel.cu) and their ATen glue (csrc/cuda/*_cuda.cpp).
// The .cu files see no ATen headers at all: nvcc parses every translation unit once per GPU architecture, and ATen's
// headers would dominate the build time (they also need the cuBLAS/cuSPARSE headers a minimal toolkit lacks).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ikd {
namespace cuda {

enum class DType : int { Float = 0, Double = 1, Half = 2, BFloat16 = 3 };

// Streaming multiprocessors of the current device, for sizing grids (80 if the query fails).
inline int sm_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return 80;
  return count;
}

// One pass over an rfft2 spectrum (B, C, H, Wr) of interleaved complex values, see spectral_common.h.
struct SpectralPassDesc {
  void* y;               // output spectrum (may equal x)
  const void* x;         // input spectrum
  const void* s;         // source spectrum (kind 0) or nullptr
  const int64_t* perm;   // batch indices (kind 1) or nullptr
  const double *lo, *hi, *lam, *sigma;  // per sample, float64 (sigma only for kind 2)
  int64_t B, C, H, W, Wr;
  int mode;  // MixMode
  int kind;  // SourceKind: 0 spectrum, 1 shuffle, 2 noise
  uint64_t seed;
  DType dtype;  // Float or Double
};
cudaError_t launch_spectral_pass(const SpectralPassDesc& d, cudaStream_t stream);

// adv_step on contiguous (B, C, H, W) tensors; `partial` is scratch of adv_step_partials(B, C*H*W) accumulators
// (float, or double for DType::Double).
struct AdvStepDesc {
  void *x_out, *m_out;
  const void *x_adv, *x_clean, *grad, *mom;
  void* partial;
  const double *step, *eps, *lo, *hi;  // (B,), (B,), (B, C), (B, C)
  double decay;
  int64_t B, C, HW;
  DType dtype;
};
int adv_step_partials(int64_t batch, int64_t per_sample);
cudaError_t launch_adv_step(const AdvStepDesc& d, cudaStream_t stream);

}  // namespace cuda
}  // namespace ikd

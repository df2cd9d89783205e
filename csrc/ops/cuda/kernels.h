// Plain C++ interface between the CUDA kernels (ops/cuda/*_kernel.cu) and their ATen glue (ops/cuda/*_cuda.cpp).
// The .cu files see no ATen headers at all: nvcc parses every translation unit once per GPU architecture, and ATen's
// headers would dominate the build time (they also need the cuBLAS/cuSPARSE headers a minimal toolkit lacks).
#pragma once

#include <cuda_runtime_api.h>

#include "ops/descriptors.h"

namespace ikd {
namespace cuda {

// Streaming multiprocessors of the current device, for sizing grids (80 if the query fails).
inline int sm_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return 80;
  return count;
}

cudaError_t launch_spectral_pass(const device::SpectralPassDesc& d, cudaStream_t stream);
cudaError_t launch_adv_step(const device::AdvStepDesc& d, cudaStream_t stream);

}  // namespace cuda
}  // namespace ikd

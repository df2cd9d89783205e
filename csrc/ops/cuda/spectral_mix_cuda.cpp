// CUDA registration of the spectral mixing ops (schemas: ops/spectral_mix.cpp): the ops of ops/host.h (cuFFT via
// torch) around the one-pass kernel of spectral_mix_kernel.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/cuda/kernels.h"
#include "ops/host.h"

namespace ikd {
namespace {

at::Tensor spectral_pass_cuda(const PassArgs& a) {
  const c10::cuda::CUDAGuard guard(a.spec.device());
  return spectral_pass_on_device(a, cuda::sm_count(), false, [](const device::SpectralPassDesc& d) {
    C10_CUDA_CHECK(cuda::launch_spectral_pass(d, c10::cuda::getCurrentCUDAStream()));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CUDA, m) { register_spectral_ops<spectral_pass_cuda>(m); }

}  // namespace ikd

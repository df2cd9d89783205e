// CUDA registration of the spectral mixing ops: the ops of spectral_ops.h (cuFFT via torch) around the one-pass
// kernel of spectral_mix_kernel.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../spectral_ops.h"
#include "kernels.h"

namespace ikd {
namespace {

at::Tensor spectral_pass_cuda(const PassArgs& a) {
  const c10::cuda::CUDAGuard guard(a.spec.device());
  // the shuffle source reads other samples' bins: write to a new spectrum (in place would race across blocks)
  const at::Tensor y = a.kind == SourceKind::Shuffle ? at::empty_like(a.spec) : a.spec;
  const bool is_double = a.in->x.scalar_type() == at::kDouble;
  TORCH_CHECK(is_double || a.in->x.scalar_type() == at::kFloat, "spectral pass: unexpected dtype ",
              a.in->x.scalar_type());
  const cuda::SpectralPassDesc d{y.data_ptr(),
                                 a.spec.const_data_ptr(),
                                 a.source ? a.source->const_data_ptr() : nullptr,
                                 a.perm ? a.perm->const_data_ptr<int64_t>() : nullptr,
                                 a.in->lo.const_data_ptr<double>(),
                                 a.in->hi.const_data_ptr<double>(),
                                 a.in->lam.const_data_ptr<double>(),
                                 a.sigma ? a.sigma->const_data_ptr<double>() : nullptr,
                                 y.size(0), y.size(1), y.size(2), a.width, y.size(3),
                                 static_cast<int>(a.in->mode), static_cast<int>(a.kind), a.seed,
                                 is_double ? cuda::DType::Double : cuda::DType::Float};
  C10_CUDA_CHECK(cuda::launch_spectral_pass(d, c10::cuda::getCurrentCUDAStream()));
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CUDA, m) {
  m.impl("spectral_mix", &spectral_mix_op<spectral_pass_cuda>);
  m.impl("spectral_mix_shuffle", &spectral_mix_shuffle_op<spectral_pass_cuda>);
  m.impl("spectral_mix_noise", &spectral_mix_noise_op<spectral_pass_cuda>);
  m.impl("noise_spectrum", &noise_spectrum_op<spectral_pass_cuda>);
}

}  // namespace ikd

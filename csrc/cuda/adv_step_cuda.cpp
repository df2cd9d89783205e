// CUDA registration of adv_step: argument checks and scratch allocation around the two launches of
// adv_step_kernel.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../adv_step_host.h"
#include "kernels.h"

namespace ikd {
namespace {

cuda::DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cuda::DType::Float;
    case at::kDouble: return cuda::DType::Double;
    case at::kHalf: return cuda::DType::Half;
    case at::kBFloat16: return cuda::DType::BFloat16;
    default: TORCH_CHECK(false, "adv_step: unsupported dtype ", t);
  }
}

std::tuple<at::Tensor, at::Tensor> adv_step_cuda(const at::Tensor& x_adv, const at::Tensor& x_clean,
                                                 const at::Tensor& grad, const at::Tensor& momentum,
                                                 const at::Tensor& step_size, const at::Tensor& eps,
                                                 const at::Tensor& lo, const at::Tensor& hi, double decay) {
  const c10::cuda::CUDAGuard guard(x_adv.device());
  const AdvStepInputs in = adv_step_inputs(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi);
  at::Tensor x_out = at::empty_like(in.x_adv), m_out = at::empty_like(in.mom);
  if (in.x_adv.numel() == 0) return {x_out, m_out};
  const int64_t b = in.x_adv.size(0), c = in.x_adv.size(1), hw = in.x_adv.size(2) * in.x_adv.size(3);
  const auto acc = in.x_adv.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor partial = at::empty({b, cuda::adv_step_partials(b, c * hw)}, in.x_adv.options().dtype(acc));
  const cuda::AdvStepDesc d{x_out.data_ptr(), m_out.data_ptr(), in.x_adv.const_data_ptr(), in.x_clean.const_data_ptr(),
                            in.grad.const_data_ptr(), in.mom.const_data_ptr(), partial.data_ptr(),
                            in.step.const_data_ptr<double>(), in.eps.const_data_ptr<double>(),
                            in.lo.const_data_ptr<double>(), in.hi.const_data_ptr<double>(), decay, b, c, hw,
                            dtype_of(in.x_adv.scalar_type())};
  C10_CUDA_CHECK(cuda::launch_adv_step(d, c10::cuda::getCurrentCUDAStream()));
  return {x_out, m_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CUDA, m) { m.impl("adv_step", &adv_step_cuda); }

}  // namespace ikd

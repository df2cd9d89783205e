// CUDA registration of adv_step (schema: ops/adv_step.cpp): argument checks and scratch allocation around the two
// launches of adv_step_kernel.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "ops/cuda/kernels.h"
#include "ops/host.h"

namespace ikd {
namespace {

std::tuple<at::Tensor, at::Tensor> adv_step_cuda(const at::Tensor& x_adv, const at::Tensor& x_clean,
                                                 const at::Tensor& grad, const at::Tensor& momentum,
                                                 const at::Tensor& step_size, const at::Tensor& eps,
                                                 const at::Tensor& lo, const at::Tensor& hi, double decay) {
  const c10::cuda::CUDAGuard guard(x_adv.device());
  const AdvStepInputs in = adv_step_inputs(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi);
  return adv_step_on_device(in, decay, cuda::sm_count(), [](const device::AdvStepDesc& d) {
    C10_CUDA_CHECK(cuda::launch_adv_step(d, c10::cuda::getCurrentCUDAStream()));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CUDA, m) { m.impl("adv_step", &adv_step_cuda); }

}  // namespace ikd

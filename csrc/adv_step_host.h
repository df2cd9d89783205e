// Host-side argument handling of adv_step shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/ATen.h>

#include <utility>

#include "ops_host.h"

namespace ikd {

// Checked, contiguous inputs; params float64: step/eps (B,), lo/hi (B, C).
struct AdvStepInputs {
  at::Tensor x_adv, x_clean, grad, mom, step, eps, lo, hi;
};

inline AdvStepInputs adv_step_inputs(const at::Tensor& x_adv, const at::Tensor& x_clean, const at::Tensor& grad,
                                     const at::Tensor& momentum, const at::Tensor& step_size, const at::Tensor& eps,
                                     const at::Tensor& lo, const at::Tensor& hi) {
  const char* op = "adv_step";
  check_image(op, "x_adv", x_adv, x_adv);
  const std::pair<const char*, const at::Tensor*> others[] = {
      {"x_clean", &x_clean}, {"grad", &grad}, {"momentum", &momentum}};
  for (const auto& [name, t] : others) {
    check_image(op, name, *t, x_adv);
    TORCH_CHECK(t->scalar_type() == x_adv.scalar_type(), op, ": ", name, " must have the dtype of x_adv (",
                x_adv.scalar_type(), ", got ", t->scalar_type(), ")");
  }
  const int64_t b = x_adv.size(0), c = x_adv.size(1);
  return {x_adv.contiguous(), x_clean.contiguous(), grad.contiguous(), momentum.contiguous(),
          param(op, "step_size", step_size, x_adv, b), param(op, "eps", eps, x_adv, b),
          param(op, "lo", lo, x_adv, b * c), param(op, "hi", hi, x_adv, b * c)};
}

}  // namespace ikd

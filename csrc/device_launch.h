// The ATen side of a device launch, shared by the CUDA glue (csrc/cuda/*_cuda.cpp) and the host emulation of the
// CUDA kernels (csrc/emulated): the tensors a launch writes, its scratch, and its descriptor (device/launch.h).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "adv_step_host.h"
#include "device/launch.h"
#include "spectral_ops.h"

namespace ikd {

inline device::DType device_dtype(const char* op, at::ScalarType t) {
  switch (t) {
    case at::kFloat: return device::DType::Float;
    case at::kDouble: return device::DType::Double;
    case at::kHalf: return device::DType::Half;
    case at::kBFloat16: return device::DType::BFloat16;
    default: TORCH_CHECK(false, op, ": unsupported dtype ", t);
  }
}

// The spectral pass on a device with `sms` multiprocessors: `launch(desc)` runs it. The shuffle source reads other
// samples' bins, so it writes a new spectrum (in place would race across blocks); the others mix in place.
template <typename Launch>
at::Tensor spectral_pass_on_device(const PassArgs& a, int sms, bool wide_index, Launch&& launch) {
  const at::Tensor y = a.kind == SourceKind::Shuffle ? at::empty_like(a.spec) : a.spec;
  const device::DType dtype = device_dtype("spectral pass", a.in->x.scalar_type());
  TORCH_CHECK(dtype == device::DType::Float || dtype == device::DType::Double, "spectral pass: unexpected dtype ",
              a.in->x.scalar_type());
  launch(device::SpectralPassDesc{y.data_ptr(),
                                  a.spec.const_data_ptr(),
                                  a.source ? a.source->const_data_ptr() : nullptr,
                                  a.perm ? a.perm->const_data_ptr<int64_t>() : nullptr,
                                  a.in->lo.const_data_ptr<double>(),
                                  a.in->hi.const_data_ptr<double>(),
                                  a.in->lam.const_data_ptr<double>(),
                                  a.sigma ? a.sigma->const_data_ptr<double>() : nullptr,
                                  y.size(0),
                                  y.size(1),
                                  y.size(2),
                                  a.width,
                                  y.size(3),
                                  static_cast<int>(a.in->mode),
                                  static_cast<int>(a.kind),
                                  a.seed,
                                  dtype,
                                  sms,
                                  wide_index});
  return y;
}

// adv_step on a device with `sms` multiprocessors: `launch(desc)` runs its two kernels.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> adv_step_on_device(const AdvStepInputs& in, double decay, int sms,
                                                      Launch&& launch) {
  at::Tensor x_out = at::empty_like(in.x_adv), m_out = at::empty_like(in.mom);
  if (in.x_adv.numel() == 0) return {x_out, m_out};
  const int64_t b = in.x_adv.size(0), c = in.x_adv.size(1), hw = in.x_adv.size(2) * in.x_adv.size(3);
  const auto acc = in.x_adv.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor partial =
      at::empty({b, device::adv_step_partials(b, c * hw, sms)}, in.x_adv.options().dtype(acc));
  launch(device::AdvStepDesc{x_out.data_ptr(), m_out.data_ptr(), in.x_adv.const_data_ptr(),
                             in.x_clean.const_data_ptr(), in.grad.const_data_ptr(), in.mom.const_data_ptr(),
                             partial.data_ptr(), in.step.const_data_ptr<double>(), in.eps.const_data_ptr<double>(),
                             in.lo.const_data_ptr<double>(), in.hi.const_data_ptr<double>(), decay, b, c, hw,
                             device_dtype("adv_step", in.x_adv.scalar_type()), sms});
  return {x_out, m_out};
}

}  // namespace ikd

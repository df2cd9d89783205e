// CPU kernel of adv_step: the per-sample L1 norm of the gradient (one vectorised torch reduction), then ONE
// elementwise pass (at::parallel_for) that normalises the gradient, updates the momentum, takes the sign step and
// projects onto the eps ball and the per-channel range, element by element as the CUDA kernel does
// (ops/device/adv_step.h). Float loops are compiled per ISA (see target_clones.h). Schema: ops/adv_step.cpp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>

#include "ops/cpu/target_clones.h"
#include "ops/device/adv_step.h"
#include "ops/host.h"

namespace ikd {
namespace {

using device::PlaneStep;

template <typename T, typename acc_t>
IKD_HD void adv_update(T* __restrict x_out, T* __restrict m_out, const T* __restrict x_adv, const T* __restrict x_clean,
                       const T* __restrict grad, const T* __restrict mom, int64_t n, PlaneStep<acc_t> p) {
  for (int64_t i = 0; i < n; ++i) {
    acc_t x, m;
    device::adv_element(p, static_cast<acc_t>(x_adv[i]), static_cast<acc_t>(x_clean[i]), static_cast<acc_t>(grad[i]),
                        static_cast<acc_t>(mom[i]), x, m);
    x_out[i] = static_cast<T>(x);
    m_out[i] = static_cast<T>(m);
  }
}

IKD_CPU_CLONES void adv_update_f32(float* x_out, float* m_out, const float* x_adv, const float* x_clean,
                                   const float* grad, const float* mom, int64_t n, PlaneStep<float> p) {
  adv_update(x_out, m_out, x_adv, x_clean, grad, mom, n, p);
}

template <typename T, typename acc_t>
void adv_update_any(T* xo, T* mo, const T* xa, const T* xc, const T* g, const T* m, int64_t n, PlaneStep<acc_t> p) {
  if constexpr (std::is_same_v<T, float>) {
    adv_update_f32(xo, mo, xa, xc, g, m, n, p);
  } else {
    adv_update(xo, mo, xa, xc, g, m, n, p);
  }
}

std::tuple<at::Tensor, at::Tensor> adv_step_cpu(const at::Tensor& x_adv, const at::Tensor& x_clean,
                                                const at::Tensor& grad, const at::Tensor& momentum,
                                                const at::Tensor& step_size, const at::Tensor& eps,
                                                const at::Tensor& lo, const at::Tensor& hi, double decay) {
  const AdvStepInputs in = adv_step_inputs(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi);
  const at::Tensor &xa = in.x_adv, &xc = in.x_clean, &g = in.grad, &m = in.mom;
  at::Tensor x_out = at::empty_like(xa), m_out = at::empty_like(m);
  if (xa.numel() == 0) return {x_out, m_out};
  const int64_t c = xa.size(1), hw = xa.size(2) * xa.size(3);
  const at::Tensor norm =
      at::linalg_vector_norm(g, 1, at::IntArrayRef({1, 2, 3}), false, compute_type(xa.scalar_type())).contiguous();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xa.scalar_type(), "ikd_adv_step_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* norm_p = norm.const_data_ptr<acc_t>();
    const double *step_p = in.step.const_data_ptr<double>(), *eps_p = in.eps.const_data_ptr<double>();
    const double *lo_p = in.lo.const_data_ptr<double>(), *hi_p = in.hi.const_data_ptr<double>();
    at::parallel_for(0, xa.numel(), 32768, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end;) {  // walk the (sample, channel) planes this chunk overlaps
        const int64_t plane = i / hw, bi = plane / c, stop = std::min(end, (plane + 1) * hw);
        const auto p = device::plane_step(norm_p[bi], decay, step_p[bi], eps_p[bi], lo_p[plane], hi_p[plane]);
        adv_update_any(x_out.data_ptr<scalar_t>() + i, m_out.data_ptr<scalar_t>() + i,
                       xa.const_data_ptr<scalar_t>() + i, xc.const_data_ptr<scalar_t>() + i,
                       g.const_data_ptr<scalar_t>() + i, m.const_data_ptr<scalar_t>() + i, stop - i, p);
        i = stop;
      }
    });
  });
  return {x_out, m_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CPU, m) { m.impl("adv_step", &adv_step_cpu); }

}  // namespace ikd

// The adv_step kernels' arithmetic (ops/cuda/adv_step_kernel.cu), written once for the device and for its host
// emulation (ops/emulated); the CPU kernel (ops/cpu/adv_step_kernel.cpp) takes its per-element update from here too.
//   1. per-sample partial L1 sums of the gradient: each thread sums its grid-stride share of a sample, the block
//      adds its threads' sums with two warp trees (see simt.h) and writes one partial: no atomics, deterministic;
//   2. one elementwise pass that sums its sample's partials, normalises the gradient, updates the momentum, takes
//      the sign step and projects onto the eps ball and the per-channel range.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/descriptors.h"
#include "ops/device/host_device.h"
#include "ops/device/simt.h"

namespace ikd {
namespace device {

// min / max as std::min / std::max (a NaN in `v` propagates, as in torch.clamp).
template <typename T>
IKD_HD T clamp_to(T v, T lo, T hi) {
  v = v < lo ? lo : v;
  return hi < v ? hi : v;
}

// What the update needs of one (sample, channel) plane.
template <typename acc_t>
struct PlaneStep {
  bool has_grad;  // a zero gradient gives a zero step direction, not NaN
  acc_t denom, decay, step, eps, lo, hi;  // denom: the L1 norm, or 1 for a zero gradient
};

template <typename acc_t>
IKD_HD PlaneStep<acc_t> plane_step(acc_t norm, double decay, double step, double eps, double lo, double hi) {
  const bool has_grad = norm > acc_t(0);
  return {has_grad,
          has_grad ? norm : acc_t(1),
          static_cast<acc_t>(decay),
          static_cast<acc_t>(step),
          static_cast<acc_t>(eps),
          static_cast<acc_t>(lo),
          static_cast<acc_t>(hi)};
}

// One element: g = grad / ||grad||_1, m' = decay * m + g, x' = clamp(x_clean + clamp(x_adv + step * sign(m') -
// x_clean, -eps, eps), lo, hi).
template <typename acc_t>
IKD_HD void adv_element(const PlaneStep<acc_t>& p, acc_t x_adv, acc_t x_clean, acc_t grad, acc_t mom, acc_t& x_out,
                        acc_t& m_out) {
  const acc_t g = p.has_grad ? grad / p.denom : acc_t(0);
  const acc_t m = p.decay * mom + g;
  const acc_t sign = m > acc_t(0) ? acc_t(1) : (m < acc_t(0) ? acc_t(-1) : acc_t(0));
  const acc_t d = clamp_to(x_adv + p.step * sign - x_clean, -p.eps, p.eps);
  x_out = clamp_to(x_clean + d, p.lo, p.hi);
  m_out = m;
}

// Loads and stores in the accumulation type. float and double are stored as computed; the device (cuda_fp16 /
// cuda_bf16) and the emulation (c10::Half / c10::BFloat16) specialise this for their 16-bit types.
template <typename T>
struct Element {
  IKD_HD static T load(T v) { return v; }
  IKD_HD static T store(T v) { return v; }
};

template <typename T, typename acc_t>
struct Update {
  T *x_out, *m_out;
  const T *x_adv, *x_clean, *grad, *mom;
  const acc_t* partial;
  const double *step, *eps, *lo, *hi;
  double decay;
  int64_t C, hw, planes;
  int chunks;
};

template <typename T, typename acc_t>
Update<T, acc_t> make_update(const AdvStepDesc& d) {
  return {static_cast<T*>(d.x_out), static_cast<T*>(d.m_out), static_cast<const T*>(d.x_adv),
          static_cast<const T*>(d.x_clean), static_cast<const T*>(d.grad), static_cast<const T*>(d.mom),
          static_cast<const acc_t*>(d.partial), d.step, d.eps, d.lo, d.hi, d.decay, d.C, d.HW, d.B * d.C,
          static_cast<int>(adv_l1_grid(d).x)};
}

// Kernel 1, one thread: the sum of |grad| over its grid-stride share of the sample at `g` (t: its place in the row
// of the sample's chunks).
template <typename T, typename acc_t>
IKD_HD acc_t l1_thread_sum(const T* g, int64_t per_sample, const ThreadPos& t) {
  acc_t s = 0;
  const int64_t stride = grid_stride<int64_t>(t);
#if defined(__CUDA_ARCH__)
#pragma unroll 4
#endif
  for (int64_t i = grid_start<int64_t>(t); i < per_sample; i += stride) s += std::abs(Element<T>::load(g[i]));
  return s;
}

// Where kernel 1 writes the partial of (sample, chunk), and kernel 2 reads it.
IKD_HD int64_t partial_slot(int64_t sample, int chunks, int64_t chunk) { return sample * chunks + chunk; }

// Kernel 2, lane `lane` of the first warp: its strided share of the sample's partials (warp_sum adds the lanes).
template <typename acc_t>
IKD_HD acc_t lane_partial_sum(const acc_t* partial, int64_t sample, int chunks, int lane) {
  acc_t v = 0;
  for (int k = lane; k < chunks; k += kWarp) v += partial[partial_slot(sample, chunks, k)];
  return v;
}

// Kernel 2, one element: pixel k of `plane`, whose sample's L1 norm is `norm`.
template <typename T, typename acc_t>
IKD_HD void update_element(const Update<T, acc_t>& a, const PlaneStep<acc_t>& p, int64_t plane, int64_t k) {
  const int64_t i = plane * a.hw + k;
  acc_t x, m;
  adv_element(p, Element<T>::load(a.x_adv[i]), Element<T>::load(a.x_clean[i]), Element<T>::load(a.grad[i]),
              Element<T>::load(a.mom[i]), x, m);
  a.x_out[i] = Element<T>::store(x);
  a.m_out[i] = Element<T>::store(m);
}

template <typename T, typename acc_t>
IKD_HD PlaneStep<acc_t> plane_step(const Update<T, acc_t>& a, int64_t plane, acc_t norm) {
  const int64_t b = plane / a.C;
  return plane_step(norm, a.decay, a.step[b], a.eps[b], a.lo[plane], a.hi[plane]);
}

template <typename T>
struct Type {
  using type = T;
};

// The launcher's choice of (storage, accumulation) types: `launch(Type<T>{}, Type<acc_t>{})`.
template <typename Half, typename BFloat16, typename Launch>
void dispatch_adv_step(DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::Float: launch(Type<float>{}, Type<float>{}); break;
    case DType::Double: launch(Type<double>{}, Type<double>{}); break;
    case DType::Half: launch(Type<Half>{}, Type<float>{}); break;
    case DType::BFloat16: launch(Type<BFloat16>{}, Type<float>{}); break;
  }
}

}  // namespace device
}  // namespace ikd

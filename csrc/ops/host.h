// The ATen (host) side of the ops, shared by the CPU kernels (ops/cpu), the CUDA glue (ops/cuda/*_cuda.cpp) and the
// host emulation of the CUDA kernels (ops/emulated):
//   - argument checks and the checked inputs of both op families, the compute dtype, the final clamp. The Python
//     wrappers (ikd_yolo/ops) already check their inputs; these checks guard direct torch.ops.ikd calls;
//   - the spectral ops, written once over a device-specific pass: rfft2 (torch: pocketfft/MKL or cuFFT), ONE pass
//     over the spectrum, irfft2 (torch), clamp in place. ops/cpu and ops/cuda register them per dispatch key with
//     their pass (register_spectral_ops); ops/emulated runs them with the host emulation of the CUDA pass;
//   - a device launch: the tensors it writes, its scratch, and its descriptor (ops/descriptors.h), for the CUDA glue
//     and the emulation.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>
#include <utility>

#include "ops/descriptors.h"

namespace ikd {

// ----- argument checks ---------------------------------------------------------------------------------------------

inline MixMode parse_mode(const char* op, c10::string_view mode) {
  TORCH_CHECK(mode == "complex" || mode == "amplitude", op, ": mode must be 'complex' or 'amplitude' (got '", mode,
              "')");
  return mode == "complex" ? MixMode::Complex : MixMode::Amplitude;
}

inline void check_image(const char* op, const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a float tensor (got ", t.scalar_type(),
              ")");
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must have shape (B, C, H, W) (got ", t.sizes(), ")");
  TORCH_CHECK(t.sizes() == like.sizes(), op, ": ", name, " must have the shape of x ", like.sizes(), " (got ",
              t.sizes(), ")");
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " must be on ", like.device(), " (got ", t.device(), ")");
}

// A per-sample (B,) or per-channel (B, C) parameter as a contiguous float64 tensor on x's device.
inline at::Tensor param(const char* op, const char* name, const at::Tensor& p, const at::Tensor& x, int64_t numel) {
  TORCH_CHECK(p.numel() == numel, op, ": ", name, " must have ", numel, " elements (got ", p.sizes(), ")");
  TORCH_CHECK(p.device() == x.device(), op, ": ", name, " must be on ", x.device(), " (got ", p.device(), ")");
  return p.to(at::kDouble).contiguous();
}

// fp16/bf16 are computed in fp32 (cuFFT half transforms only take powers of two); always contiguous.
inline at::ScalarType compute_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

inline at::Tensor to_compute(const at::Tensor& t) { return t.to(compute_type(t.scalar_type())).contiguous(); }

// The inverse transform, the final clamp in place and the cast back to the input dtype.
inline at::Tensor invert_clamp(const at::Tensor& spec, const at::Tensor& x) {
  at::Tensor y = at::fft_irfft2(spec, at::IntArrayRef({x.size(2), x.size(3)}));
  y.clamp_(0.0, 1.0);
  return y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
}

// Checked inputs of a spectral op, ready for a pass.
struct SpectralInputs {
  at::Tensor x, lo, hi, lam;  // x in the compute dtype, contiguous; params float64 (B,)
  MixMode mode;
};

inline SpectralInputs spectral_inputs(const char* op, const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi,
                                      const at::Tensor& lam, c10::string_view mode) {
  check_image(op, "x", x, x);
  TORCH_CHECK(x.numel() > 0, op, ": x must not be empty (got ", x.sizes(), ")");
  const int64_t b = x.size(0);
  return {to_compute(x), param(op, "lo", lo, x, b), param(op, "hi", hi, x, b), param(op, "lam", lam, x, b),
          parse_mode(op, mode)};
}

// adv_step's checked, contiguous inputs (CPU, CUDA and the emulation); params float64: step/eps (B,), lo/hi (B, C).
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

// ----- the spectral ops over a pass --------------------------------------------------------------------------------

// A pass mixes the source into spectrum `spec` and returns the mixed spectrum: `spec` itself (in place), or for the
// shuffle source, where the batch is both input and source, whatever the device prefers (CPU: in place by row
// groups; CUDA: a new tensor). `source` is the source spectrum (Spectrum), `perm` the batch indices (Shuffle) or
// `sigma` the noise std (Noise); the others are nullptr.
struct PassArgs {
  at::Tensor spec;
  const at::Tensor *source, *perm, *sigma;
  const SpectralInputs* in;
  int64_t width;
  SourceKind kind;
  uint64_t seed;
};
using PassFn = at::Tensor (*)(const PassArgs&);

// `pass`: a PassFn or any callable at::Tensor(const PassArgs&).
template <typename PassT>
at::Tensor spectral_mix_op(const PassT& pass, const at::Tensor& x, const at::Tensor& source, const at::Tensor& lo,
                           const at::Tensor& hi, const at::Tensor& lam, c10::string_view mode) {
  const auto in = spectral_inputs("spectral_mix", x, lo, hi, lam, mode);
  check_image("spectral_mix", "source", source, x);
  const at::Tensor src = at::fft_rfft2(source.to(in.x.scalar_type()).contiguous());
  const PassArgs args{at::fft_rfft2(in.x), &src, nullptr, nullptr, &in, x.size(3), SourceKind::Spectrum, 0};
  return invert_clamp(pass(args), x);
}

template <typename PassT>
at::Tensor spectral_mix_shuffle_op(const PassT& pass, const at::Tensor& x, const at::Tensor& perm,
                                   const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& lam,
                                   c10::string_view mode) {
  const auto in = spectral_inputs("spectral_mix_shuffle", x, lo, hi, lam, mode);
  TORCH_CHECK(perm.dim() == 1 && perm.size(0) == x.size(0) && !at::isFloatingType(perm.scalar_type()) &&
                  !at::isComplexType(perm.scalar_type()),
              "spectral_mix_shuffle: perm must be an integer tensor of shape (", x.size(0), ",) (got ",
              perm.scalar_type(), " ", perm.sizes(), ")");
  TORCH_CHECK(perm.device() == x.device(), "spectral_mix_shuffle: perm must be on ", x.device());
  const at::Tensor idx = perm.to(at::kLong).contiguous();
  if (idx.is_cpu()) {  // on CUDA the kernel asserts instead (no host sync)
    TORCH_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < x.size(0),
                "spectral_mix_shuffle: perm values must lie in [0, ", x.size(0), ")");
  }
  const PassArgs args{at::fft_rfft2(in.x), nullptr, &idx, nullptr, &in, x.size(3), SourceKind::Shuffle, 0};
  return invert_clamp(pass(args), x);
}

template <typename PassT>
at::Tensor spectral_mix_noise_op(const PassT& pass, const at::Tensor& x, const at::Tensor& sigma,
                                 const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& lam,
                                 c10::string_view mode, int64_t seed) {
  const auto in = spectral_inputs("spectral_mix_noise", x, lo, hi, lam, mode);
  const at::Tensor sig = param("spectral_mix_noise", "sigma", sigma, x, x.size(0));
  const PassArgs args{at::fft_rfft2(in.x), nullptr, nullptr, &sig, &in, x.size(3), SourceKind::Noise,
                      static_cast<uint64_t>(seed)};
  return invert_clamp(pass(args), x);
}

// The noise spectrum the noise op draws (X = 0, full band, lam 1), complex64 (B, C, H, W // 2 + 1): lets the tests
// check its statistics and Hermitian structure directly.
template <typename PassT>
at::Tensor noise_spectrum_op(const PassT& pass, const at::Tensor& sigma, int64_t channels, int64_t height,
                             int64_t width, int64_t seed) {
  TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) > 0 && channels > 0 && height > 0 && width > 0,
              "noise_spectrum: sigma must be a non-empty (B,) tensor and channels, height, width positive");
  const int64_t b = sigma.size(0);
  const auto opts = sigma.options().dtype(at::kFloat);
  const at::Tensor x = at::empty({b, channels, height, width}, opts);
  const auto in = spectral_inputs("noise_spectrum", x, at::zeros({b}, opts), at::full({b}, 2.0, opts),
                                  at::ones({b}, opts), "complex");
  const at::Tensor sig = param("noise_spectrum", "sigma", sigma, x, b);
  const at::Tensor spec = at::zeros({b, channels, height, width / 2 + 1}, opts.dtype(at::kComplexFloat));
  return pass({spec, nullptr, nullptr, &sig, &in, width, SourceKind::Noise, static_cast<uint64_t>(seed)});
}

// The four spectral ops of one dispatch key, over its pass.
template <PassFn pass>
void register_spectral_ops(torch::Library& m) {
  using T = const at::Tensor&;
  m.impl("spectral_mix", [](T x, T source, T lo, T hi, T lam, c10::string_view mode) {
    return spectral_mix_op(pass, x, source, lo, hi, lam, mode);
  });
  m.impl("spectral_mix_shuffle", [](T x, T perm, T lo, T hi, T lam, c10::string_view mode) {
    return spectral_mix_shuffle_op(pass, x, perm, lo, hi, lam, mode);
  });
  m.impl("spectral_mix_noise", [](T x, T sigma, T lo, T hi, T lam, c10::string_view mode, int64_t seed) {
    return spectral_mix_noise_op(pass, x, sigma, lo, hi, lam, mode, seed);
  });
  m.impl("noise_spectrum", [](T sigma, int64_t channels, int64_t height, int64_t width, int64_t seed) {
    return noise_spectrum_op(pass, sigma, channels, height, width, seed);
  });
}

// ----- device launches (CUDA glue, emulation) ----------------------------------------------------------------------

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

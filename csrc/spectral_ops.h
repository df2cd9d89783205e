// The spectral ops, written once over a device-specific pass: rfft2 (torch: pocketfft/MKL or cuFFT), ONE pass over
// the spectrum, irfft2 (torch), clamp in place. csrc/cpu and csrc/cuda register them per dispatch key with their
// pass (register_spectral_ops); csrc/emulated runs them with the host emulation of the CUDA pass.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops_host.h"

namespace ikd {

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

}  // namespace ikd

// Host emulation of the CUDA spectral pass (ops/cuda/spectral_mix_kernel.cu): the kernel's bin function
// (ops/device/spectral_mix.h) run by every thread of the launch the CUDA launcher makes for a device with `sms`
// multiprocessors, block by block, in the same grid-stride loop and with the same index type. Registered as the
// CPU ops ikd::_emulated_spectral_mix* / _emulated_noise_spectrum (schemas in emulated_ops.cpp) for the tests.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <type_traits>

#include "ops/device/spectral_mix.h"
#include "ops/emulated/emulated_launch.h"
#include "ops/host.h"

namespace ikd {
namespace emulated {
namespace {

void emulate_spectral_pass(const device::SpectralPassDesc& d) {
  device::dispatch_spectral_pass(d, [&](const auto& pass, auto kind, auto n, const auto& index) {
    using T = typename std::decay_t<decltype(pass)>::value_type;
    using index_t = decltype(n);
    const int blocks = device::spectral_blocks(n, d.sms);
    check_launch("spectral_pass_kernel", blocks, 1, device::kSpectralThreads);
    for (int block = 0; block < blocks; ++block) {
      for (int thread = 0; thread < device::kSpectralThreads; ++thread) {
        const device::ThreadPos t{static_cast<uint32_t>(block), static_cast<uint32_t>(thread),
                                  device::kSpectralThreads, static_cast<uint32_t>(blocks)};
        constexpr SourceKind kKind = decltype(kind)::value;
        device::grid_stride_loop(t, n, [&](index_t i) { device::spectral_bin<T, kKind>(pass, index, i); });
      }
    }
  });
}

// The CUDA pass of spectral_mix_cuda.cpp, emulated for a device with `sms` multiprocessors.
struct EmulatedPass {
  int64_t sms;
  bool wide_index;
  at::Tensor operator()(const PassArgs& a) const {
    return spectral_pass_on_device(a, emulated_sms("emulated spectral pass", sms), wide_index, emulate_spectral_pass);
  }
};

using T = const at::Tensor&;

at::Tensor spectral_mix(T x, T source, T lo, T hi, T lam, c10::string_view mode, int64_t sms, bool wide_index) {
  return spectral_mix_op(EmulatedPass{sms, wide_index}, x, source, lo, hi, lam, mode);
}

at::Tensor spectral_mix_shuffle(T x, T perm, T lo, T hi, T lam, c10::string_view mode, int64_t sms, bool wide_index) {
  return spectral_mix_shuffle_op(EmulatedPass{sms, wide_index}, x, perm, lo, hi, lam, mode);
}

at::Tensor spectral_mix_noise(T x, T sigma, T lo, T hi, T lam, c10::string_view mode, int64_t seed, int64_t sms,
                              bool wide_index) {
  return spectral_mix_noise_op(EmulatedPass{sms, wide_index}, x, sigma, lo, hi, lam, mode, seed);
}

at::Tensor noise_spectrum(T sigma, int64_t channels, int64_t height, int64_t width, int64_t seed, int64_t sms,
                          bool wide_index) {
  return noise_spectrum_op(EmulatedPass{sms, wide_index}, sigma, channels, height, width, seed);
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CPU, m) {
  m.impl("_emulated_spectral_mix", &spectral_mix);
  m.impl("_emulated_spectral_mix_shuffle", &spectral_mix_shuffle);
  m.impl("_emulated_spectral_mix_noise", &spectral_mix_noise);
  m.impl("_emulated_noise_spectrum", &noise_spectrum);
}

}  // namespace emulated
}  // namespace ikd

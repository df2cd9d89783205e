// The spectral pass of the CUDA kernel (csrc/cuda/spectral_mix_kernel.cu), written once for the device and for its
// host emulation (csrc/emulated): bin index -> (sample, channel, row, column), the band test, the source bin (a second
// spectrum, the batch gathered by perm, or the counter-based noise) and the mixing rule, plus the launcher's choices
// (dtype, source kind, 32- or 64-bit index math) that pick which instantiation runs.
#pragma once

#include <cassert>
#include <cstdint>
#include <type_traits>

#include "../spectral_common.h"
#include "launch.h"
#include "simt.h"

namespace ikd {
namespace device {

IKD_HD uint32_t mul_hi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

// n / d and n % d for a fixed d: multiply-high and shift for 32-bit indices below 2^31 (Granlund-Montgomery, as
// at::cuda::detail::IntDivider), plain division for 64-bit ones.
template <typename index_t>
struct Divider {
  index_t d;
  explicit Divider(index_t d_) : d(d_) {}
  IKD_HD void divmod(index_t n, index_t& q, index_t& r) const {
    q = n / d;
    r = n - q * d;
  }
};

template <>
struct Divider<uint32_t> {
  uint32_t d, magic, shift;
  explicit Divider(uint32_t d_) : d(d_), shift(0) {
    while (shift < 32 && (uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  IKD_HD void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = (mul_hi(n, magic) + n) >> shift;
    r = n - q * d;
  }
};

// Bin i of a (B, C, H, Wr) spectrum as (plane = b * C + c, b, c, fy, j).
template <typename index_t>
struct BinIndex {
  Divider<index_t> wr, h, c;
  struct Bin {
    index_t plane, b, c, fy, j;
  };
  IKD_HD Bin operator()(index_t i) const {
    Bin bin;
    index_t row;
    wr.divmod(i, row, bin.j);
    h.divmod(row, bin.plane, bin.fy);
    c.divmod(bin.plane, bin.b, bin.c);
    return bin;
  }
};

template <typename index_t>
BinIndex<index_t> bin_index(const SpectralPassDesc& d) {
  using Div = Divider<index_t>;
  return {Div(static_cast<index_t>(d.Wr)), Div(static_cast<index_t>(d.H)), Div(static_cast<index_t>(d.C))};
}

// One complex bin, laid out (and aligned) as CUDA's float2 / double2.
template <typename T>
struct alignas(2 * sizeof(T)) Cplx {
  T re, im;
};

template <typename T>
struct Pass {
  using value_type = T;
  Cplx<T>* y;
  const Cplx<T>* x;
  const Cplx<T>* s;
  const int64_t* perm;
  const double *lo, *hi, *lam, *sigma;
  int64_t B, C, H, Wr;
  double inv_h, inv_w;
  NoiseGrid noise;
  MixMode mode;
};

template <typename T>
Pass<T> make_pass(const SpectralPassDesc& d) {
  return {static_cast<Cplx<T>*>(d.y), static_cast<const Cplx<T>*>(d.x), static_cast<const Cplx<T>*>(d.s), d.perm,
          d.lo, d.hi, d.lam, d.sigma, d.B, d.C, d.H, d.Wr, 1.0 / static_cast<double>(d.H),
          1.0 / static_cast<double>(d.W), noise_grid(d.seed, d.H, d.W), static_cast<MixMode>(d.mode)};
}

// Bin i of the pass: y[i] = x[i] mixed with the source inside the sample's band (outside it, y[i] = x[i]; the
// in-place kinds then leave it alone).
template <typename T, SourceKind kKind, typename index_t>
IKD_HD void spectral_bin(const Pass<T>& p, const BinIndex<index_t>& index, index_t i) {
  const auto bin = index(i);
  const Cplx<T> xv = p.x[i];
  const double r = band_radius(freq_sq(folded_index(bin.fy, p.H), p.inv_h), freq_sq(bin.j, p.inv_w));
  const double lam = p.lam[bin.b];
  if (!(r >= p.lo[bin.b] && r < p.hi[bin.b]) || lam == 0.0) {  // outside the band: X' = X
    if (kKind == SourceKind::Shuffle) p.y[i] = xv;
    return;
  }
  T sr, si;
  if (kKind == SourceKind::Noise) {
    T nr, ni;
    noise_bin(p.noise, bin.plane, bin.fy, bin.j, p.sigma[bin.b], nr, ni);
    if (p.mode == MixMode::Complex) {  // X' = X + lam * N
      p.y[i] = Cplx<T>{xv.re + static_cast<T>(lam) * nr, xv.im + static_cast<T>(lam) * ni};
      return;
    }
    sr = xv.re + nr;  // amplitude mode: |S| = |X + N|
    si = xv.im + ni;
  } else {
    Cplx<T> sv;
    if (kKind == SourceKind::Shuffle) {
      const int64_t src = p.perm[bin.b];
      assert(src >= 0 && src < p.B);
      sv = p.x[((src * p.C + static_cast<int64_t>(bin.c)) * p.H + bin.fy) * p.Wr + bin.j];
    } else {
      sv = p.s[i];
    }
    sr = sv.re;
    si = sv.im;
  }
  Cplx<T> yv;
  if (p.mode == MixMode::Complex) {
    mix_complex(xv.re, xv.im, sr, si, static_cast<T>(lam), yv.re, yv.im);
  } else {
    mix_amplitude(xv.re, xv.im, sr, si, static_cast<T>(lam), yv.re, yv.im);
  }
  p.y[i] = yv;
}

// The launcher's choices: `launch(pass, kind, bins, index)` with the Pass<float | double>, the source kind as a
// std::integral_constant<SourceKind, ...>, the bin count and the BinIndex as index_t = uint32_t or int64_t.
template <typename Launch>
void dispatch_spectral_pass(const SpectralPassDesc& d, Launch&& launch) {
  const auto by_index = [&](const auto& pass, auto kind) {
    const int64_t bins = d.B * d.C * d.H * d.Wr;
    if (spectral_wide_index(d)) {
      launch(pass, kind, bins, bin_index<int64_t>(d));
    } else {
      launch(pass, kind, static_cast<uint32_t>(bins), bin_index<uint32_t>(d));
    }
  };
  const auto by_kind = [&](const auto& pass) {
    switch (static_cast<SourceKind>(d.kind)) {
      case SourceKind::Spectrum: by_index(pass, std::integral_constant<SourceKind, SourceKind::Spectrum>{}); break;
      case SourceKind::Shuffle: by_index(pass, std::integral_constant<SourceKind, SourceKind::Shuffle>{}); break;
      case SourceKind::Noise: by_index(pass, std::integral_constant<SourceKind, SourceKind::Noise>{}); break;
    }
  };
  if (d.dtype == DType::Double) {
    by_kind(make_pass<double>(d));
  } else {
    by_kind(make_pass<float>(d));
  }
}

}  // namespace device
}  // namespace ikd

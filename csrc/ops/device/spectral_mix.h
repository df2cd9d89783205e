// The spectral mixing ops' arithmetic on the host and the device, written once:
//   - the per-bin math shared by the CPU kernel (ops/cpu/spectral_mix_kernel.cpp) and the CUDA kernel: the band
//     radius, the counter-based Gaussian RNG and the noise bins it draws, and the per-bin mixing rules. Keep it
//     identical on both sides: the CPU and CUDA kernels must agree with each other and with ikd_yolo/ops/reference.py;
//   - the spectral pass of the CUDA kernel (ops/cuda/spectral_mix_kernel.cu), which its host emulation (ops/emulated)
//     runs too: bin index -> (sample, channel, row, column), the band test, the source bin (a second spectrum, the
//     batch gathered by perm, or the counter-based noise) and the mixing rule, plus the launcher's choices (dtype,
//     source kind, 32- or 64-bit index math) that pick which instantiation runs.
#pragma once

#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/descriptors.h"
#include "ops/device/host_device.h"
#include "ops/device/simt.h"

namespace ikd {

// ---------------------------------------------------------------------------------------------------------------
// Band radius. Bit-exact with the reference: fy = k * (1.0 / H) in float64 exactly as torch.fft.fftfreq computes
// it (k folded to |k| since only fy^2 matters), r = sqrt(fy*fy + fx*fx) / 0.5, every operation rounded separately
// (no FMA contraction), so the hard mask lo <= r < hi selects the same bins as the reference.
// ---------------------------------------------------------------------------------------------------------------
IKD_HD int64_t folded_index(int64_t k, int64_t n) { return k <= n - k ? k : n - k; }

IKD_HD double freq_sq(int64_t k_folded, double inv_n) {
#if defined(__CUDA_ARCH__)
  const double f = __dmul_rn(static_cast<double>(k_folded), inv_n);
  return __dmul_rn(f, f);
#else
  const double f = static_cast<double>(k_folded) * inv_n;
  return f * f;
#endif
}

IKD_HD double band_radius(double fy_sq, double fx_sq) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(__dadd_rn(fy_sq, fx_sq)) / 0.5;
#else
  return std::sqrt(fy_sq + fx_sq) / 0.5;
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// Counter-based Gaussian RNG. A bin's pair of normals is a pure function of (seed, row, column): a per-row 64-bit
// key from splitmix64(seed ^ splitmix64(row)), then 32-bit lowbias hashes of the column (vectorisable on the CPU),
// two 24-bit uniforms and Box-Muller with polynomial log / sincos (no libm calls, same code on host and device).
// ---------------------------------------------------------------------------------------------------------------
IKD_HD uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

IKD_HD uint64_t row_key(uint64_t seed, uint64_t row) { return splitmix64(seed ^ splitmix64(row)); }

IKD_HD uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x21f0aaadu;
  x ^= x >> 15;
  x *= 0x735a2d97u;
  x ^= x >> 15;
  return x;
}

IKD_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

IKD_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// ln(u) for normal positive u; |error| < 2e-7 relative (atanh series on the mantissa folded to [sqrt(.5), sqrt(2))).
IKD_HD float log_approx(float u) {
  const uint32_t bits = float_to_bits(u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  float m = bits_to_float((bits & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  e = big ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f);  // |s| <= 0.172
  const float s2 = s * s;
  const float p = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return 2.0f * s + 2.0f * s * p + static_cast<float>(e) * 0.693147181f;
}

// sin and cos of 2*pi*u for u in [0, 1): quarter-turn reduction, Taylor polynomials on [-pi/4, pi/4].
IKD_HD void sincos_2pi(float u, float& sn, float& cs) {
  const int32_t q = static_cast<int32_t>(u * 4.0f + 0.5f);  // nearest quarter turn, 0..4
  const float a = (u - static_cast<float>(q) * 0.25f) * 6.28318531f;  // [-pi/4, pi/4]
  const float a2 = a * a;
  const float s = a * (1.0f + a2 * (-1.0f / 6 + a2 * (1.0f / 120 + a2 * (-1.0f / 5040 + a2 * (1.0f / 362880)))));
  const float c = 1.0f + a2 * (-0.5f + a2 * (1.0f / 24 + a2 * (-1.0f / 720 + a2 * (1.0f / 40320))));
  const bool odd = (q & 1) != 0;
  const float s_ = odd ? c : s, c_ = odd ? s : c;
  sn = (q & 2) ? -s_ : s_;
  cs = ((q + 1) & 2) ? -c_ : c_;
}

// Two independent standard normals for column j of the row whose key is (k0, k1).
IKD_HD void gauss_pair(uint32_t k0, uint32_t k1, uint32_t j, float& z0, float& z1) {
  const uint32_t o1 = lowbias32(lowbias32(j ^ k0) + k1);
  const uint32_t o2 = lowbias32(o1 + k0);
  const float u1 = static_cast<float>(static_cast<int32_t>((o1 >> 8) + 1u)) * 5.9604645e-8f;  // (0, 1]
  const float u2 = static_cast<float>(static_cast<int32_t>(o2 >> 8)) * 5.9604645e-8f;         // [0, 1)
  const float r = std::sqrt(-2.0f * log_approx(u1));
  float sn, cs;
  sincos_2pi(u2, sn, cs);
  z0 = r * cs;
  z1 = r * sn;
}

// The noise spectrum of (H, W) images drawn with one seed: bin (plane, fy, j) is a pure function of them.
struct NoiseGrid {
  uint64_t seed;
  int64_t H, nyq;                    // nyq: the Nyquist column W / 2 for even W, else -1
  double scale_complex, scale_real;  // noise std per bin / sigma: sqrt(H W / 2), sqrt(H W)
};

inline NoiseGrid noise_grid(uint64_t seed, int64_t H, int64_t W) {
  const double hw = static_cast<double>(H) * static_cast<double>(W);
  return {seed, H, W % 2 == 0 ? W / 2 : -1, std::sqrt(0.5 * hw), std::sqrt(hw)};
}

// The noise bin (nr, ni) at (plane, fy, j). Plain complex bins take the pair of row plane * H + fy; on the
// self-conjugate columns (DC, Nyquist) Hermitian pairs along fy share one draw (conjugated), and the self-conjugate
// bins themselves are real with the full variance sigma^2 H W.
template <typename T>
IKD_HD void noise_bin(const NoiseGrid& g, int64_t plane, int64_t fy, int64_t j, double sigma, T& nr, T& ni) {
  const bool special = j == 0 || j == g.nyq;
  const int64_t fyc = special ? folded_index(fy, g.H) : fy;
  const bool real = special && (fy == 0 || 2 * fy == g.H);
  const uint64_t key = row_key(g.seed, static_cast<uint64_t>(plane * g.H + fyc));
  float z0, z1;
  gauss_pair(static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(j), z0, z1);
  const T scale = static_cast<T>(sigma * (real ? g.scale_real : g.scale_complex));
  nr = scale * static_cast<T>(z0);
  ni = real ? T(0) : (fy == fyc ? scale : -scale) * static_cast<T>(z1);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-bin mixing rules (acc = float or double). The reference's formulas, bin by bin.
// ---------------------------------------------------------------------------------------------------------------
// complex: X' = X + lam * (S - X)
template <typename T>
IKD_HD void mix_complex(T xr, T xi, T sr, T si, T lam, T& yr, T& yi) {
  yr = xr + lam * (sr - xr);
  yi = xi + lam * (si - xi);
}

// amplitude: |X'| = |X| + lam * (|S| - |X|), arg X' = arg X (arg 0 = 0, as torch.angle)
template <typename T>
IKD_HD void mix_amplitude(T xr, T xi, T sr, T si, T lam, T& yr, T& yi) {
  const T ax = std::sqrt(xr * xr + xi * xi);
  const T as = std::sqrt(sr * sr + si * si);
  const T amp = ax + lam * (as - ax);
  const bool nz = ax > T(0);
  const T f = amp / (nz ? ax : T(1));
  yr = nz ? xr * f : amp;
  yi = nz ? xi * f : T(0);
}

}  // namespace ikd

// ---------------------------------------------------------------------------------------------------------------
// The CUDA kernel's spectral pass, bin by bin.
// ---------------------------------------------------------------------------------------------------------------
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

// Math shared by the CPU and CUDA spectral mixing kernels (host and device): the band radius, the counter-based
// Gaussian RNG and the noise bins it draws, and the per-bin mixing rules. Keep it identical on both sides: the CPU
// and CUDA kernels must agree with each other and with ikd_yolo/ops/reference.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "device/host_device.h"

namespace ikd {

enum class MixMode : int { Complex = 0, Amplitude = 1 };

// Where a spectral pass takes its source spectrum from.
enum class SourceKind : int { Spectrum = 0, Shuffle = 1, Noise = 2 };

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

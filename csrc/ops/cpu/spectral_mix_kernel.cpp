// CPU kernels of the spectral mixing ops: rfft2 (torch), ONE pass over the spectrum, irfft2 (torch), clamp in place.
//
// The pass works in place, row by row (at::parallel_for over rows; for the shuffle source over (channel, fy) row
// groups of the batch). r grows with |fx| along a row, so the band lo <= r < hi is one column interval per row, found
// by binary search with the exact float64 radius; the mixing loop then runs over that interval without a mask test
// and auto-vectorises (float loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time). The
// noise source is drawn only inside the band. The per-bin math (band radius, RNG, mixing rules) is the CUDA kernel's
// (ops/device/spectral_mix.h); the ops around the pass are ops/host.h's; schemas: ops/spectral_mix.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/cpu/target_clones.h"
#include "ops/device/spectral_mix.h"
#include "ops/host.h"

namespace ikd {
namespace {

// ----- row loops (T* point at interleaved re/im pairs; n = number of bins) ---------------------------------------

// y = mix(y, s) in place (source = another spectrum).
template <typename T>
IKD_HD void mix_row_inplace(T* __restrict y, const T* __restrict s, int64_t n, T lam, MixMode mode) {
  if (mode == MixMode::Complex) {
    for (int64_t i = 0; i < 2 * n; ++i) y[i] = y[i] + lam * (s[i] - y[i]);
  } else {
    for (int64_t j = 0; j < 2 * n; j += 2) mix_amplitude(y[j], y[j + 1], s[j], s[j + 1], lam, y[j], y[j + 1]);
  }
}

// y = mix(x, s) out of place (shuffle: y is the spectrum row, x and s are copies of rows of the batch).
template <typename T>
IKD_HD void mix_row_outofplace(T* __restrict y, const T* __restrict x, const T* __restrict s, int64_t n, T lam,
                               MixMode mode) {
  if (mode == MixMode::Complex) {
    for (int64_t i = 0; i < 2 * n; ++i) y[i] = x[i] + lam * (s[i] - x[i]);
  } else {
    for (int64_t j = 0; j < 2 * n; j += 2) mix_amplitude(x[j], x[j + 1], s[j], s[j + 1], lam, y[j], y[j + 1]);
  }
}

// Noise source on columns [j0, j1) of a row, none self-conjugate: S = X + scale * (z0 + i z1), in place.
template <typename T>
IKD_HD void noise_row(T* __restrict y, int64_t j0, int64_t j1, T lam, T scale, MixMode mode, uint32_t k0,
                      uint32_t k1) {
  if (mode == MixMode::Complex) {  // X' = X + lam * N
    for (int64_t j = j0; j < j1; ++j) {
      float z0, z1;
      gauss_pair(k0, k1, static_cast<uint32_t>(j), z0, z1);
      y[2 * j] = y[2 * j] + lam * (scale * static_cast<T>(z0));
      y[2 * j + 1] = y[2 * j + 1] + lam * (scale * static_cast<T>(z1));
    }
  } else {  // |S| = |X + N|
    for (int64_t j = j0; j < j1; ++j) {
      float z0, z1;
      gauss_pair(k0, k1, static_cast<uint32_t>(j), z0, z1);
      const T xr = y[2 * j], xi = y[2 * j + 1];
      const T sr = xr + scale * static_cast<T>(z0), si = xi + scale * static_cast<T>(z1);
      mix_amplitude(xr, xi, sr, si, lam, y[2 * j], y[2 * j + 1]);
    }
  }
}

// float instantiations compiled per ISA (the templates inline into each clone); double uses the baseline build.
IKD_CPU_CLONES void mix_row_inplace_f32(float* y, const float* s, int64_t n, float lam, MixMode mode) {
  mix_row_inplace(y, s, n, lam, mode);
}
IKD_CPU_CLONES void mix_row_outofplace_f32(float* y, const float* x, const float* s, int64_t n, float lam,
                                           MixMode mode) {
  mix_row_outofplace(y, x, s, n, lam, mode);
}
IKD_CPU_CLONES void noise_row_f32(float* y, int64_t j0, int64_t j1, float lam, float scale, MixMode mode,
                                  uint32_t k0, uint32_t k1) {
  noise_row(y, j0, j1, lam, scale, mode, k0, k1);
}

template <typename T>
void mix_row_inplace_any(T* y, const T* s, int64_t n, T lam, MixMode m) {
  if constexpr (std::is_same_v<T, float>) mix_row_inplace_f32(y, s, n, lam, m); else mix_row_inplace(y, s, n, lam, m);
}
template <typename T>
void mix_row_outofplace_any(T* y, const T* x, const T* s, int64_t n, T lam, MixMode m) {
  if constexpr (std::is_same_v<T, float>) {
    mix_row_outofplace_f32(y, x, s, n, lam, m);
  } else {
    mix_row_outofplace(y, x, s, n, lam, m);
  }
}
template <typename T>
void noise_row_any(T* y, int64_t j0, int64_t j1, T lam, T scale, MixMode m, uint32_t k0, uint32_t k1) {
  if constexpr (std::is_same_v<T, float>) {
    noise_row_f32(y, j0, j1, lam, scale, m, k0, k1);
  } else {
    noise_row(y, j0, j1, lam, scale, m, k0, k1);
  }
}

// ----- the pass ----------------------------------------------------------------------------------------------------

template <typename T>
struct Pass {
  T* y;                 // the spectrum, mixed in place
  const T* s;           // source spectrum (Spectrum) or nullptr
  const int64_t* perm;  // batch indices (Shuffle) or nullptr
  const double *lo, *hi, *lam, *sigma;
  int64_t B, C, H, W, Wr;
  MixMode mode;
  SourceKind kind;
  NoiseGrid noise;
};

// First column j in [0, wr) with radius(fy, j) >= v (radius is non-decreasing in j).
inline int64_t first_col_at_least(const std::vector<double>& fx_sq, double fy_sq, double v) {
  int64_t a = 0, b = static_cast<int64_t>(fx_sq.size());
  while (a < b) {
    const int64_t mid = (a + b) / 2;
    if (band_radius(fy_sq, fx_sq[mid]) >= v) b = mid; else a = mid + 1;
  }
  return a;
}

// A noise bin on a self-conjugate column (DC, Nyquist), see noise_bin.
template <typename T>
void noise_special_bin(T* y, int64_t plane, int64_t fy, int64_t j, const Pass<T>& p, T lam, double sigma) {
  T nr, ni;
  noise_bin(p.noise, plane, fy, j, sigma, nr, ni);
  T &yr = y[2 * j], &yi = y[2 * j + 1];
  if (p.mode == MixMode::Complex) {
    yr = yr + lam * nr;
    yi = yi + lam * ni;
  } else {
    const T xr = yr, xi = yi;
    mix_amplitude(xr, xi, xr + nr, xi + ni, lam, yr, yi);
  }
}

// The band of row fy of sample b as a column interval [j0, j1) (empty when lam is 0: X' = X).
struct BandCols {
  std::vector<double> fx_sq;
  double inv_h;
  template <typename T>
  std::pair<int64_t, int64_t> operator()(const Pass<T>& p, int64_t b, int64_t fy) const {
    const double fy_sq = freq_sq(folded_index(fy, p.H), inv_h);
    const int64_t j0 = first_col_at_least(fx_sq, fy_sq, p.lo[b]);
    const int64_t j1 = p.lam[b] == 0.0 ? j0 : std::max(j0, first_col_at_least(fx_sq, fy_sq, p.hi[b]));
    return {j0, j1};
  }
};

template <typename T>
BandCols band_cols(const Pass<T>& p) {
  BandCols bc{std::vector<double>(p.Wr), 1.0 / static_cast<double>(p.H)};
  for (int64_t j = 0; j < p.Wr; ++j) bc.fx_sq[j] = freq_sq(j, 1.0 / static_cast<double>(p.W));
  return bc;
}

// Source spectrum or noise: one task per row (B*C*H rows).
template <typename T>
void run_rows(const Pass<T>& p) {
  const BandCols cols = band_cols(p);
  const int64_t nyq = p.noise.nyq;                     // the second self-conjugate column, if any
  const int64_t interior_end = nyq > 0 ? nyq : p.Wr;  // columns [1, interior_end) are plain complex bins
  at::parallel_for(0, p.B * p.C * p.H, std::max<int64_t>(1, 16384 / p.Wr), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t plane = row / p.H, fy = row % p.H, b = plane / p.C;
      const auto [j0, j1] = cols(p, b, fy);
      if (j0 >= j1) continue;
      T* y = p.y + 2 * row * p.Wr;
      const T lam = static_cast<T>(p.lam[b]);
      if (p.kind == SourceKind::Spectrum) {
        mix_row_inplace_any(y + 2 * j0, p.s + 2 * row * p.Wr + 2 * j0, j1 - j0, lam, p.mode);
        continue;
      }
      const double sigma = p.sigma[b];
      const uint64_t key = row_key(p.noise.seed, static_cast<uint64_t>(row));
      const int64_t ja = std::max<int64_t>(j0, 1), jb = std::min(j1, interior_end);
      if (ja < jb) {
        noise_row_any(y, ja, jb, lam, static_cast<T>(sigma * p.noise.scale_complex), p.mode,
                      static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32));
      }
      if (j0 == 0) noise_special_bin(y, plane, fy, 0, p, lam, sigma);
      if (nyq > 0 && j0 <= nyq && nyq < j1) noise_special_bin(y, plane, fy, nyq, p, lam, sigma);
    }
  });
}

// Shuffle source, in place: one task per (channel, fy) row group. The group's B rows (a few KB) are copied to a
// thread-local buffer, then each sample's band is mixed from the copies of itself and of its source sample, so no
// second spectrum is allocated.
template <typename T>
void run_shuffle(const Pass<T>& p) {
  const BandCols cols = band_cols(p);
  const int64_t row_len = 2 * p.Wr, plane_len = p.H * row_len;
  at::parallel_for(0, p.C * p.H, std::max<int64_t>(1, 16384 / (p.B * p.Wr)), [&](int64_t g0, int64_t g1) {
    std::vector<T> rows(static_cast<size_t>(p.B * row_len));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t c = g / p.H, fy = g % p.H;
      T* base = p.y + c * plane_len + fy * row_len;  // row (b, c, fy) is at base + b * C * plane_len
      for (int64_t b = 0; b < p.B; ++b) {
        std::copy(base + b * p.C * plane_len, base + b * p.C * plane_len + row_len, rows.data() + b * row_len);
      }
      for (int64_t b = 0; b < p.B; ++b) {
        const auto [j0, j1] = cols(p, b, fy);
        if (j0 >= j1) continue;
        const T* x = rows.data() + b * row_len;
        const T* s = rows.data() + p.perm[b] * row_len;
        mix_row_outofplace_any(base + b * p.C * plane_len + 2 * j0, x + 2 * j0, s + 2 * j0, j1 - j0,
                               static_cast<T>(p.lam[b]), p.mode);
      }
    }
  });
}

// The CPU pass (see ops/host.h for the ops around it): always in place.
at::Tensor spectral_pass_cpu(const PassArgs& a) {
  const at::Tensor& y = a.spec;
  AT_DISPATCH_FLOATING_TYPES(a.in->x.scalar_type(), "ikd_spectral_pass_cpu", [&] {
    const Pass<scalar_t> p{reinterpret_cast<scalar_t*>(y.data_ptr()),
                           a.source ? reinterpret_cast<const scalar_t*>(a.source->const_data_ptr()) : nullptr,
                           a.perm ? a.perm->const_data_ptr<int64_t>() : nullptr,
                           a.in->lo.const_data_ptr<double>(),
                           a.in->hi.const_data_ptr<double>(),
                           a.in->lam.const_data_ptr<double>(),
                           a.sigma ? a.sigma->const_data_ptr<double>() : nullptr,
                           y.size(0), y.size(1), y.size(2), a.width, y.size(3), a.in->mode, a.kind,
                           noise_grid(a.seed, y.size(2), a.width)};
    if (a.kind == SourceKind::Shuffle) {
      run_shuffle(p);
    } else {
      run_rows(p);
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(ikd, CPU, m) { register_spectral_ops<spectral_pass_cpu>(m); }

}  // namespace ikd

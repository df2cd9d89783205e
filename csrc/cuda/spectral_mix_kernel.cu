// CUDA kernel of the spectral mixing ops: ONE pass over the rfft2 spectrum, between torch's cuFFT transforms
// (the op glue, FFTs and dispatch registration are in spectral_mix_cuda.cpp).
//
// One thread per bin (grid-stride): the band mask is computed on the fly from the bin index and the sample's lo/hi
// (the exact float64 radius of the reference), the source comes from a second spectrum, from the batch itself
// (shuffle, gathered by perm) or from the counter-based RNG (noise, drawn only inside the band).
#undef NDEBUG  // keep the device-side assert on perm (an out-of-range index must not read out of bounds silently)
#include <cuda_runtime.h>

#include <algorithm>
#include <cassert>
#include <limits>

#include "../spectral_common.h"
#include "kernels.h"

namespace ikd {
namespace cuda {
namespace {

// n / d and n % d for a fixed d: multiply-high and shift for 32-bit indices (Granlund-Montgomery, as
// at::cuda::detail::IntDivider), plain division for 64-bit ones.
template <typename index_t>
struct Divider {
  index_t d;
  explicit Divider(index_t d_) : d(d_) {}
  __device__ __forceinline__ void divmod(index_t n, index_t& q, index_t& r) const { q = n / d; r = n - q * d; }
};

template <>
struct Divider<uint32_t> {
  uint32_t d, magic, shift;
  explicit Divider(uint32_t d_) : d(d_), shift(0) {
    while (shift < 32 && (uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = (__umulhi(n, magic) + n) >> shift;
    r = n - q * d;
  }
};

template <typename T> struct Complex2;
template <> struct Complex2<float> { using type = float2; };
template <> struct Complex2<double> { using type = double2; };

template <typename T>
struct Pass {
  using C2 = typename Complex2<T>::type;
  C2* y;
  const C2* x;
  const C2* s;
  const int64_t* perm;
  const double *lo, *hi, *lam, *sigma;
  int64_t B, C, H, W, Wr, nyq;  // nyq: the Nyquist column W / 2 for even W, else -1
  double inv_h, inv_w, scale_complex, scale_real;  // noise std per bin / sigma: sqrt(HW / 2), sqrt(HW)
  MixMode mode;
  uint64_t seed;
};

// The noise bin (nr, ni) at (plane, fy, j); on the self-conjugate columns (DC, Nyquist) Hermitian pairs along fy
// share one draw (conjugated) and the self-conjugate bins are real with the full variance.
template <typename T>
__device__ __forceinline__ void noise_bin(const Pass<T>& p, int64_t plane, int64_t fy, int64_t j, double sigma, T& nr,
                                          T& ni) {
  const bool special = j == 0 || j == p.nyq;
  const int64_t fyc = special ? folded_index(fy, p.H) : fy;
  const bool real = special && (fy == 0 || 2 * fy == p.H);
  const uint64_t key = row_key(p.seed, static_cast<uint64_t>(plane * p.H + fyc));
  float z0, z1;
  gauss_pair(static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(j), z0, z1);
  const T scale = static_cast<T>(sigma * (real ? p.scale_real : p.scale_complex));
  nr = scale * static_cast<T>(z0);
  ni = real ? T(0) : (fy == fyc ? scale : -scale) * static_cast<T>(z1);
}

template <typename T, int kKind, typename index_t>
__global__ void spectral_pass_kernel(Pass<T> p, index_t n, Divider<index_t> div_wr, Divider<index_t> div_h,
                                     Divider<index_t> div_c) {
  using C2 = typename Complex2<T>::type;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    index_t row, j, plane, fy, b, c;
    div_wr.divmod(i, row, j);
    div_h.divmod(row, plane, fy);
    div_c.divmod(plane, b, c);
    const C2 xv = p.x[i];
    const double r = band_radius(freq_sq(folded_index(fy, p.H), p.inv_h), freq_sq(j, p.inv_w));
    const double lam = p.lam[b];
    if (!(r >= p.lo[b] && r < p.hi[b]) || lam == 0.0) {  // outside the band: X' = X
      if (kKind == 1) p.y[i] = xv;
      continue;
    }
    T sr, si;
    if (kKind == 2) {
      T nr, ni;
      noise_bin(p, plane, fy, j, p.sigma[b], nr, ni);
      if (p.mode == MixMode::Complex) {  // X' = X + lam * N
        p.y[i] = C2{xv.x + static_cast<T>(lam) * nr, xv.y + static_cast<T>(lam) * ni};
        continue;
      }
      sr = xv.x + nr;  // amplitude mode: |S| = |X + N|
      si = xv.y + ni;
    } else {
      C2 sv;
      if (kKind == 1) {
        const int64_t src = p.perm[b];
        assert(src >= 0 && src < p.B);
        sv = p.x[((src * p.C + static_cast<int64_t>(c)) * p.H + fy) * p.Wr + j];
      } else {
        sv = p.s[i];
      }
      sr = sv.x;
      si = sv.y;
    }
    T yr, yi;
    if (p.mode == MixMode::Complex) {
      mix_complex(xv.x, xv.y, sr, si, static_cast<T>(lam), yr, yi);
    } else {
      mix_amplitude(xv.x, xv.y, sr, si, static_cast<T>(lam), yr, yi);
    }
    p.y[i] = C2{yr, yi};
  }
}

template <typename T, int kKind, typename index_t>
void launch(const Pass<T>& p, int64_t n, cudaStream_t stream) {
  constexpr int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, int64_t{sm_count()} * 16));
  using Div = Divider<index_t>;
  spectral_pass_kernel<T, kKind, index_t><<<blocks, threads, 0, stream>>>(
      p, static_cast<index_t>(n), Div(static_cast<index_t>(p.Wr)), Div(static_cast<index_t>(p.H)),
      Div(static_cast<index_t>(p.C)));
}

template <typename T, int kKind>
void launch_any_index(const Pass<T>& p, int64_t n, cudaStream_t stream) {
  if (n <= std::numeric_limits<int32_t>::max()) {
    launch<T, kKind, uint32_t>(p, n, stream);  // 32-bit index math with fast division
  } else {
    launch<T, kKind, int64_t>(p, n, stream);
  }
}

template <typename T>
void launch_typed(const SpectralPassDesc& d, cudaStream_t stream) {
  using C2 = typename Complex2<T>::type;
  const double hw = static_cast<double>(d.H) * static_cast<double>(d.W);
  const Pass<T> p{static_cast<C2*>(d.y), static_cast<const C2*>(d.x), static_cast<const C2*>(d.s), d.perm,
                  d.lo, d.hi, d.lam, d.sigma, d.B, d.C, d.H, d.W, d.Wr, d.W % 2 == 0 ? d.W / 2 : -1,
                  1.0 / static_cast<double>(d.H), 1.0 / static_cast<double>(d.W), std::sqrt(0.5 * hw), std::sqrt(hw),
                  static_cast<MixMode>(d.mode), d.seed};
  const int64_t n = d.B * d.C * d.H * d.Wr;
  switch (d.kind) {
    case 0: launch_any_index<T, 0>(p, n, stream); break;
    case 1: launch_any_index<T, 1>(p, n, stream); break;
    default: launch_any_index<T, 2>(p, n, stream); break;
  }
}

}  // namespace

cudaError_t launch_spectral_pass(const SpectralPassDesc& d, cudaStream_t stream) {
  if (d.dtype == DType::Double) {
    launch_typed<double>(d, stream);
  } else {
    launch_typed<float>(d, stream);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace ikd

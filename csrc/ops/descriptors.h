// What the host and the device share, as plain data: the ops' enums (mix mode, source kind, dtype) and each CUDA
// launch's descriptor: what it reads and writes (filled in on the ATen side, ops/host.h) and the grid it runs on,
// computed here once for the CUDA launcher (ops/cuda) and for its host emulation (ops/emulated). The arithmetic the
// launches run is in ops/device. Neither CUDA nor ATen is included: the host compiler builds this without a CUDA
// toolkit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace ikd {

enum class MixMode : int { Complex = 0, Amplitude = 1 };

// Where a spectral pass takes its source spectrum from.
enum class SourceKind : int { Spectrum = 0, Shuffle = 1, Noise = 2 };

namespace device {

enum class DType : int { Float = 0, Double = 1, Half = 2, BFloat16 = 3 };

// CUDA's limits on a launch's grid (every device since compute capability 3.0).
constexpr int64_t kMaxGridX = 2147483647, kMaxGridY = 65535;

// One pass over an rfft2 spectrum (B, C, H, Wr) of interleaved complex values, see ops/device/spectral_mix.h.
struct SpectralPassDesc {
  void* y;               // output spectrum (may equal x)
  const void* x;         // input spectrum
  const void* s;         // source spectrum (SourceKind::Spectrum) or nullptr
  const int64_t* perm;   // batch indices (SourceKind::Shuffle) or nullptr
  const double *lo, *hi, *lam, *sigma;  // per sample, float64 (sigma only for SourceKind::Noise)
  int64_t B, C, H, W, Wr;
  int mode;  // MixMode
  int kind;  // SourceKind
  uint64_t seed;
  DType dtype;      // Float or Double
  int sms;          // streaming multiprocessors the grid is sized for
  bool wide_index;  // 64-bit index math even where 32 bits would do (tests of that path)
};

constexpr int kSpectralThreads = 256;

// One thread per bin in a grid-stride loop over at most 16 blocks per multiprocessor.
inline int spectral_blocks(int64_t bins, int sms) {
  return static_cast<int>(std::min<int64_t>((bins + kSpectralThreads - 1) / kSpectralThreads, int64_t{sms} * 16));
}

// 32-bit index math (with fast division) unless a spectrum has more bins than that holds.
inline bool spectral_wide_index(const SpectralPassDesc& d) {
  return d.wide_index || d.B * d.C * d.H * d.Wr > std::numeric_limits<int32_t>::max();
}

// adv_step on contiguous (B, C, H, W) tensors; `partial` is scratch of B * adv_step_partials(...) accumulators
// (float, or double for DType::Double).
struct AdvStepDesc {
  void *x_out, *m_out;
  const void *x_adv, *x_clean, *grad, *mom;
  void* partial;
  const double *step, *eps, *lo, *hi;  // (B,), (B,), (B, C), (B, C)
  double decay;
  int64_t B, C, HW;
  DType dtype;
  int sms;  // streaming multiprocessors the grids are sized for
};

constexpr int kAdvThreads = 256;

struct Grid2 {
  int64_t x, y;
};

// Partial L1 sums per sample: enough blocks to fill the GPU ~8x over, >= ~4k elements per block, at most 256.
inline int adv_step_partials(int64_t batch, int64_t per_sample, int sms) {
  const int64_t by_gpu = (8 * int64_t{sms} + batch - 1) / batch, by_size = (per_sample + 4095) / 4096;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_gpu, by_size), 1, 256));
}

// The L1 launch: x = the sample's partial (chunk), y walks the samples.
inline Grid2 adv_l1_grid(const AdvStepDesc& d) {
  return {adv_step_partials(d.B, d.C * d.HW, d.sms), std::min(d.B, kMaxGridY)};
}

// The update launch: y walks the (sample, channel) planes, x strides over a plane's pixels.
inline Grid2 adv_update_grid(const AdvStepDesc& d) {
  const int64_t y = std::min(d.B * d.C, kMaxGridY);
  const int64_t by_gpu = (8 * int64_t{d.sms} + y - 1) / y, by_size = (d.HW + kAdvThreads * 4 - 1) / (kAdvThreads * 4);
  return {std::clamp<int64_t>(std::min(by_gpu, by_size), 1, 65535), y};
}

}  // namespace device
}  // namespace ikd

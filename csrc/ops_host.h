// Host-side helpers shared by the CPU and CUDA op implementations: argument checks, compute dtype, the final clamp.
// The Python wrappers (ikd_yolo/ops) already check their inputs; these checks guard direct torch.ops.ikd calls.
#pragma once

#include <ATen/ATen.h>

#include "spectral_common.h"

namespace ikd {

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

}  // namespace ikd

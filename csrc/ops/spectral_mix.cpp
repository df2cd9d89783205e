// Schemas of the spectral mixing ops (torch.ops.ikd.spectral_mix, spectral_mix_shuffle, spectral_mix_noise,
// noise_spectrum). Kernels: ops/cpu/spectral_mix_kernel.cpp (CPU), ops/cuda/spectral_mix_kernel.cu with its ATen glue
// ops/cuda/spectral_mix_cuda.cpp (CUDA); the ops around the kernels' one pass are written once in ops/host.h. The
// PyTorch twin is ikd_yolo/ops/reference.py.
#include <torch/library.h>

namespace ikd {

TORCH_LIBRARY_FRAGMENT(ikd, m) {
  m.def("spectral_mix(Tensor x, Tensor source, Tensor lo, Tensor hi, Tensor lam, str mode) -> Tensor");
  m.def("spectral_mix_shuffle(Tensor x, Tensor perm, Tensor lo, Tensor hi, Tensor lam, str mode) -> Tensor");
  m.def("spectral_mix_noise(Tensor x, Tensor sigma, Tensor lo, Tensor hi, Tensor lam, str mode, int seed) -> Tensor");
  m.def("noise_spectrum(Tensor sigma, int channels, int height, int width, int seed) -> Tensor");
}

}  // namespace ikd

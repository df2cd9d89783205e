// The ikd operator library: schemas declared once here; kernels are registered per dispatch key in csrc/cpu/*.cpp
// and csrc/cuda/*_cuda.cpp (whose kernels are csrc/cuda/*_kernel.cu, their arithmetic csrc/device/*.h), the host
// emulation of the CUDA kernels in csrc/emulated/*.cpp, fake (meta) kernels in ikd_yolo/ops/_fake.py.
// Built as the Python module ikd_yolo._C, whose import registers everything with the dispatcher (torch.ops.ikd.*).
#include <Python.h>
#include <torch/library.h>

#include <cstdint>

#if defined(IKD_WITH_CUDA)
#include <cuda_runtime_api.h>  // CUDART_VERSION
#endif

namespace ikd {

// CUDA toolkit version the kernels were built with (e.g. 13000), or -1 without CUDA kernels.
int64_t cuda_version() {
#if defined(IKD_WITH_CUDA)
  return CUDART_VERSION;
#else
  return -1;
#endif
}

TORCH_LIBRARY(ikd, m) {
  m.def("spectral_mix(Tensor x, Tensor source, Tensor lo, Tensor hi, Tensor lam, str mode) -> Tensor");
  m.def("spectral_mix_shuffle(Tensor x, Tensor perm, Tensor lo, Tensor hi, Tensor lam, str mode) -> Tensor");
  m.def("spectral_mix_noise(Tensor x, Tensor sigma, Tensor lo, Tensor hi, Tensor lam, str mode, int seed) -> Tensor");
  m.def("noise_spectrum(Tensor sigma, int channels, int height, int width, int seed) -> Tensor");
  m.def(
      "adv_step(Tensor x_adv, Tensor x_clean, Tensor grad, Tensor momentum, Tensor step_size, Tensor eps, Tensor lo, "
      "Tensor hi, float decay) -> (Tensor, Tensor)");
  m.def("_cuda_version", &cuda_version);
  // The CUDA kernels emulated on the host (csrc/emulated) for a device with `sms` multiprocessors; wide_index forces
  // the 64-bit index path. For the tests: the CUDA kernels' own arithmetic, run without a GPU.
  m.def("_emulated_spectral_mix(Tensor x, Tensor source, Tensor lo, Tensor hi, Tensor lam, str mode, int sms, "
        "bool wide_index) -> Tensor");
  m.def("_emulated_spectral_mix_shuffle(Tensor x, Tensor perm, Tensor lo, Tensor hi, Tensor lam, str mode, int sms, "
        "bool wide_index) -> Tensor");
  m.def("_emulated_spectral_mix_noise(Tensor x, Tensor sigma, Tensor lo, Tensor hi, Tensor lam, str mode, int seed, "
        "int sms, bool wide_index) -> Tensor");
  m.def("_emulated_noise_spectrum(Tensor sigma, int channels, int height, int width, int seed, int sms, "
        "bool wide_index) -> Tensor");
  m.def(
      "_emulated_adv_step(Tensor x_adv, Tensor x_clean, Tensor grad, Tensor momentum, Tensor step_size, Tensor eps, "
      "Tensor lo, Tensor hi, float decay, int sms) -> (Tensor, Tensor)");
}

}  // namespace ikd

// A bare Python module so that `import ikd_yolo._C` loads the library (no pybind11 needed).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "ikd fused ops (torch.ops.ikd)", -1, nullptr};
  return PyModule_Create(&module_def);
}

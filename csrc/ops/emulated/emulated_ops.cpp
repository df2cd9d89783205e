// The test-only module ikd_yolo._C_emulated: schemas of the ops ikd::_emulated_*, the CUDA kernels emulated on the
// host (spectral_mix_emulated.cpp, adv_step_emulated.cpp) for a device with `sms` multiprocessors; wide_index forces
// the 64-bit index path. For the tests: the CUDA kernels' own arithmetic, run without a GPU. Only the tests import
// this module (ikd_yolo.ops loads ikd_yolo._C alone), so a user's torch.ops.ikd holds only the real ops.
#include <Python.h>
#include <torch/library.h>

namespace ikd {

TORCH_LIBRARY_FRAGMENT(ikd, m) {
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

// A bare Python module so that `import ikd_yolo._C_emulated` loads the library (no pybind11 needed).
PyMODINIT_FUNC PyInit__C_emulated(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C_emulated",
                                          "ikd CUDA kernels emulated on the host (torch.ops.ikd._emulated_*)", -1,
                                          nullptr};
  return PyModule_Create(&module_def);
}

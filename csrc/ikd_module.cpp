// The Python module ikd_yolo._C: importing it loads this library, whose static initialisers register the ikd ops
// with the dispatcher (torch.ops.ikd.*). Paths below are relative to csrc/, the include root. As in torchvision, each
// op family declares its schemas in ops/<op>.cpp (TORCH_LIBRARY_FRAGMENT) and registers its kernels per dispatch key
// in ops/cpu/<op>_kernel.cpp and ops/cuda/<op>_cuda.cpp (the CUDA kernels: ops/cuda/<op>_kernel.cu; their arithmetic:
// ops/device/<op>.h); the fake (meta) kernels are in ikd_yolo/ops/_fake.py. This file adds the module init and
// _cuda_version. The test-only emulated ops are another module (ops/emulated, ikd_yolo._C_emulated).
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

TORCH_LIBRARY_FRAGMENT(ikd, m) { m.def("_cuda_version", &cuda_version); }

}  // namespace ikd

// A bare Python module so that `import ikd_yolo._C` loads the library (no pybind11 needed).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "ikd fused ops (torch.ops.ikd)", -1, nullptr};
  return PyModule_Create(&module_def);
}

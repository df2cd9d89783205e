// The Python module ikd_yolo._C: importing it loads this library, whose static initialisers register the ikd ops
// with the dispatcher (torch.ops.ikd.*). Paths below are relative to csrc/, the include root. As in torchvision, each
// op family declares its schemas in ops/<op>.cpp (TORCH_LIBRARY_FRAGMENT) and registers its kernels per dispatch key
// in ops/cpu/<op>_kernel.cpp and ops/cuda/<op>_cuda.cpp (the CUDA kernels: ops/cuda/<op>_kernel.cu; their arithmetic:
// ops/device/<op>.h); the fake (meta) kernels are in ikd_yolo/ops/_fake.py. This file adds the module init,
// _cuda_version and _cuda_archs. The test-only emulated ops are another module (ops/emulated, ikd_yolo._C_emulated).
#include <Python.h>
#include <torch/library.h>

#include <cstdint>
#include <string>

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

// The GPU code the CUDA kernels were compiled to, comma-separated: sm_XY (machine code for compute capability X.Y,
// which runs on X.Z for Z >= Y) and compute_XY (PTX, compiled by the driver for X.Y and every newer GPU); setup.py
// passes the list nvcc built (IKD_CUDA_ARCHS). Empty without CUDA kernels.
#define IKD_STRINGS(...) #__VA_ARGS__
#define IKD_STRING(...) IKD_STRINGS(__VA_ARGS__)
std::string cuda_archs() {
#if defined(IKD_CUDA_ARCHS)
  return IKD_STRING(IKD_CUDA_ARCHS);
#else
  return "";
#endif
}

TORCH_LIBRARY_FRAGMENT(ikd, m) {
  m.def("_cuda_version", &cuda_version);
  m.def("_cuda_archs", &cuda_archs);
}

}  // namespace ikd

// A bare Python module so that `import ikd_yolo._C` loads the library (no pybind11 needed).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "ikd fused ops (torch.ops.ikd)", -1, nullptr};
  return PyModule_Create(&module_def);
}

// Schema of adv_step (torch.ops.ikd.adv_step), one momentum sign step of the attack. Kernels:
// ops/cpu/adv_step_kernel.cpp (CPU), ops/cuda/adv_step_kernel.cu with its ATen glue ops/cuda/adv_step_cuda.cpp (CUDA),
// their per-element arithmetic ops/device/adv_step.h. The PyTorch twin is ikd_yolo/ops/reference.py.
#include <torch/library.h>

namespace ikd {

TORCH_LIBRARY_FRAGMENT(ikd, m) {
  m.def(
      "adv_step(Tensor x_adv, Tensor x_clean, Tensor grad, Tensor momentum, Tensor step_size, Tensor eps, Tensor lo, "
      "Tensor hi, float decay) -> (Tensor, Tensor)");
}

}  // namespace ikd

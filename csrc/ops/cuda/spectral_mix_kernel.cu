// CUDA kernel of the spectral mixing ops: ONE pass over the rfft2 spectrum, between torch's cuFFT transforms
// (the op glue, FFTs and dispatch registration are in spectral_mix_cuda.cpp).
//
// One thread per bin (grid-stride): the band mask is computed on the fly from the bin index and the sample's lo/hi
// (the exact float64 radius of the reference), the source comes from a second spectrum, from the batch itself
// (shuffle, gathered by perm) or from the counter-based RNG (noise, drawn only inside the band). The bin's arithmetic
// is ops/device/spectral_mix.h, which the host emulation (ops/emulated) runs too.
#undef NDEBUG  // keep the device-side assert on perm (an out-of-range index must not read out of bounds silently)
#include <cuda_runtime.h>

#include "ops/cuda/kernels.h"
#include "ops/device/spectral_mix.h"

namespace ikd {
namespace cuda {
namespace {

using namespace device;

template <typename T, SourceKind kKind, typename index_t>
__global__ void spectral_pass_kernel(Pass<T> p, index_t n, BinIndex<index_t> index) {
  grid_stride_loop(thread_pos_x(), n, [&](index_t i) { spectral_bin<T, kKind>(p, index, i); });
}

}  // namespace

cudaError_t launch_spectral_pass(const SpectralPassDesc& d, cudaStream_t stream) {
  dispatch_spectral_pass(d, [&](const auto& pass, auto kind, auto n, const auto& index) {
    using T = typename std::decay_t<decltype(pass)>::value_type;
    spectral_pass_kernel<T, decltype(kind)::value><<<spectral_blocks(n, d.sms), kSpectralThreads, 0, stream>>>(
        pass, n, index);
  });
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace ikd

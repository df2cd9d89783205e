// IKD_HD: a function compiled for the host and, under nvcc, for the device too, inlined on both.
#pragma once

#if defined(__CUDACC__)
#define IKD_HD __host__ __device__ __forceinline__
#else
#define IKD_HD inline __attribute__((always_inline))
#endif

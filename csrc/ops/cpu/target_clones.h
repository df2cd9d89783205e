// IKD_CPU_CLONES: compile the hot CPU loops for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and baseline x86-64; the
// loader picks the best one the running CPU supports, so one wheel is fast everywhere without -march=native.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define IKD_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define IKD_CPU_CLONES
#endif

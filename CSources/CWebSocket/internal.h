/* Internal declarations shared by the engine's source files; not installed. */
#ifndef CWS_INTERNAL_H
#define CWS_INTERNAL_H

#include "cwebsocket.h"

#if defined(__x86_64__) || defined(_M_X64)
#define CWS_X86_64 1
#endif
#if defined(__aarch64__)
#define CWS_ARM64 1
#endif

/* Function attributes that enable an ISA for one function (never for the whole file). */
#define CWS_TARGET_AVX2 __attribute__((target("avx2")))
#define CWS_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

#define CWS_LIKELY(x) __builtin_expect(!!(x), 1)
#define CWS_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif

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

#include <stdatomic.h>

/* The kernels' dispatch reads the chosen path inline (a relaxed load and a predictable
 * branch) instead of calling cws_isa_active: it matters for 16-byte payloads. */
extern _Atomic int cws_active_isa_;
cws_isa cws_isa_detect_(void);

static inline cws_isa cws_isa_fast_(void) {
    int isa = atomic_load_explicit(&cws_active_isa_, memory_order_relaxed);
    return CWS_LIKELY(isa >= 0) ? (cws_isa)isa : cws_isa_detect_();
}

#endif

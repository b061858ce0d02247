/* The one dispatch point: which instruction-set path the kernels take. Chosen once,
 * at first use, from what the CPU and OS support; never from compile flags. */
#include "internal.h"


/* -1 until detected. Relaxed atomics: every thread computes the same answer. */
_Atomic int cws_active_isa_ = -1;

bool cws_isa_supported(cws_isa isa) {
    switch (isa) {
    case CWS_ISA_SCALAR:
        return true;
#if CWS_X86_64
    case CWS_ISA_SSE2:
        return true; /* part of x86-64 */
    case CWS_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    case CWS_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
#endif
#if CWS_ARM64
    case CWS_ISA_NEON:
        return true; /* part of arm64 */
#endif
    default:
        return false;
    }
}

static cws_isa detect(void) {
    static const cws_isa order[] = {CWS_ISA_AVX512, CWS_ISA_AVX2, CWS_ISA_SSE2, CWS_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (cws_isa_supported(order[i])) return order[i];
    return CWS_ISA_SCALAR;
}

cws_isa cws_isa_detect_(void) {
    int isa = (int)detect();
    atomic_store_explicit(&cws_active_isa_, isa, memory_order_relaxed);
    return (cws_isa)isa;
}

cws_isa cws_isa_active(void) { return cws_isa_fast_(); }

bool cws_isa_set(cws_isa isa) {
    if (!cws_isa_supported(isa)) return false;
    atomic_store_explicit(&cws_active_isa_, (int)isa, memory_order_relaxed);
    return true;
}

const char *cws_isa_name(cws_isa isa) {
    switch (isa) {
    case CWS_ISA_SCALAR: return "scalar";
    case CWS_ISA_SSE2: return "sse2";
    case CWS_ISA_AVX2: return "avx2";
    case CWS_ISA_AVX512: return "avx512";
    case CWS_ISA_NEON: return "neon";
    }
    return "unknown";
}

/* RFC 6455 5.3 masking: XOR a payload with a repeating 4-byte key. One kernel per
 * instruction set (scalar, SSE2, AVX2, AVX-512, NEON), chosen through cws_isa_active().
 * Every kernel masks in place (dst == src) or copies (dst and src disjoint). */
#include "internal.h"

#include <string.h>

#if CWS_X86_64
#include <immintrin.h>
#endif

/* The NEON kernel builds its key vector from a native 32-bit word, which is only the
 * key's byte order on little-endian arm64 (every arm64 OS we target); big-endian
 * builds fall back to the scalar kernel. */
#if CWS_ARM64 && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CWS_MASK_NEON 1
#include <arm_neon.h>
#endif

typedef size_t mask_fn(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                       size_t off);

/* ------------------------------------------------------------------------ */
/* Scalar: the portable reference, independent of byte order.                */
/* ------------------------------------------------------------------------ */

static size_t mask_scalar(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                          size_t off) {
    size_t end = (off + len) & 3;
    off &= 3;
    /* Align dst so the word stores never straddle a word boundary (cheap everywhere,
     * and it matters on cores without fast unaligned stores). */
    size_t head = (size_t)(-(uintptr_t)dst & 7);
    if (head > len) head = len;
    for (size_t i = 0; i < head; i++) dst[i] = src[i] ^ key[(off + i) & 3];
    dst += head;
    src += head;
    len -= head;
    off = (off + head) & 3;

    /* The key laid out in memory order, so the word XOR is right on any endianness.
     * A word spans two whole key periods, so off stays put across the loop. */
    uint8_t pattern[8];
    for (size_t i = 0; i < 8; i++) pattern[i] = key[(off + i) & 3];
    uint64_t k;
    memcpy(&k, pattern, 8);
    for (; len >= 8; len -= 8, dst += 8, src += 8) {
        uint64_t w;
        memcpy(&w, src, 8);
        w ^= k;
        memcpy(dst, &w, 8);
    }
    for (size_t i = 0; i < len; i++) dst[i] = src[i] ^ key[(off + i) & 3];
    return end;
}

/* ------------------------------------------------------------------------ */
/* Little-endian helpers shared by the vector kernels.                       */
/* ------------------------------------------------------------------------ */

#if CWS_X86_64 || CWS_MASK_NEON

/* k re-aimed at a byte `by` positions further on: a right rotation, since the
 * lowest byte of a little-endian word masks the first byte. */
static inline uint32_t key_advance(uint32_t k, size_t by) {
    unsigned s = (unsigned)(by & 3) * 8;
    return (k >> s) | (k << ((32 - s) & 31));
}

/* The key as a little-endian word whose byte i masks the byte at offset i. */
static inline uint32_t key_word(const uint8_t key[4], size_t off) {
    uint32_t k;
    memcpy(&k, key, 4);
    return key_advance(k, off);
}

/* len < 16 without a byte loop: two overlapping words. Both are loaded before either
 * is stored, so the overlap is masked once even in place. */
static inline void mask_small(uint8_t *dst, const uint8_t *src, size_t len, uint32_t k) {
    if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + len - 8, 8);
        a ^= (uint64_t)k * 0x100000001u;
        b ^= (uint64_t)key_advance(k, len - 8) * 0x100000001u;
        memcpy(dst, &a, 8);
        memcpy(dst + len - 8, &b, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + len - 4, 4);
        a ^= k;
        b ^= key_advance(k, len - 4);
        memcpy(dst, &a, 4);
        memcpy(dst + len - 4, &b, 4);
    } else {
        for (size_t i = 0; i < len; i++) dst[i] = src[i] ^ (uint8_t)(k >> (8 * i));
    }
}

#endif

/* ------------------------------------------------------------------------ */
/* x86-64                                                                    */
/* ------------------------------------------------------------------------ */

#if CWS_X86_64

/* Shape of the SSE2 and AVX2 kernels (no masked byte loads below AVX-512): the first
 * and last vectors are loaded unaligned up front, the middle runs on dst-aligned
 * vectors, and the two edge vectors are stored last. Loading the edges before any
 * store keeps in-place masking exact where they overlap the middle; storing them last
 * just rewrites the same values. */

/* 16 <= len < 32, for the AVX2 kernel's short case. */
static inline void mask_16_31(uint8_t *dst, const uint8_t *src, size_t len, uint32_t k) {
    __m128i a = _mm_loadu_si128((const __m128i *)src);
    __m128i b = _mm_loadu_si128((const __m128i *)(src + len - 16));
    a = _mm_xor_si128(a, _mm_set1_epi32((int)k));
    b = _mm_xor_si128(b, _mm_set1_epi32((int)key_advance(k, len - 16)));
    _mm_storeu_si128((__m128i *)dst, a);
    _mm_storeu_si128((__m128i *)(dst + len - 16), b);
}

static size_t mask_sse2(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        size_t off) {
    size_t end = (off + len) & 3;
    uint32_t k = key_word(key, off);
    if (len < 16) {
        mask_small(dst, src, len, k);
        return end;
    }
    __m128i head = _mm_xor_si128(_mm_loadu_si128((const __m128i *)src), _mm_set1_epi32((int)k));
    __m128i tail = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + len - 16)),
                                 _mm_set1_epi32((int)key_advance(k, len - 16)));
    size_t a = (size_t)(-(uintptr_t)dst & 15);
    size_t n = (len - a) & ~(size_t)15;
    __m128i kv = _mm_set1_epi32((int)key_advance(k, a));
    uint8_t *d = dst + a;
    const uint8_t *s = src + a;
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)s);
        __m128i v1 = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(s + 32));
        __m128i v3 = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_store_si128((__m128i *)d, _mm_xor_si128(v0, kv));
        _mm_store_si128((__m128i *)(d + 16), _mm_xor_si128(v1, kv));
        _mm_store_si128((__m128i *)(d + 32), _mm_xor_si128(v2, kv));
        _mm_store_si128((__m128i *)(d + 48), _mm_xor_si128(v3, kv));
    }
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm_store_si128((__m128i *)d, _mm_xor_si128(_mm_loadu_si128((const __m128i *)s), kv));
    _mm_storeu_si128((__m128i *)dst, head);
    _mm_storeu_si128((__m128i *)(dst + len - 16), tail);
    return end;
}

CWS_TARGET_AVX2
static size_t mask_avx2(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        size_t off) {
    size_t end = (off + len) & 3;
    uint32_t k = key_word(key, off);
    if (len < 32) {
        if (len >= 16)
            mask_16_31(dst, src, len, k);
        else
            mask_small(dst, src, len, k);
        return end;
    }
    __m256i head = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)src),
                                    _mm256_set1_epi32((int)k));
    __m256i tail = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + len - 32)),
                                    _mm256_set1_epi32((int)key_advance(k, len - 32)));
    size_t a = (size_t)(-(uintptr_t)dst & 31);
    size_t n = (len - a) & ~(size_t)31;
    __m256i kv = _mm256_set1_epi32((int)key_advance(k, a));
    uint8_t *d = dst + a;
    const uint8_t *s = src + a;
    for (; n >= 128; n -= 128, d += 128, s += 128) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)s);
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(s + 32));
        __m256i v2 = _mm256_loadu_si256((const __m256i *)(s + 64));
        __m256i v3 = _mm256_loadu_si256((const __m256i *)(s + 96));
        _mm256_store_si256((__m256i *)d, _mm256_xor_si256(v0, kv));
        _mm256_store_si256((__m256i *)(d + 32), _mm256_xor_si256(v1, kv));
        _mm256_store_si256((__m256i *)(d + 64), _mm256_xor_si256(v2, kv));
        _mm256_store_si256((__m256i *)(d + 96), _mm256_xor_si256(v3, kv));
    }
    for (; n >= 32; n -= 32, d += 32, s += 32)
        _mm256_store_si256((__m256i *)d,
                           _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)s), kv));
    _mm256_storeu_si256((__m256i *)dst, head);
    _mm256_storeu_si256((__m256i *)(dst + len - 32), tail);
    return end;
}

/* Below this many bytes the aligning head costs more than the split stores it saves. */
#define AVX512_ALIGN_MIN 256

/* Masked loads and stores touch exactly the bytes asked for (masked-off lanes never
 * fault), so edges need no overlap tricks and no byte loops. */
CWS_TARGET_AVX512
static size_t mask_avx512(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                          size_t off) {
    size_t end = (off + len) & 3;
    uint32_t k = key_word(key, off);
    __m512i kv = _mm512_set1_epi32((int)k);
    if (len <= 64) {
        __mmask64 m = len >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << len) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(m, src);
        _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(v, kv));
        return end;
    }
    if (len <= 128) {
        /* Two overlapping full vectors, both loaded before either store (so in-place
         * works): cheaper than a masked tail store, which Zen 4 executes slowly. */
        __m512i a = _mm512_loadu_si512(src);
        __m512i b = _mm512_loadu_si512(src + len - 64);
        __m512i kb = _mm512_set1_epi32((int)key_advance(k, len - 64));
        _mm512_storeu_si512(dst, _mm512_xor_si512(a, kv));
        _mm512_storeu_si512(dst + len - 64, _mm512_xor_si512(b, kb));
        return end;
    }
    if (len >= AVX512_ALIGN_MIN) {
        /* A store that splits two cache lines costs Zen 4 about half its store
         * bandwidth, so bring dst to a 64-byte boundary first. */
        size_t a = (size_t)(-(uintptr_t)dst & 63);
        if (a) {
            /* The masked head store spans the 64 bytes after dst, which overlap the
             * first full vector. In place, loading that vector after the store would
             * stall on a store Zen 4 cannot forward (~7 ns), so load both first. */
            __mmask64 m = ((__mmask64)1 << a) - 1;
            __m512i h = _mm512_maskz_loadu_epi8(m, src);
            __m512i v = _mm512_loadu_si512(src + a);
            __m512i kva = _mm512_set1_epi32((int)key_advance(k, a));
            _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(h, kv));
            _mm512_storeu_si512(dst + a, _mm512_xor_si512(v, kva));
            dst += a + 64;
            src += a + 64;
            len -= a + 64;
            kv = kva;
        }
    }
    for (; len >= 256; len -= 256, dst += 256, src += 256) {
        __m512i v0 = _mm512_loadu_si512(src);
        __m512i v1 = _mm512_loadu_si512(src + 64);
        __m512i v2 = _mm512_loadu_si512(src + 128);
        __m512i v3 = _mm512_loadu_si512(src + 192);
        _mm512_storeu_si512(dst, _mm512_xor_si512(v0, kv));
        _mm512_storeu_si512(dst + 64, _mm512_xor_si512(v1, kv));
        _mm512_storeu_si512(dst + 128, _mm512_xor_si512(v2, kv));
        _mm512_storeu_si512(dst + 192, _mm512_xor_si512(v3, kv));
    }
    for (; len >= 64; len -= 64, dst += 64, src += 64)
        _mm512_storeu_si512(dst, _mm512_xor_si512(_mm512_loadu_si512(src), kv));
    if (len) {
        __mmask64 m = ((__mmask64)1 << len) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(m, src);
        _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(v, kv));
    }
    return end;
}

#endif /* CWS_X86_64 */

/* ------------------------------------------------------------------------ */
/* arm64                                                                     */
/* ------------------------------------------------------------------------ */

#if CWS_MASK_NEON

/* Same edge scheme as the SSE2 kernel: edges loaded first, stored last. */
static size_t mask_neon(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        size_t off) {
    size_t end = (off + len) & 3;
    uint32_t k = key_word(key, off);
    if (len < 16) {
        mask_small(dst, src, len, k);
        return end;
    }
    uint8x16_t head = veorq_u8(vld1q_u8(src), vreinterpretq_u8_u32(vdupq_n_u32(k)));
    uint8x16_t tail = veorq_u8(vld1q_u8(src + len - 16),
                               vreinterpretq_u8_u32(vdupq_n_u32(key_advance(k, len - 16))));
    size_t a = (size_t)(-(uintptr_t)dst & 15);
    size_t n = (len - a) & ~(size_t)15;
    uint8x16_t kv = vreinterpretq_u8_u32(vdupq_n_u32(key_advance(k, a)));
    uint8_t *d = dst + a;
    const uint8_t *s = src + a;
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        uint8x16_t v0 = vld1q_u8(s);
        uint8x16_t v1 = vld1q_u8(s + 16);
        uint8x16_t v2 = vld1q_u8(s + 32);
        uint8x16_t v3 = vld1q_u8(s + 48);
        vst1q_u8(d, veorq_u8(v0, kv));
        vst1q_u8(d + 16, veorq_u8(v1, kv));
        vst1q_u8(d + 32, veorq_u8(v2, kv));
        vst1q_u8(d + 48, veorq_u8(v3, kv));
    }
    for (; n >= 16; n -= 16, d += 16, s += 16) vst1q_u8(d, veorq_u8(vld1q_u8(s), kv));
    vst1q_u8(dst, head);
    vst1q_u8(dst + len - 16, tail);
    return end;
}

#endif /* CWS_MASK_NEON */

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

/* Indexed by cws_isa; paths this build lacks map to scalar. Built at compile time so a
 * call costs one load and one indirect branch. */
static mask_fn *const kernels[] = {
    [CWS_ISA_SCALAR] = mask_scalar,
#if CWS_X86_64
    [CWS_ISA_SSE2] = mask_sse2,
    [CWS_ISA_AVX2] = mask_avx2,
    [CWS_ISA_AVX512] = mask_avx512,
#else
    [CWS_ISA_SSE2] = mask_scalar,
    [CWS_ISA_AVX2] = mask_scalar,
    [CWS_ISA_AVX512] = mask_scalar,
#endif
#if CWS_MASK_NEON
    [CWS_ISA_NEON] = mask_neon,
#else
    [CWS_ISA_NEON] = mask_scalar,
#endif
};

size_t cws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t key_offset) {
    return kernels[cws_isa_fast_()](buf, buf, len, key, key_offset);
}

size_t cws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                     size_t key_offset) {
    return kernels[cws_isa_fast_()](dst, src, len, key, key_offset);
}

size_t cws_mask_isa(cws_isa isa, uint8_t *dst, const uint8_t *src, size_t len,
                    const uint8_t key[4], size_t key_offset) {
    /* The active path is supported by construction; skipping the CPUID query for it
     * keeps per-path benchmarks honest for small buffers. */
    if ((unsigned)isa >= sizeof kernels / sizeof kernels[0] ||
        (isa != cws_isa_fast_() && !cws_isa_supported(isa)))
        isa = CWS_ISA_SCALAR;
    return kernels[isa](dst, src, len, key, key_offset);
}

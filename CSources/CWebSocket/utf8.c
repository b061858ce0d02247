/* UTF-8 validation (RFC 3629) for text messages and close reasons: a streaming,
 * fail-fast byte DFA (the reference, and the path for sequence edges and tails), and
 * the Keiser-Lemire lookup algorithm ("Validating UTF-8 In Less Than One Instruction
 * Per Byte") on SSSE3, AVX2, AVX-512 and NEON for long runs. */
#include "internal.h"

#include <string.h>

#if CWS_X86_64
#include <immintrin.h>
#include <stdatomic.h>
#endif
#if CWS_ARM64
#include <arm_neon.h>
#endif

/* ------------------------------------------------------------------------ */
/* The DFA                                                                   */
/* ------------------------------------------------------------------------ */

/* A shift-based DFA: each state is a bit offset (a multiple of 6) and each byte's
 * row packs, for every state, the next state at that state's offset. One step is
 * then a single variable shift, so the loop-carried chain is one instruction per
 * byte. The states follow Unicode's Table 3-7 (well-formed byte sequences).
 * ACC must be 0: the header promises state 0 means "between sequences". */
enum {
    ACC = 0,  /* between sequences */
    REJ = 6,  /* failed for good */
    C1 = 12,  /* one more 80..BF */
    C2 = 18,  /* two more 80..BF */
    C3 = 24,  /* three more 80..BF */
    E0 = 30,  /* after E0: A0..BF, then one more */
    ED = 36,  /* after ED: 80..9F (no surrogates), then one more */
    F0 = 42,  /* after F0: 90..BF, then two more */
    F4 = 48,  /* after F4: 80..8F (nothing above U+10FFFF), then two more */
};

#define TR(from, to) ((uint64_t)(to) << (from))
#define ROW(acc, c1, c2, c3, e0, ed, f0, f4)                                          \
    (TR(ACC, acc) | TR(REJ, REJ) | TR(C1, c1) | TR(C2, c2) | TR(C3, c3) | TR(E0, e0) | \
     TR(ED, ed) | TR(F0, f0) | TR(F4, f4))

#define R_ASCII ROW(ACC, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define R_CONT8 ROW(REJ, ACC, C1, C2, REJ, C1, REJ, C2) /* 80..8F */
#define R_CONT9 ROW(REJ, ACC, C1, C2, REJ, C1, C2, REJ) /* 90..9F */
#define R_CONTA ROW(REJ, ACC, C1, C2, C1, REJ, C2, REJ) /* A0..BF */
#define R_LEAD(next) ROW(next, REJ, REJ, REJ, REJ, REJ, REJ, REJ)
#define R_BAD R_LEAD(REJ) /* C0, C1 (always overlong), F5..FF (above U+10FFFF) */

#define DFA_ROW(b)                                                                       \
    ((b) < 0x80   ? R_ASCII                                                              \
     : (b) < 0x90 ? R_CONT8                                                              \
     : (b) < 0xA0 ? R_CONT9                                                              \
     : (b) < 0xC0 ? R_CONTA                                                              \
     : (b) < 0xC2 ? R_BAD                                                                \
     : (b) < 0xE0 ? R_LEAD(C1)                                                           \
     : (b) == 0xE0 ? R_LEAD(E0)                                                          \
     : (b) == 0xED ? R_LEAD(ED)                                                          \
     : (b) < 0xF0 ? R_LEAD(C2)                                                           \
     : (b) == 0xF0 ? R_LEAD(F0)                                                          \
     : (b) < 0xF4 ? R_LEAD(C3)                                                           \
     : (b) == 0xF4 ? R_LEAD(F4)                                                          \
                   : R_BAD)
#define DFA_R4(b) DFA_ROW(b), DFA_ROW((b) + 1), DFA_ROW((b) + 2), DFA_ROW((b) + 3)
#define DFA_R16(b) DFA_R4(b), DFA_R4((b) + 4), DFA_R4((b) + 8), DFA_R4((b) + 12)
#define DFA_R64(b) DFA_R16(b), DFA_R16((b) + 16), DFA_R16((b) + 32), DFA_R16((b) + 48)

static const uint64_t dfa[256] = {DFA_R64(0), DFA_R64(64), DFA_R64(128), DFA_R64(192)};

/* Only the low 6 bits of a running state are meaningful; the rest is left-over row
 * bits that the next shift (whose count the CPU takes mod 64) ignores. */
static inline uint64_t dfa_step(uint64_t st, uint8_t b) { return dfa[b] >> (st & 63); }

static const uint64_t high_bits = 0x8080808080808080u;

static inline uint64_t load64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Runs the DFA over p[0, len) from *state. Returns len, or the index of the byte that
 * made the text impossible (then *state is REJ). Reject is absorbing, so it is checked
 * once per 8 bytes and the failing chunk is replayed byte by byte. */
static size_t dfa_scan(uint32_t *state, const uint8_t *p, size_t len) {
    uint64_t st = *state;
    size_t i = 0;
    while (i + 8 <= len) {
        if ((st & 63) == ACC && !(load64(p + i) & high_bits)) {
            i += 8;
            continue;
        }
        uint64_t s = st;
        for (size_t k = 0; k < 8; k++) s = dfa_step(s, p[i + k]);
        if (CWS_UNLIKELY((s & 63) == REJ)) break;
        st = s;
        i += 8;
    }
    for (; i < len; i++) {
        st = dfa_step(st, p[i]);
        if ((st & 63) == REJ) {
            *state = REJ;
            return i;
        }
    }
    *state = (uint32_t)(st & 63);
    return len;
}

/* ------------------------------------------------------------------------ */
/* Driver shared by the vector paths                                         */
/* ------------------------------------------------------------------------ */

/* A kernel validates p[0, n), which starts between sequences and, by the choice of n,
 * ends between sequences if it is valid at all (so a sequence still open at n is an
 * error). It returns n when the text is valid, else some b no greater than the first
 * position its checks flag.
 *
 * Each DFA failure at q is flagged at q or at q + 1 (an invalid lead byte C0, C1,
 * F5..FF is only seen as such next to the byte after it), and everything flagged is
 * a real failure, so b <= q + 1: the DFA replayed from a sequence start at or before
 * b - 1 finds q exactly. */
typedef size_t (*utf8_kernel)(const uint8_t *p, size_t n);

/* Below this the vector set-up costs more than the DFA. */
#define KERNEL_MIN 32

static inline bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

/* The end of the longest prefix of p[i, len) that stops before a sequence the buffer
 * cuts short; such a sequence is left to the DFA so that its state carries over. */
static size_t sequence_end(const uint8_t *p, size_t i, size_t len) {
    for (size_t k = 1; k <= 3 && len - k >= i; k++) {
        uint8_t b = p[len - k];
        if (is_cont(b)) continue;
        size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        return k < need ? len - k : len;
    }
    return len;
}

/* Where to replay the DFA from when a kernel over p[i, ...) returned b. The text
 * before b - 1 is valid, so the last non-continuation byte at or before b - 1 starts
 * a sequence. At b - 1 itself too: had a sequence been open there, a lead or ASCII
 * byte at b - 1 would have been flagged at b - 1, before b. Valid text has at most
 * three continuation bytes in a row, so the search is short. */
static size_t replay_start(const uint8_t *p, size_t i, size_t b) {
    if (b <= i) return i;
    size_t j = b - 1;
    size_t limit = b - i > 4 ? b - 4 : i;
    while (j > limit && is_cont(p[j])) j--;
    if (j > i && is_cont(p[j])) return i; /* cannot happen; i is always exact */
    return j;
}

static bool failed(cws_utf8 *s, size_t at, size_t *error_offset) {
    s->state = REJ;
    if (error_offset) *error_offset = at;
    return false;
}

static bool feed_scalar(cws_utf8 *s, const uint8_t *p, size_t len, size_t *error_offset) {
    if (s->state == REJ) return failed(s, 0, error_offset);
    size_t at = dfa_scan(&s->state, p, len);
    return at == len ? true : failed(s, at, error_offset);
}

static bool feed_kernel(utf8_kernel kernel, cws_utf8 *s, const uint8_t *p, size_t len,
                        size_t *error_offset) {
    if (s->state == REJ) return failed(s, 0, error_offset);
    uint32_t st = s->state;
    size_t i = 0;
    /* Close a sequence the previous call left open (at most three bytes). */
    while (st != ACC && i < len) {
        st = (uint32_t)(dfa_step(st, p[i]) & 63);
        if (st == REJ) return failed(s, i, error_offset);
        i++;
    }
    if (len - i >= KERNEL_MIN) {
        size_t end = sequence_end(p, i, len);
        size_t b = kernel(p + i, end - i);
        i = b == end - i ? end : replay_start(p, i, i + b);
    }
    size_t at = dfa_scan(&st, p + i, len - i);
    s->state = st;
    return at == len - i ? true : failed(s, i + at, error_offset);
}

/* ------------------------------------------------------------------------ */
/* Keiser-Lemire tables                                                      */
/* ------------------------------------------------------------------------ */

/* Every error of a two-byte window (previous byte, current byte) is a bit set in all
 * three of: a table on the previous byte's high nibble, one on its low nibble, and
 * one on the current byte's high nibble. The AND of the three lookups is non-zero
 * exactly for bad pairs. TWO_CONTS (continuation after continuation) is the one bit
 * that is fine when a 3- or 4-byte lead sits two or three bytes back; it is XORed
 * with that condition. */
enum {
    TOO_SHORT = 1 << 0,  /* lead, then a non-continuation */
    TOO_LONG = 1 << 1,   /* ASCII, then a continuation */
    OVERLONG_3 = 1 << 2, /* E0 80..9F */
    TOO_LARGE = 1 << 3,  /* F4 90..BF, F5..FF 90..BF */
    SURROGATE = 1 << 4,  /* ED A0..BF */
    OVERLONG_2 = 1 << 5, /* C0, C1 then a continuation */
    TOO_LARGE_1000 = 1 << 6, /* F5..FF 80..8F */
    OVERLONG_4 = 1 << 6, /* F0 80..8F; shares the bit: both need an F lead, 8x next */
    TWO_CONTS = 1 << 7,
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS, /* low-nibble independent */
};

/* The three nibble tables, in lookup order: previous byte's high nibble, previous
 * byte's low nibble, current byte's high nibble. */
static const uint8_t kl_tables[3][16] = {
    {TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
     TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS, TOO_SHORT | OVERLONG_2, TOO_SHORT,
     TOO_SHORT | OVERLONG_3 | SURROGATE, TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4},
    {CARRY | OVERLONG_2 | OVERLONG_3 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY,
     CARRY | TOO_LARGE, CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
     CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
     CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
     CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
     CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, CARRY | TOO_LARGE | TOO_LARGE_1000,
     CARRY | TOO_LARGE | TOO_LARGE_1000},
    {TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
     TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
     TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
     TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
     TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE, TOO_SHORT, TOO_SHORT,
     TOO_SHORT, TOO_SHORT},
};

/* A block whose last three bytes open a sequence needs the next block to continue it.
 * These are the largest bytes that do not, per position from the end (F0.. three from
 * the end, E0.. two from the end, C0.. last); a W-byte vector loads the last W. */
static const uint8_t kl_tail_max[64] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF,
};

/* The 3/4-byte check: (prev2 >= E0 || prev3 >= F0) in bit 7, via unsigned saturating
 * subtraction, which leaves bit 7 set exactly for bytes at or above the bound. */
#define KL_SUB_THIRD (0xE0 - 0x80)
#define KL_SUB_FOURTH (0xF0 - 0x80)

#if CWS_X86_64

/* ------------------------------------------------------------------------ */
/* x86-64: SSE2 (ASCII skipping), SSSE3, AVX2, AVX-512                       */
/* ------------------------------------------------------------------------ */

/* The SSE2 path proper: no byte shuffle, so vectors only skip ASCII and the DFA takes
 * everything else. Same contract as dfa_scan. */
static size_t sse2_scan(uint32_t *state, const uint8_t *p, size_t len) {
    size_t i = 0;
    while (i + 16 <= len) {
        if (*state == ACC) {
            while (i + 64 <= len) {
                __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(p + i)),
                                         _mm_loadu_si128((const __m128i *)(p + i + 16)));
                __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(p + i + 32)),
                                         _mm_loadu_si128((const __m128i *)(p + i + 48)));
                if (_mm_movemask_epi8(_mm_or_si128(a, b))) break;
                i += 64;
            }
            if (i + 16 <= len && !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(p + i)))) {
                i += 16;
                continue;
            }
        }
        /* Non-ASCII goes through the DFA 16 bytes at a time; the ASCII probes above
         * resume once it is back between sequences. */
        size_t n = len - i < 16 ? len - i : 16;
        size_t at = dfa_scan(state, p + i, n);
        if (at != n) return i + at;
        i += n;
    }
    size_t at = dfa_scan(state, p + i, len - i);
    return i + at;
}

static bool feed_sse2_plain(cws_utf8 *s, const uint8_t *p, size_t len, size_t *error_offset) {
    if (s->state == REJ) return failed(s, 0, error_offset);
    size_t at = sse2_scan(&s->state, p, len);
    return at == len ? true : failed(s, at, error_offset);
}

#define CWS_TARGET_SSSE3 __attribute__((target("ssse3")))

CWS_TARGET_SSSE3 static inline __m128i kl_check_128(__m128i in, __m128i prev) {
    const __m128i t_prev_high = _mm_loadu_si128((const __m128i *)kl_tables[0]);
    const __m128i t_prev_low = _mm_loadu_si128((const __m128i *)kl_tables[1]);
    const __m128i t_cur_high = _mm_loadu_si128((const __m128i *)kl_tables[2]);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    __m128i prev1 = _mm_alignr_epi8(in, prev, 15);
    __m128i prev2 = _mm_alignr_epi8(in, prev, 14);
    __m128i prev3 = _mm_alignr_epi8(in, prev, 13);
    __m128i a = _mm_shuffle_epi8(t_prev_high, _mm_and_si128(_mm_srli_epi16(prev1, 4), nibble));
    __m128i b = _mm_shuffle_epi8(t_prev_low, _mm_and_si128(prev1, nibble));
    __m128i c = _mm_shuffle_epi8(t_cur_high, _mm_and_si128(_mm_srli_epi16(in, 4), nibble));
    __m128i special = _mm_and_si128(_mm_and_si128(a, b), c);
    __m128i third = _mm_subs_epu8(prev2, _mm_set1_epi8(KL_SUB_THIRD));
    __m128i fourth = _mm_subs_epu8(prev3, _mm_set1_epi8(KL_SUB_FOURTH));
    __m128i must_cont =
        _mm_and_si128(_mm_or_si128(third, fourth), _mm_set1_epi8((char)0x80));
    return _mm_xor_si128(must_cont, special);
}

CWS_TARGET_SSSE3 static inline bool open_at_end_128(__m128i v) {
    const __m128i max = _mm_loadu_si128((const __m128i *)(kl_tail_max + 48));
    __m128i over = _mm_subs_epu8(v, max);
    return _mm_movemask_epi8(_mm_cmpeq_epi8(over, _mm_setzero_si128())) != 0xFFFF;
}

CWS_TARGET_SSSE3 static inline bool nonzero_128(__m128i v) {
    return _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) != 0xFFFF;
}

CWS_TARGET_SSSE3 static size_t kernel_ssse3(const uint8_t *p, size_t n) {
    __m128i prev = _mm_setzero_si128();
    size_t i = 0;
    /* Four blocks per round: one test skips 64 bytes of ASCII, and multi-byte text
     * reuses the loads. */
    while (i + 64 <= n) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i v1 = _mm_loadu_si128((const __m128i *)(p + i + 16));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(p + i + 32));
        __m128i v3 = _mm_loadu_si128((const __m128i *)(p + i + 48));
        __m128i any = _mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3));
        if (!_mm_movemask_epi8(any)) {
            if (open_at_end_128(prev)) return i;
            prev = v3;
            i += 64;
            continue;
        }
        /* Errors are ORed over the round and tested once; the check is exact on
         * ASCII blocks too, so they need no branch of their own here. */
        __m128i err = _mm_or_si128(_mm_or_si128(kl_check_128(v0, prev), kl_check_128(v1, v0)),
                                   _mm_or_si128(kl_check_128(v2, v1), kl_check_128(v3, v2)));
        if (nonzero_128(err)) return i;
        prev = v3;
        i += 64;
    }
    for (;;) {
        __m128i in;
        bool last = false;
        if (i + 16 <= n) {
            in = _mm_loadu_si128((const __m128i *)(p + i));
        } else if (i < n) {
            /* Zero padding is ASCII: a sequence still open at n fails on it. */
            uint8_t tail[16] = {0};
            memcpy(tail, p + i, n - i);
            in = _mm_loadu_si128((const __m128i *)tail);
            last = true;
        } else {
            return open_at_end_128(prev) ? n - 1 : n;
        }
        if (nonzero_128(kl_check_128(in, prev))) return i;
        if (last) return n;
        prev = in;
        i += 16;
    }
}

/* SSSE3 is not part of x86-64, so the "sse2" path asks the CPU once. */
static bool have_ssse3(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (CWS_UNLIKELY(v < 0)) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("ssse3") ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v == 1;
}

CWS_TARGET_AVX2 static inline __m256i kl_check_256(__m256i in, __m256i prev) {
    const __m256i t_prev_high =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_tables[0]));
    const __m256i t_prev_low =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_tables[1]));
    const __m256i t_cur_high =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_tables[2]));
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    /* vpalignr works within 128-bit lanes; feed it the input moved up by one lane. */
    __m256i shifted = _mm256_permute2x128_si256(prev, in, 0x21);
    __m256i prev1 = _mm256_alignr_epi8(in, shifted, 15);
    __m256i prev2 = _mm256_alignr_epi8(in, shifted, 14);
    __m256i prev3 = _mm256_alignr_epi8(in, shifted, 13);
    __m256i a = _mm256_shuffle_epi8(t_prev_high,
                                    _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nibble));
    __m256i b = _mm256_shuffle_epi8(t_prev_low, _mm256_and_si256(prev1, nibble));
    __m256i c =
        _mm256_shuffle_epi8(t_cur_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), nibble));
    __m256i special = _mm256_and_si256(_mm256_and_si256(a, b), c);
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8(KL_SUB_THIRD));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8(KL_SUB_FOURTH));
    __m256i must_cont =
        _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must_cont, special);
}

CWS_TARGET_AVX2 static inline bool open_at_end_256(__m256i v) {
    const __m256i max = _mm256_loadu_si256((const __m256i *)(kl_tail_max + 32));
    __m256i over = _mm256_subs_epu8(v, max);
    return !_mm256_testz_si256(over, over);
}

CWS_TARGET_AVX2 static size_t kernel_avx2(const uint8_t *p, size_t n) {
    __m256i prev = _mm256_setzero_si256();
    size_t i = 0;
    /* Four blocks per round: one test skips 128 bytes of ASCII, and multi-byte text
     * reuses the loads. */
    while (i + 128 <= n) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_si256((const __m256i *)(p + i + 32 * k));
        __m256i any = _mm256_or_si256(_mm256_or_si256(v[0], v[1]), _mm256_or_si256(v[2], v[3]));
        if (!_mm256_movemask_epi8(any)) {
            if (open_at_end_256(prev)) return i;
            prev = v[3];
            i += 128;
            continue;
        }
        /* Errors are ORed over the round and tested once; the check is exact on
         * ASCII blocks too, so they need no branch of their own here. */
        __m256i err = kl_check_256(v[0], prev);
        err = _mm256_or_si256(err, kl_check_256(v[1], v[0]));
        err = _mm256_or_si256(err, kl_check_256(v[2], v[1]));
        err = _mm256_or_si256(err, kl_check_256(v[3], v[2]));
        if (!_mm256_testz_si256(err, err)) return i;
        prev = v[3];
        i += 128;
    }
    for (;;) {
        __m256i in;
        bool last = false;
        if (i + 32 <= n) {
            in = _mm256_loadu_si256((const __m256i *)(p + i));
        } else if (i < n) {
            /* Zero padding is ASCII: a sequence still open at n fails on it. */
            uint8_t tail[32] = {0};
            memcpy(tail, p + i, n - i);
            in = _mm256_loadu_si256((const __m256i *)tail);
            last = true;
        } else {
            return open_at_end_256(prev) ? n - 1 : n;
        }
        if (!_mm256_movemask_epi8(in)) {
            if (open_at_end_256(prev)) return i;
        } else {
            __m256i err = kl_check_256(in, prev);
            if (!_mm256_testz_si256(err, err)) return i;
        }
        if (last) return n;
        prev = in;
        i += 32;
    }
}

CWS_TARGET_AVX512 static inline __m512i kl_check_512(__m512i in, __m512i prev) {
    const __m512i t_prev_high =
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kl_tables[0]));
    const __m512i t_prev_low =
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kl_tables[1]));
    const __m512i t_cur_high =
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kl_tables[2]));
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    /* vpalignr works within 128-bit lanes; feed it the input moved up by one lane
     * (valignq, AVX-512F, so VBMI's byte permutes are not needed). */
    __m512i shifted = _mm512_alignr_epi64(in, prev, 6);
    __m512i prev1 = _mm512_alignr_epi8(in, shifted, 15);
    __m512i prev2 = _mm512_alignr_epi8(in, shifted, 14);
    __m512i prev3 = _mm512_alignr_epi8(in, shifted, 13);
    __m512i a = _mm512_shuffle_epi8(t_prev_high,
                                    _mm512_and_si512(_mm512_srli_epi16(prev1, 4), nibble));
    __m512i b = _mm512_shuffle_epi8(t_prev_low, _mm512_and_si512(prev1, nibble));
    __m512i c =
        _mm512_shuffle_epi8(t_cur_high, _mm512_and_si512(_mm512_srli_epi16(in, 4), nibble));
    __m512i special = _mm512_ternarylogic_epi32(a, b, c, 0x80); /* a & b & c */
    __m512i third = _mm512_subs_epu8(prev2, _mm512_set1_epi8(KL_SUB_THIRD));
    __m512i fourth = _mm512_subs_epu8(prev3, _mm512_set1_epi8(KL_SUB_FOURTH));
    /* ((third | fourth) & 0x80) ^ special */
    __m512i must_cont =
        _mm512_ternarylogic_epi32(third, fourth, _mm512_set1_epi8((char)0x80), 0xA8);
    return _mm512_xor_si512(must_cont, special);
}

CWS_TARGET_AVX512 static inline bool open_at_end_512(__m512i v) {
    const __m512i max = _mm512_loadu_si512((const void *)kl_tail_max);
    __m512i over = _mm512_subs_epu8(v, max);
    return _mm512_test_epi8_mask(over, over) != 0;
}

CWS_TARGET_AVX512 static size_t kernel_avx512(const uint8_t *p, size_t n) {
    __m512i prev = _mm512_setzero_si512();
    size_t i = 0;
    /* Four blocks per round: one test skips 256 bytes of ASCII, and multi-byte text
     * reuses the loads. */
    while (i + 256 <= n) {
        __m512i v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm512_loadu_si512((const void *)(p + i + 64 * k));
        __m512i any = _mm512_or_si512(_mm512_ternarylogic_epi32(v[0], v[1], v[2], 0xFE), v[3]);
        if (!_mm512_movepi8_mask(any)) {
            if (open_at_end_512(prev)) return i;
            prev = v[3];
            i += 256;
            continue;
        }
        /* Errors are ORed over the round and tested once; the check is exact on
         * ASCII blocks too, so they need no branch of their own here. */
        __m512i e0 = kl_check_512(v[0], prev), e1 = kl_check_512(v[1], v[0]);
        __m512i e2 = kl_check_512(v[2], v[1]), e3 = kl_check_512(v[3], v[2]);
        __m512i err = _mm512_or_si512(_mm512_ternarylogic_epi32(e0, e1, e2, 0xFE), e3);
        if (_mm512_test_epi8_mask(err, err)) return i;
        prev = v[3];
        i += 256;
    }
    for (;;) {
        __m512i in;
        bool last = false;
        if (i + 64 <= n) {
            in = _mm512_loadu_si512((const void *)(p + i));
        } else if (i < n) {
            /* A masked load does not touch (or fault on) bytes past n; the zeroes it
             * leaves are ASCII, so a sequence still open at n fails on them. */
            __mmask64 m = ((__mmask64)1 << (n - i)) - 1;
            in = _mm512_maskz_loadu_epi8(m, p + i);
            last = true;
        } else {
            return open_at_end_512(prev) ? n - 1 : n;
        }
        if (!_mm512_movepi8_mask(in)) {
            if (open_at_end_512(prev)) return i;
        } else {
            __m512i err = kl_check_512(in, prev);
            if (_mm512_test_epi8_mask(err, err)) return i;
        }
        if (last) return n;
        prev = in;
        i += 64;
    }
}

#endif /* CWS_X86_64 */

#if CWS_ARM64

/* ------------------------------------------------------------------------ */
/* arm64: NEON                                                               */
/* ------------------------------------------------------------------------ */

static inline uint8x16_t kl_check_neon(uint8x16_t in, uint8x16_t prev) {
    const uint8x16_t t_prev_high = vld1q_u8(kl_tables[0]);
    const uint8x16_t t_prev_low = vld1q_u8(kl_tables[1]);
    const uint8x16_t t_cur_high = vld1q_u8(kl_tables[2]);
    uint8x16_t prev1 = vextq_u8(prev, in, 15);
    uint8x16_t prev2 = vextq_u8(prev, in, 14);
    uint8x16_t prev3 = vextq_u8(prev, in, 13);
    uint8x16_t a = vqtbl1q_u8(t_prev_high, vshrq_n_u8(prev1, 4));
    uint8x16_t b = vqtbl1q_u8(t_prev_low, vandq_u8(prev1, vdupq_n_u8(0x0F)));
    uint8x16_t c = vqtbl1q_u8(t_cur_high, vshrq_n_u8(in, 4));
    uint8x16_t special = vandq_u8(vandq_u8(a, b), c);
    uint8x16_t third = vqsubq_u8(prev2, vdupq_n_u8(KL_SUB_THIRD));
    uint8x16_t fourth = vqsubq_u8(prev3, vdupq_n_u8(KL_SUB_FOURTH));
    uint8x16_t must_cont = vandq_u8(vorrq_u8(third, fourth), vdupq_n_u8(0x80));
    return veorq_u8(must_cont, special);
}

static inline bool open_at_end_neon(uint8x16_t v) {
    return vmaxvq_u8(vqsubq_u8(v, vld1q_u8(kl_tail_max + 48))) != 0;
}

static size_t kernel_neon(const uint8_t *p, size_t n) {
    uint8x16_t prev = vdupq_n_u8(0);
    size_t i = 0;
    while (i + 64 <= n) {
        uint8x16_t v[4];
        for (int k = 0; k < 4; k++) v[k] = vld1q_u8(p + i + 16 * k);
        uint8x16_t any = vorrq_u8(vorrq_u8(v[0], v[1]), vorrq_u8(v[2], v[3]));
        if (vmaxvq_u8(any) < 0x80) {
            if (open_at_end_neon(prev)) return i;
            prev = v[3];
            i += 64;
            continue;
        }
        /* Errors are ORed over the round: one horizontal reduction per 64 bytes. */
        uint8x16_t err = vdupq_n_u8(0);
        for (int k = 0; k < 4; k++) {
            err = vorrq_u8(err, kl_check_neon(v[k], prev));
            prev = v[k];
        }
        if (vmaxvq_u8(err) != 0) return i;
        i += 64;
    }
    for (;;) {
        uint8x16_t in;
        bool last = false;
        if (i + 16 <= n) {
            in = vld1q_u8(p + i);
        } else if (i < n) {
            /* Zero padding is ASCII: a sequence still open at n fails on it. */
            uint8_t tail[16] = {0};
            memcpy(tail, p + i, n - i);
            in = vld1q_u8(tail);
            last = true;
        } else {
            return open_at_end_neon(prev) ? n - 1 : n;
        }
        if (vmaxvq_u8(kl_check_neon(in, prev)) != 0) return i;
        if (last) return n;
        prev = in;
        i += 16;
    }
}

#endif /* CWS_ARM64 */

/* ------------------------------------------------------------------------ */
/* Public entry points                                                       */
/* ------------------------------------------------------------------------ */

void cws_utf8_init(cws_utf8 *s) { s->state = ACC; }

/* isa must be supported. */
static bool feed_on(cws_isa isa, cws_utf8 *s, const uint8_t *p, size_t len,
                    size_t *error_offset) {
    switch (isa) {
#if CWS_X86_64
    case CWS_ISA_SSE2:
        if (have_ssse3()) return feed_kernel(kernel_ssse3, s, p, len, error_offset);
        return feed_sse2_plain(s, p, len, error_offset);
    case CWS_ISA_AVX2:
        return feed_kernel(kernel_avx2, s, p, len, error_offset);
    case CWS_ISA_AVX512:
        return feed_kernel(kernel_avx512, s, p, len, error_offset);
#endif
#if CWS_ARM64
    case CWS_ISA_NEON:
        return feed_kernel(kernel_neon, s, p, len, error_offset);
#endif
    default:
        return feed_scalar(s, p, len, error_offset);
    }
}

bool cws_utf8_feed_isa(cws_isa isa, cws_utf8 *s, const uint8_t *p, size_t len,
                       size_t *error_offset) {
    return feed_on(cws_isa_supported(isa) ? isa : CWS_ISA_SCALAR, s, p, len, error_offset);
}

bool cws_utf8_feed(cws_utf8 *s, const uint8_t *p, size_t len, size_t *error_offset) {
    return feed_on(cws_isa_fast_(), s, p, len, error_offset);
}

bool cws_utf8_finish(const cws_utf8 *s) { return s->state == ACC; }

bool cws_utf8_validate(const uint8_t *p, size_t len) {
    cws_utf8 s;
    cws_utf8_init(&s);
    return cws_utf8_feed(&s, p, len, NULL) && cws_utf8_finish(&s);
}

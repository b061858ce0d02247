/* Handshake helpers: Sec-WebSocket-Accept and Sec-WebSocket-Key (RFC 6455 4.1-4.2),
 * strict base64 (RFC 4648 4), and, at the end of the file, LEGACY draft-76
 * ("hixie-76") key arithmetic that exists only for old clients and is opt-in. */
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Digests                                                                   */
/* ------------------------------------------------------------------------ */

/* OpenSSL 3 looks the algorithm up in the provider store on every one-shot call
 * (EVP_Digest, or EVP_sha1() passed to an init), and allocates a fresh EVP_MD_CTX;
 * for a handshake-sized input that costs more than the hash. So the digests are fetched
 * once and each thread keeps one context. (OpenSSL 3.0's EVP_DigestInit_ex2 still
 * frees and re-creates the provider's small hash state inside libcrypto on every init;
 * avoiding that would mean driving the provider's functions directly, and it is cheap
 * next to the lookup.) */

enum { DIGEST_SHA1 = 0, DIGEST_MD5 = 1, DIGEST_COUNT = 2 };

static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
/* Never freed: they live as long as the process, like OpenSSL's own tables. */
static EVP_MD *digest_md[DIGEST_COUNT];
static pthread_key_t digest_key[DIGEST_COUNT];
static bool digest_key_ok[DIGEST_COUNT];

/* The fast path reads the context from here (no pthread_getspecific, no
 * pthread_once); the pthread key exists only so the context is freed at thread exit. */
static _Thread_local EVP_MD_CTX *thread_ctx[DIGEST_COUNT];

/* The destructors clear the slot too, so a later call on the same exiting thread (from
 * another key's destructor) makes a fresh context instead of reusing a freed one. */
static void free_sha1_ctx(void *ctx) {
    EVP_MD_CTX_free(ctx);
    thread_ctx[DIGEST_SHA1] = NULL;
}

static void free_md5_ctx(void *ctx) {
    EVP_MD_CTX_free(ctx);
    thread_ctx[DIGEST_MD5] = NULL;
}

static void digest_init(void) {
    /* MD5 may be missing (a FIPS-only provider); then only draft-76 fails. */
    digest_md[DIGEST_SHA1] = EVP_MD_fetch(NULL, "SHA1", NULL);
    digest_md[DIGEST_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
    digest_key_ok[DIGEST_SHA1] =
        pthread_key_create(&digest_key[DIGEST_SHA1], free_sha1_ctx) == 0;
    digest_key_ok[DIGEST_MD5] = pthread_key_create(&digest_key[DIGEST_MD5], free_md5_ctx) == 0;
}

/* The calling thread's context for digest `which`, created on first use. Returns NULL
 * when it cannot be kept for the thread (out of memory or of pthread keys); the caller
 * then falls back to a context of its own. */
static EVP_MD_CTX *thread_digest_ctx(int which) {
    EVP_MD_CTX *ctx = thread_ctx[which];
    if (CWS_LIKELY(ctx != NULL))
        return ctx;
    if (!digest_key_ok[which])
        return NULL;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (pthread_setspecific(digest_key[which], ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    thread_ctx[which] = ctx;
    return ctx;
}

/* Digest of a followed by b into out (exactly out_len bytes). */
static cws_status digest2(int which, const void *a, size_t a_len, const void *b, size_t b_len,
                          uint8_t *out, unsigned out_len) {
    /* A context on this thread implies digest_init already ran on it. */
    if (CWS_UNLIKELY(thread_ctx[which] == NULL))
        pthread_once(&digest_once, digest_init);
    const EVP_MD *md = digest_md[which];
    if (CWS_UNLIKELY(md == NULL))
        return CWS_ERR_CRYPTO;

    EVP_MD_CTX *ctx = thread_digest_ctx(which);
    EVP_MD_CTX *own = NULL;
    if (CWS_UNLIKELY(ctx == NULL)) {
        own = ctx = EVP_MD_CTX_new();
        if (ctx == NULL)
            return CWS_ERR_CRYPTO;
    }

    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, a, a_len) &&
             (b_len == 0 || EVP_DigestUpdate(ctx, b, b_len)) &&
             EVP_DigestFinal_ex(ctx, buf, &n);
    EVP_MD_CTX_free(own);
    if (!ok || n != out_len)
        return CWS_ERR_CRYPTO;
    memcpy(out, buf, out_len);
    return CWS_OK;
}

/* ------------------------------------------------------------------------ */
/* Base64 (RFC 4648 4, standard alphabet, padded)                             */
/* ------------------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0xFF marks bytes outside the alphabet, '=' included: padding is checked by position. */
#define X 0xFF
static const uint8_t b64_value[256] = {
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  X,  63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X,  X,  X,  X,  X,  X,
    X,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X,  X,  X,  X,  X,
    X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
};
#undef X

size_t cws_base64_encode(char *out, const uint8_t *in, size_t len) {
    if (out == NULL || (in == NULL && len != 0))
        return 0;
    char *o = out;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = b64_alphabet[(v >> 6) & 63];
        o[3] = b64_alphabet[v & 63];
        o += 4;
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = '=';
        o[3] = '=';
        o += 4;
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = b64_alphabet[(v >> 6) & 63];
        o[3] = '=';
        o += 4;
    }
    return (size_t)(o - out);
}

size_t cws_base64_decode(uint8_t *out, size_t capacity, const char *in, size_t len) {
    const size_t fail = (size_t)-1;
    if (len % 4 != 0 || (in == NULL && len != 0))
        return fail;
    if (len == 0)
        return 0;

    const unsigned char *s = (const unsigned char *)in;
    size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    size_t out_len = len / 4 * 3 - pad;
    /* Checked before writing anything, so a short buffer is never touched. */
    if (out_len > capacity || out == NULL)
        return fail;

    size_t full = len / 4 - 1; /* groups before the last one */
    uint8_t *o = out;
    for (size_t g = 0; g < full; g++, s += 4, o += 3) {
        uint32_t a = b64_value[s[0]], b = b64_value[s[1]], c = b64_value[s[2]],
                 d = b64_value[s[3]];
        if ((a | b | c | d) & 0x80)
            return fail;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
    }

    /* Last group. Bits an encoder would leave zero must be zero, so every byte string
     * has exactly one accepted encoding (RFC 4648 3.5). */
    uint32_t a = b64_value[s[0]], b = b64_value[s[1]];
    uint32_t c = pad == 2 ? 0 : b64_value[s[2]];
    uint32_t d = pad >= 1 ? 0 : b64_value[s[3]];
    if ((a | b | c | d) & 0x80)
        return fail;
    if ((pad == 2 && (b & 0x0F) != 0) || (pad == 1 && (c & 0x03) != 0))
        return fail;
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    o[0] = (uint8_t)(v >> 16);
    if (pad < 2)
        o[1] = (uint8_t)(v >> 8);
    if (pad < 1)
        o[2] = (uint8_t)v;
    return out_len;
}

/* ------------------------------------------------------------------------ */
/* RFC 6455 keys                                                             */
/* ------------------------------------------------------------------------ */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN (sizeof(WS_GUID) - 1)
/* Keys up to this long are hashed from one stack buffer: one EVP_DigestUpdate instead
 * of two. Real keys are 24 chars; the margin covers sloppy but harmless clients. */
#define ACCEPT_STACK_KEY 64

cws_status cws_accept_key(const char *key, size_t key_len, char out[CWS_ACCEPT_LENGTH]) {
    if (key == NULL || out == NULL)
        return CWS_ERR_INVALID_ARGUMENT;
    uint8_t sha[20];
    cws_status st;
    if (key_len <= ACCEPT_STACK_KEY) {
        char buf[ACCEPT_STACK_KEY + WS_GUID_LEN];
        memcpy(buf, key, key_len);
        memcpy(buf + key_len, WS_GUID, WS_GUID_LEN);
        st = digest2(DIGEST_SHA1, buf, key_len + WS_GUID_LEN, NULL, 0, sha, sizeof sha);
    } else {
        st = digest2(DIGEST_SHA1, key, key_len, WS_GUID, WS_GUID_LEN, sha, sizeof sha);
    }
    if (st != CWS_OK)
        return st;
    cws_base64_encode(out, sha, sizeof sha);
    return CWS_OK;
}

cws_status cws_generate_key(char out[CWS_KEY_LENGTH]) {
    if (out == NULL)
        return CWS_ERR_INVALID_ARGUMENT;
    uint8_t nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return CWS_ERR_CRYPTO;
    cws_base64_encode(out, nonce, sizeof nonce);
    return CWS_OK;
}

bool cws_key_valid(const char *key, size_t key_len) {
    if (key == NULL || key_len != CWS_KEY_LENGTH)
        return false;
    /* A 16-byte buffer rejects 17 and 18 decoded bytes (one or no '='); strict decoding
     * rejects everything else that is not the canonical form. */
    uint8_t nonce[16];
    return cws_base64_decode(nonce, sizeof nonce, key, key_len) == sizeof nonce;
}

/* ------------------------------------------------------------------------ */
/* LEGACY: draft-76 ("hixie-76")                                             */
/* ------------------------------------------------------------------------ */

/* draft-ietf-hybi-thewebsocketprotocol-00 / draft-hixie-thewebsocketprotocol-76,
 * section 5.2. Kept only for clients that predate RFC 6455; nothing enables it by
 * default. The draft has the server reject a key whose number is not a multiple of
 * its spaces, and the number must fit in 32 bits because it is sent as 4 bytes. */

cws_status cws_hixie76_key_number(const char *key, size_t len, uint32_t *number) {
    if (key == NULL || number == NULL)
        return CWS_ERR_INVALID_ARGUMENT;
    uint64_t value = 0;
    size_t spaces = 0;
    bool digits = false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (c >= '0' && c <= '9') {
            value = value * 10 + (uint64_t)(c - '0');
            /* Checked per digit, so value never exceeds 10 * 2^32 and cannot wrap. */
            if (value > UINT32_MAX)
                return CWS_ERR_HANDSHAKE;
            digits = true;
        } else if (c == ' ') {
            spaces++;
        }
    }
    if (spaces == 0 || !digits || value % spaces != 0)
        return CWS_ERR_HANDSHAKE;
    *number = (uint32_t)(value / spaces);
    return CWS_OK;
}

cws_status cws_hixie76_response(const char *key1, size_t key1_len, const char *key2,
                                size_t key2_len, const uint8_t body[8], uint8_t out[16]) {
    if (body == NULL || out == NULL)
        return CWS_ERR_INVALID_ARGUMENT;
    uint32_t n1, n2;
    cws_status st = cws_hixie76_key_number(key1, key1_len, &n1);
    if (st != CWS_OK)
        return st;
    st = cws_hixie76_key_number(key2, key2_len, &n2);
    if (st != CWS_OK)
        return st;
    uint8_t challenge[16] = {
        (uint8_t)(n1 >> 24), (uint8_t)(n1 >> 16), (uint8_t)(n1 >> 8), (uint8_t)n1,
        (uint8_t)(n2 >> 24), (uint8_t)(n2 >> 16), (uint8_t)(n2 >> 8), (uint8_t)n2,
    };
    memcpy(challenge + 8, body, 8);
    return digest2(DIGEST_MD5, challenge, sizeof challenge, NULL, 0, out, 16);
}

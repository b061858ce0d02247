/* permessage-deflate (RFC 7692): raw deflate per message through zlib.
 *
 * Sending: every part of a message ends in a sync flush, so its output is complete and
 * bounded; the last part's 00 00 FF FF is stripped. Receiving: parts are inflated as
 * they arrive, the tail is fed back after the last one, and the output per message is
 * capped, so a decompression bomb costs at most the limit plus one byte. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xFF, 0xFF};

/* zlib allocates through these so each stream knows its own footprint. */
typedef struct {
    size_t bytes;
} zmem;

static voidpf zmem_alloc(voidpf opaque, uInt items, uInt size) {
    size_t n = (size_t)items * size;
    size_t *p = malloc(n + sizeof(size_t) * 2); /* two words keep 16-byte alignment */
    if (!p) return Z_NULL;
    p[0] = n;
    ((zmem *)opaque)->bytes += n;
    return p + 2;
}

static void zmem_free(voidpf opaque, voidpf address) {
    if (!address) return;
    size_t *p = (size_t *)address - 2;
    ((zmem *)opaque)->bytes -= p[0];
    free(p);
}

struct cws_deflater {
    z_stream zs;
    zmem mem;
    bool no_context_takeover;
};

struct cws_inflater {
    z_stream zs;
    zmem mem;
    bool no_context_takeover;
    uint8_t tail_fed;      /* bytes of sync_tail fed for the current message */
    uint8_t status;        /* sticky error */
    bool stream_ended;     /* the peer set BFINAL: ignore the rest of this message's tail */
    bool pending;          /* the last call filled the output: zlib may hold more */
    uint64_t max_message;  /* limit for the message in progress */
    uint64_t next_max;     /* limit for messages after it */
    uint64_t produced;     /* inflated bytes of the message in progress */
};

/* ------------------------------------------------------------------------ */
/* Compressor                                                                */
/* ------------------------------------------------------------------------ */

cws_status cws_deflater_new(cws_deflater **out, int level, int mem_level, int window_bits,
                            bool no_context_takeover) {
    if (!out) return CWS_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (level < 0 || level > 9 || mem_level < 1 || mem_level > 9 || window_bits < 9 ||
        window_bits > 15)
        return CWS_ERR_INVALID_ARGUMENT;
    cws_deflater *d = calloc(1, sizeof *d);
    if (!d) return CWS_ERR_ZLIB;
    d->zs.zalloc = zmem_alloc;
    d->zs.zfree = zmem_free;
    d->zs.opaque = &d->mem;
    /* Negative window bits: raw deflate, no zlib header or checksum. */
    if (deflateInit2(&d->zs, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        free(d);
        return CWS_ERR_ZLIB;
    }
    d->no_context_takeover = no_context_takeover;
    *out = d;
    return CWS_OK;
}

void cws_deflater_free(cws_deflater *d) {
    if (!d) return;
    deflateEnd(&d->zs);
    free(d);
}

cws_status cws_deflater_reset(cws_deflater *d) {
    return deflateReset(&d->zs) == Z_OK ? CWS_OK : CWS_ERR_ZLIB;
}

cws_status cws_inflater_reset(cws_inflater *f) {
    if (inflateReset(&f->zs) != Z_OK) return CWS_ERR_ZLIB;
    f->tail_fed = 0;
    f->status = 0;
    f->stream_ended = false;
    f->pending = false;
    f->produced = 0;
    f->max_message = f->next_max;
    return CWS_OK;
}

size_t cws_deflater_memory(const cws_deflater *d) { return sizeof *d + d->mem.bytes; }

size_t cws_inflater_memory(const cws_inflater *f) { return sizeof *f + f->mem.bytes; }

size_t cws_deflate_bound(const cws_deflater *d, size_t len) {
    /* deflateBound covers a whole stream ended by Z_FINISH; a sync flush adds an empty
     * stored block (at most 3 bits of block header, padding, and 4 bytes), and
     * deflateBound only takes uLong. */
    uLong bound = deflateBound((z_streamp)&d->zs, (uLong)len);
    return (size_t)bound + 16;
}

cws_status cws_deflate(cws_deflater *d, const uint8_t *in, size_t len, bool final,
                       uint8_t *out, size_t capacity, size_t *written) {
    *written = 0;
    if (!d || !out || (len && !in)) return CWS_ERR_INVALID_ARGUMENT;
    if (capacity < cws_deflate_bound(d, len)) return CWS_ERR_BUFFER_TOO_SMALL;
    z_stream *zs = &d->zs;
    zs->next_in = (Bytef *)(uintptr_t)in;
    zs->next_out = out;
    zs->avail_out = (uInt)(capacity > UINT32_MAX ? UINT32_MAX : capacity);
    size_t left = len;
    /* avail_in is 32 bits wide: feed very large parts in slices. */
    do {
        uInt slice = left > (1u << 30) ? (1u << 30) : (uInt)left;
        zs->avail_in = slice;
        left -= slice;
        int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        int rc = deflate(zs, flush);
        /* Z_BUF_ERROR: nothing to do (an empty part right after a flush). */
        if (rc != Z_OK && rc != Z_BUF_ERROR) return CWS_ERR_ZLIB;
        if (zs->avail_in != 0) return CWS_ERR_ZLIB; /* cannot happen with the bound */
    } while (left);
    size_t n = (size_t)(zs->next_out - out);
    if (final) {
        if (n >= 4 && memcmp(out + n - 4, sync_tail, 4) == 0) {
            n -= 4;
        }
        /* An empty message whose flush produced nothing: a lone 0x00 byte becomes an
         * empty stored block once the receiver appends 00 00 FF FF. */
        if (n == 0) out[n++] = 0x00;
        if (d->no_context_takeover && deflateReset(zs) != Z_OK) return CWS_ERR_ZLIB;
    }
    *written = n;
    return CWS_OK;
}

/* ------------------------------------------------------------------------ */
/* Decompressor                                                              */
/* ------------------------------------------------------------------------ */

cws_status cws_inflater_new(cws_inflater **out, int window_bits, bool no_context_takeover,
                            uint64_t max_message_size) {
    if (!out) return CWS_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (window_bits < 8 || window_bits > 15) return CWS_ERR_INVALID_ARGUMENT;
    cws_inflater *f = calloc(1, sizeof *f);
    if (!f) return CWS_ERR_ZLIB;
    f->zs.zalloc = zmem_alloc;
    f->zs.zfree = zmem_free;
    f->zs.opaque = &f->mem;
    if (inflateInit2(&f->zs, -window_bits) != Z_OK) {
        free(f);
        return CWS_ERR_ZLIB;
    }
    f->no_context_takeover = no_context_takeover;
    f->max_message = f->next_max = max_message_size;
    *out = f;
    return CWS_OK;
}

void cws_inflater_free(cws_inflater *f) {
    if (!f) return;
    inflateEnd(&f->zs);
    free(f);
}

void cws_inflater_set_max_message_size(cws_inflater *f, uint64_t max_message_size) {
    f->next_max = max_message_size;
    if (f->produced == 0 && f->tail_fed == 0) f->max_message = max_message_size;
}

static cws_status inflate_fail(cws_inflater *f, cws_status s) {
    f->status = (uint8_t)s;
    return s;
}

/* The peer ended its deflate stream (BFINAL). Start a new stream, keeping the window
 * when context takeover is on, since the next message may refer back into it. */
static cws_status restart_stream(cws_inflater *f) {
    uint8_t window[1 << 15];
    uInt have = 0;
    if (!f->no_context_takeover && inflateGetDictionary(&f->zs, window, &have) != Z_OK)
        return CWS_ERR_ZLIB;
    if (inflateReset(&f->zs) != Z_OK) return CWS_ERR_ZLIB;
    if (have && inflateSetDictionary(&f->zs, window, have) != Z_OK) return CWS_ERR_ZLIB;
    return CWS_OK;
}

/* Runs inflate while it has both input and room; with no input it runs once, to drain
 * output left pending by an earlier full buffer. Maps zlib's answers to ours. */
static cws_status run_inflate(cws_inflater *f) {
    do {
        uInt in_before = f->zs.avail_in, out_before = f->zs.avail_out;
        int rc = inflate(&f->zs, Z_SYNC_FLUSH);
        if (rc == Z_STREAM_END) {
            f->stream_ended = true;
            return restart_stream(f);
        }
        if (rc == Z_BUF_ERROR) break; /* no progress possible right now */
        if (rc == Z_MEM_ERROR) return CWS_ERR_ZLIB;
        if (rc != Z_OK) return CWS_ERR_COMPRESSED_DATA; /* data error, need dict, bad state */
        if (f->zs.avail_in == in_before && f->zs.avail_out == out_before) break;
    } while (f->zs.avail_in > 0 && f->zs.avail_out > 0);
    return CWS_OK;
}

cws_status cws_inflate(cws_inflater *f, const uint8_t *in, size_t len, bool final,
                       uint8_t *out, size_t capacity, size_t *consumed, size_t *written,
                       bool *done) {
    *consumed = 0;
    *written = 0;
    *done = false;
    if (!f || !out || (len && !in) || capacity == 0) return CWS_ERR_INVALID_ARGUMENT;
    if (f->status) return (cws_status)f->status;
    z_stream *zs = &f->zs;

    /* Never produce more than one byte past the limit, whatever the ratio. */
    uint64_t room = f->max_message - f->produced;
    room = room == UINT64_MAX ? room : room + 1;
    size_t cap = capacity < room ? capacity : (size_t)room;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;

    size_t used = 0;
    zs->next_in = NULL;
    zs->avail_in = 0;
    cws_status s = CWS_OK;
    if (f->pending && !f->stream_ended) s = run_inflate(f); /* output held back last time comes first */
    while (s == CWS_OK && used < len && zs->avail_out > 0 && !f->stream_ended) {
        size_t slice = len - used > (1u << 30) ? (1u << 30) : len - used;
        zs->next_in = (Bytef *)(uintptr_t)(in + used);
        zs->avail_in = (uInt)slice;
        s = run_inflate(f);
        used += slice - zs->avail_in;
        if (zs->avail_in > 0) break; /* output full, or the stream ended */
    }
    /* Bytes after a block with BFINAL belong to no stream; like zlib's own users
     * (RFC 7692's example 7.2.3.4 ends with such a byte) we skip them. */
    if (s == CWS_OK && f->stream_ended) used = len;
    if (s == CWS_OK && final && used == len && !f->stream_ended) {
        if (f->tail_fed < 4 && zs->avail_out > 0) {
            zs->next_in = (Bytef *)(uintptr_t)(sync_tail + f->tail_fed);
            zs->avail_in = (uInt)(4 - f->tail_fed);
            s = run_inflate(f);
            f->tail_fed = (uint8_t)(4 - zs->avail_in);
        }
    }
    zs->next_in = NULL;
    zs->avail_in = 0;
    size_t n = (size_t)(zs->next_out - out);
    f->pending = zs->avail_out == 0;
    f->produced += n;
    *consumed = used;
    *written = n;
    if (s != CWS_OK) return inflate_fail(f, s);
    if (f->produced > f->max_message) return inflate_fail(f, CWS_ERR_MESSAGE_TOO_BIG);

    /* The message is complete once all of it, tail included, went in and inflate had
     * room to spare: with output space left over, nothing is pending inside zlib. */
    bool input_done = final && used == len && (f->stream_ended || f->tail_fed == 4);
    if (input_done && zs->avail_out > 0) {
        *done = true;
        if (f->no_context_takeover && !f->stream_ended && inflateReset(zs) != Z_OK)
            return inflate_fail(f, CWS_ERR_ZLIB);
        f->tail_fed = 0;
        f->stream_ended = false;
        f->produced = 0;
        f->max_message = f->next_max;
    }
    return CWS_OK;
}

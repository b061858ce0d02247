/*
 * cwebsocket.h - the sans-I/O WebSocket engine (RFC 6455, RFC 7692).
 *
 * Bytes in, events out. The engine owns no sockets and no threads, and it does not
 * allocate in its hot paths: the caller owns every buffer and every state struct,
 * in the style of zlib's z_stream. Every public symbol is prefixed cws_.
 */
#ifndef CWEBSOCKET_H
#define CWEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/** Result of an engine call. Every protocol violation names the close code to send
 *  (see cws_status_close_code). */
typedef enum cws_status {
    CWS_OK = 0,
    /* 1002 protocol error */
    CWS_ERR_RESERVED_BITS = 1,        /**< RSV bit set that no extension claimed */
    CWS_ERR_UNKNOWN_OPCODE = 2,       /**< opcode 3-7 or 0xB-0xF */
    CWS_ERR_CONTROL_FRAGMENTED = 3,   /**< control frame without FIN */
    CWS_ERR_CONTROL_TOO_LONG = 4,     /**< control frame payload above 125 bytes */
    CWS_ERR_UNEXPECTED_CONTINUATION = 5, /**< continuation frame with no message in progress */
    CWS_ERR_EXPECTED_CONTINUATION = 6,   /**< new data frame while a fragmented message is open */
    CWS_ERR_UNMASKED_FRAME = 7,       /**< a server received an unmasked client frame */
    CWS_ERR_MASKED_FRAME = 8,         /**< a client received a masked server frame */
    CWS_ERR_NON_MINIMAL_LENGTH = 9,   /**< length not in its shortest encoding */
    CWS_ERR_LENGTH_HIGH_BIT = 10,     /**< 64-bit length with its most significant bit set */
    CWS_ERR_CLOSE_PAYLOAD = 11,       /**< close frame with a 1-byte payload */
    CWS_ERR_CLOSE_CODE = 12,          /**< close code not allowed on the wire (RFC 6455 7.4) */
    /* 1007 invalid payload data */
    CWS_ERR_INVALID_UTF8 = 13,        /**< text message is not valid UTF-8 */
    CWS_ERR_CLOSE_REASON_UTF8 = 14,   /**< close reason is not valid UTF-8 */
    /* 1009 message too big */
    CWS_ERR_FRAME_TOO_BIG = 15,       /**< frame payload above max_frame_size */
    CWS_ERR_MESSAGE_TOO_BIG = 16,     /**< message above max_message_size */
    /* caller errors: not caused by the peer */
    CWS_ERR_INVALID_ARGUMENT = 17,    /**< bad argument (opcode, size, NULL pointer) */
    CWS_ERR_BUFFER_TOO_SMALL = 18,    /**< output buffer too small */
    CWS_ERR_CRYPTO = 19,              /**< libcrypto failed (no entropy, no digest) */
    CWS_ERR_HANDSHAKE = 20,           /**< malformed handshake value */
    /* permessage-deflate */
    CWS_ERR_COMPRESSED_DATA = 21,     /**< corrupt deflate data from the peer (1007) */
    CWS_ERR_ZLIB = 22,                /**< zlib failed (out of memory, bad settings) (1011) */
    /* 1009, found above the engine (MessageReader counts frames per message) */
    CWS_ERR_TOO_MANY_FRAGMENTS = 23,  /**< message split into more frames than allowed */
} cws_status;

/** The close code an endpoint sends for status s: 1002, 1007, 1009, or 1011 for
 *  caller and zlib errors; 1000 for CWS_OK. */
uint16_t cws_status_close_code(cws_status s);

/** A short, static, human-readable description of s. */
const char *cws_status_message(cws_status s);

/* ------------------------------------------------------------------------ */
/* CPU dispatch                                                              */
/* ------------------------------------------------------------------------ */

/** Instruction-set paths of the kernels. */
typedef enum cws_isa {
    CWS_ISA_SCALAR = 0,  /**< portable reference code */
    CWS_ISA_SSE2 = 1,    /**< x86-64 baseline, 16-byte vectors */
    CWS_ISA_AVX2 = 2,    /**< x86-64, 32-byte vectors */
    CWS_ISA_AVX512 = 3,  /**< x86-64 AVX-512 F+BW+VL, 64-byte vectors */
    CWS_ISA_NEON = 4,    /**< arm64 Advanced SIMD, 16-byte vectors */
} cws_isa;

/** The path the kernels use: the best this CPU supports, chosen once at first use
 *  (or the one forced by cws_isa_set). */
cws_isa cws_isa_active(void);

/** Whether this CPU (and OS) can run isa. */
bool cws_isa_supported(cws_isa isa);

/** Forces every kernel onto isa (for tests and benchmarks). Returns false, changing
 *  nothing, when isa is not supported. Not meant to be called while other threads use
 *  the engine. */
bool cws_isa_set(cws_isa isa);

/** "scalar", "sse2", "avx2", "avx512" or "neon". */
const char *cws_isa_name(cws_isa isa);

/* ------------------------------------------------------------------------ */
/* Masking (RFC 6455 5.3)                                                    */
/* ------------------------------------------------------------------------ */

/** XORs len bytes of buf in place with the 4-byte key, starting at key byte
 *  key_offset (taken mod 4). Any alignment, any length. Returns the key offset of the
 *  byte after the last one, (key_offset + len) % 4, so a payload can be masked in
 *  pieces. */
size_t cws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t key_offset);

/** Like cws_mask, but reads src and writes the masked bytes to dst (one pass, for
 *  writing client frames). dst and src must be equal or not overlap. */
size_t cws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                     size_t key_offset);

/** cws_mask_copy on one specific path (dst == src masks in place). Falls back to the
 *  scalar path when the CPU does not support isa; check cws_isa_supported first. */
size_t cws_mask_isa(cws_isa isa, uint8_t *dst, const uint8_t *src, size_t len,
                    const uint8_t key[4], size_t key_offset);

/* ------------------------------------------------------------------------ */
/* UTF-8 validation (RFC 3629), streaming and fail-fast                      */
/* ------------------------------------------------------------------------ */

/** Streaming validator state: carries a partial sequence across calls. Zero it (or
 *  call cws_utf8_init) at the start of each message. */
typedef struct cws_utf8 {
    uint32_t state; /* private: 0 = between sequences */
} cws_utf8;

/** Resets s to the start of a message. */
void cws_utf8_init(cws_utf8 *s);

/** Validates the next len bytes of a message. Returns true when every byte so far can
 *  still be part of valid UTF-8. Returns false at the first byte that makes the text
 *  impossible (overlong form, surrogate, value above U+10FFFF, bad continuation or
 *  lead byte), storing that byte's index in p into *error_offset (may be NULL). After
 *  a failure the state stays failed. */
bool cws_utf8_feed(cws_utf8 *s, const uint8_t *p, size_t len, size_t *error_offset);

/** cws_utf8_feed on one specific path; falls back to scalar when unsupported. */
bool cws_utf8_feed_isa(cws_isa isa, cws_utf8 *s, const uint8_t *p, size_t len,
                       size_t *error_offset);

/** True when the message may end here: no sequence is left incomplete and no error
 *  was seen. */
bool cws_utf8_finish(const cws_utf8 *s);

/** Validates a whole buffer: cws_utf8_feed followed by cws_utf8_finish. */
bool cws_utf8_validate(const uint8_t *p, size_t len);

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

/** Opcodes (RFC 6455 5.2). */
enum {
    CWS_OP_CONTINUATION = 0x0,
    CWS_OP_TEXT = 0x1,
    CWS_OP_BINARY = 0x2,
    CWS_OP_CLOSE = 0x8,
    CWS_OP_PING = 0x9,
    CWS_OP_PONG = 0xA,
};

/** First-byte flags. */
enum {
    CWS_FIN = 0x80,
    CWS_RSV1 = 0x40,
    CWS_RSV2 = 0x20,
    CWS_RSV3 = 0x10,
};

/** Which end of the connection this engine is. */
typedef enum cws_role {
    CWS_ROLE_SERVER = 0, /**< receives masked frames, sends unmasked ones */
    CWS_ROLE_CLIENT = 1, /**< receives unmasked frames, sends masked ones */
} cws_role;

/** Largest frame header: 2 + 8 (length) + 4 (mask). */
#define CWS_MAX_HEADER_SIZE 14
/** Largest control-frame payload. */
#define CWS_MAX_CONTROL_PAYLOAD 125

/** Default limits of a parser (cws_parser_init). */
#define CWS_DEFAULT_MAX_FRAME_SIZE ((uint64_t)16 << 20)
#define CWS_DEFAULT_MAX_MESSAGE_SIZE ((uint64_t)16 << 20)

/** Whether a close code may appear in a close frame (RFC 6455 7.4): 1000-1003,
 *  1007-1014 and 3000-4999. */
bool cws_close_code_valid(uint16_t code);

/** Event flags. */
enum {
    CWS_EVENT_START = 0x01, /**< first chunk of a frame: header fields are new */
    CWS_EVENT_END = 0x02,   /**< last chunk of a frame */
    CWS_EVENT_FIN = 0x04,   /**< the frame has FIN set (last frame of its message) */
};

/** A piece of a frame. Data frames arrive in chunks as bytes arrive (a frame yields
 *  one or more events, the first with START, the last with END; an empty frame yields
 *  one event with both). Control frames are always delivered whole, in one event. */
typedef struct cws_event {
    const uint8_t *data;    /**< this chunk's payload, already unmasked */
    size_t length;          /**< bytes in this chunk */
    uint64_t frame_length;  /**< whole payload length of the frame */
    uint8_t opcode;         /**< the frame's opcode */
    uint8_t message_opcode; /**< text or binary for data frames (also continuations);
                                 the opcode for control frames */
    uint8_t rsv;            /**< RSV bits of the frame (first byte & 0x70) */
    uint8_t flags;          /**< CWS_EVENT_* */
} cws_event;

/** Incremental frame parser. Set the settings after cws_parser_init; the rest is
 *  private. Memory: sizeof(cws_parser), nothing else. */
typedef struct cws_parser {
    /* settings */
    uint64_t max_frame_size;   /**< larger frames fail with 1009 before their payload */
    uint64_t max_message_size; /**< larger messages (sum of fragments) fail with 1009 */
    uint8_t role;              /**< cws_role */
    uint8_t allowed_rsv;       /**< RSV bits an extension claimed (CWS_RSV1 for
                                    permessage-deflate: allowed on a message's first frame) */
    uint8_t validate_utf8;     /**< validate text messages without RSV1 as they arrive */

    /* private state */
    uint8_t state_;
    uint8_t status_;
    uint8_t header_len_;
    uint8_t header_need_;
    uint8_t message_opcode_;   /* opcode of the open fragmented message, or 0 */
    uint8_t message_rsv_;      /* RSV bits of the open message's first frame */
    uint8_t opcode_;
    uint8_t first_;
    uint8_t masked_;
    uint8_t mask_[4];
    uint8_t mask_offset_;
    uint8_t header_[CWS_MAX_HEADER_SIZE];
    uint64_t frame_length_;
    uint64_t remaining_;
    uint64_t message_size_;
    cws_utf8 utf8_;
    uint8_t control_len_;
    uint8_t control_[CWS_MAX_CONTROL_PAYLOAD];
} cws_parser;

/** Initialises p for role with the default limits, no RSV bits allowed and UTF-8
 *  validation on. */
void cws_parser_init(cws_parser *p, cws_role role);

/** Parses bytes from buf, unmasking payloads in place (buf must be writable), and
 *  stores up to capacity events. Event data points into buf (data frames, and control
 *  frames that arrived whole) or into the parser (control frames split across calls):
 *  valid until buf changes or the next call. Sets *consumed to the bytes used; it stops
 *  early when events are full, so call again with the rest. On a protocol violation it
 *  returns the error (sticky: later calls return it too); events before it are valid. */
cws_status cws_parse(cws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                     cws_event *events, size_t capacity, size_t *count);

/** Whether the parser sits between messages (no fragmented message open). */
bool cws_parser_idle(const cws_parser *p);

/** Frame writer. Clients mask every frame with a fresh key from OpenSSL's RAND_bytes
 *  (fetched in batches). Memory: sizeof(cws_writer). */
typedef struct cws_writer {
    uint8_t role;     /**< cws_role */
    uint8_t key_pos_; /* private */
    uint8_t keys_[256];
} cws_writer;

/** Initialises w for role. */
void cws_writer_init(cws_writer *w, cws_role role);

/** Header bytes for a payload of len (masked adds the 4-byte key). */
size_t cws_header_size(uint64_t len, bool masked);

/** Writes a frame header to out (at least CWS_MAX_HEADER_SIZE bytes). flags are
 *  CWS_FIN and RSV bits. A client writer picks a fresh key, writes it and stores it in
 *  mask_key (may be NULL for servers); the caller then masks the payload with it.
 *  Returns the header length, or 0 for an invalid opcode, a control frame that is
 *  fragmented or longer than 125 bytes, a length above 2^63-1, or a key failure. */
size_t cws_write_header(cws_writer *w, uint8_t *out, uint8_t opcode, uint8_t flags,
                        uint64_t len, uint8_t mask_key[4]);

/** Writes a whole frame (header, then the payload, masked in the same pass for
 *  clients) to out, which holds capacity bytes. Stores the frame size in *written. */
cws_status cws_write_frame(cws_writer *w, uint8_t *out, size_t capacity, uint8_t opcode,
                           uint8_t flags, const uint8_t *payload, size_t len,
                           size_t *written);

/** Writes a close payload (2-byte code, then reason) to out (125 bytes). The code must
 *  be valid on the wire; the reason valid UTF-8 of at most 123 bytes. Stores its length
 *  in *written. */
cws_status cws_write_close_payload(uint8_t out[CWS_MAX_CONTROL_PAYLOAD], uint16_t code,
                                   const uint8_t *reason, size_t reason_len,
                                   size_t *written);

/* ------------------------------------------------------------------------ */
/* permessage-deflate (RFC 7692), through zlib                               */
/* ------------------------------------------------------------------------ */

/** A message compressor: raw deflate, each message ending in a sync flush whose
 *  trailing 00 00 FF FF is stripped. Opaque; zlib owns its memory, measured at about
 *  (1 << (window_bits + 2)) + (1 << (mem_level + 9)) + 6 KiB. */
typedef struct cws_deflater cws_deflater;

/** Creates a compressor. level 0-9 (zlib levels), mem_level 1-9, window_bits 9-15
 *  (zlib cannot compress raw deflate with an 8-bit window: a peer that asks for 8 gets
 *  uncompressed messages instead, which RFC 7692 allows). no_context_takeover resets
 *  the window after every message, so one compressor can serve many connections in
 *  turn. Returns CWS_ERR_INVALID_ARGUMENT for out-of-range settings, CWS_ERR_ZLIB when
 *  zlib cannot allocate. */
cws_status cws_deflater_new(cws_deflater **out, int level, int mem_level, int window_bits,
                            bool no_context_takeover);

/** Frees a compressor (NULL is fine). */
void cws_deflater_free(cws_deflater *d);

/** Starts a new stream: forgets the window (as without context takeover). */
cws_status cws_deflater_reset(cws_deflater *d);

/** Bytes the compressor holds now: its struct and everything zlib allocated for it. */
size_t cws_deflater_memory(const cws_deflater *d);

/** Output capacity that cws_deflate needs for a part of len bytes. */
size_t cws_deflate_bound(const cws_deflater *d, size_t len);

/** Compresses the next part of a message (a whole message is one final part) into out,
 *  which must hold cws_deflate_bound(d, len) bytes; every part ends in a sync flush, so
 *  its output is complete. The final part's trailing 00 00 FF FF is stripped (RFC 7692
 *  7.2.1), and the window is reset afterwards when no_context_takeover is set. Stores
 *  the output length in *written (at least 1 byte for a final part). */
cws_status cws_deflate(cws_deflater *d, const uint8_t *in, size_t len, bool final,
                       uint8_t *out, size_t capacity, size_t *written);

/** A message decompressor with a hard limit on each message's inflated size.
 *  Opaque; zlib owns its memory, measured at about (1 << window_bits) + 7 KiB. */
typedef struct cws_inflater cws_inflater;

/** Creates a decompressor for a peer compressing with window_bits 8-15 (the window the
 *  peer agreed not to exceed). no_context_takeover resets the window after every
 *  message. Messages that inflate past max_message_size fail with
 *  CWS_ERR_MESSAGE_TOO_BIG as soon as one byte too many is produced. */
cws_status cws_inflater_new(cws_inflater **out, int window_bits, bool no_context_takeover,
                            uint64_t max_message_size);

/** Frees a decompressor (NULL is fine). */
void cws_inflater_free(cws_inflater *f);

/** Inflates the next part of a compressed message (the payload of each of its frames,
 *  as it arrives) into out (capacity bytes). Stores the input bytes used in *consumed
 *  and the output produced in *written; call again with the rest of the input (or,
 *  when all input was used but *done is false and *written == capacity, with len 0) to
 *  continue. final marks the message's last part: after its input the 00 00 FF FF tail
 *  is fed, and *done is set once the whole message has come out. A block with BFINAL
 *  ends the peer's stream: the rest of that message is ignored and the next message
 *  starts a new stream (keeping the window with context takeover). Corrupt data fails
 *  with CWS_ERR_COMPRESSED_DATA (1007); errors are sticky. */
cws_status cws_inflate(cws_inflater *f, const uint8_t *in, size_t len, bool final,
                       uint8_t *out, size_t capacity, size_t *consumed, size_t *written,
                       bool *done);

/** Starts a new stream: forgets the window, any message in progress and any error. */
cws_status cws_inflater_reset(cws_inflater *f);

/** Bytes the decompressor holds now: its struct and everything zlib allocated for it
 *  (zlib allocates the window at the first message, not at creation). */
size_t cws_inflater_memory(const cws_inflater *f);

/** Changes the per-message limit (takes effect for the next message). */
void cws_inflater_set_max_message_size(cws_inflater *f, uint64_t max_message_size);

/* ------------------------------------------------------------------------ */
/* Handshake helpers (libcrypto)                                             */
/* ------------------------------------------------------------------------ */

/** Length of a Sec-WebSocket-Key: base64 of 16 bytes. */
#define CWS_KEY_LENGTH 24
/** Length of a Sec-WebSocket-Accept value: base64 of a SHA-1 digest. */
#define CWS_ACCEPT_LENGTH 28

/** Computes Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) into out (28 chars, not
 *  NUL-terminated). key is taken as given (the caller trims it). */
cws_status cws_accept_key(const char *key, size_t key_len, char out[CWS_ACCEPT_LENGTH]);

/** Generates a random client key (16 bytes from RAND_bytes, base64) into out (24 chars,
 *  not NUL-terminated). */
cws_status cws_generate_key(char out[CWS_KEY_LENGTH]);

/** Whether key is a valid Sec-WebSocket-Key: canonical base64 that decodes to exactly
 *  16 bytes. */
bool cws_key_valid(const char *key, size_t key_len);

/** Standard base64 (with padding) of len bytes into out, which holds
 *  4 * ((len + 2) / 3) chars. Returns the chars written (no NUL). */
size_t cws_base64_encode(char *out, const uint8_t *in, size_t len);

/** Decodes standard, padded base64 into out (capacity bytes). Returns the decoded
 *  length, or (size_t)-1 for malformed input or a too small out. */
size_t cws_base64_decode(uint8_t *out, size_t capacity, const char *in, size_t len);

/** LEGACY draft-76 ("hixie-76") support. Off by default everywhere above the engine;
 *  only for old clients that still speak it. Parses a Sec-WebSocket-Key1/Key2 value: the
 *  digits form a number that is divided by the count of spaces. Fails when there are no
 *  spaces, no digits, the number overflows 32 bits, or it is not a multiple of the
 *  spaces. */
cws_status cws_hixie76_key_number(const char *key, size_t len, uint32_t *number);

/** LEGACY draft-76: the 16-byte response body, MD5(big-endian number1, number2, the
 *  8-byte request body). */
cws_status cws_hixie76_response(const char *key1, size_t key1_len, const char *key2,
                                size_t key2_len, const uint8_t body[8], uint8_t out[16]);

#ifdef __cplusplus
}
#endif

#endif /* CWEBSOCKET_H */

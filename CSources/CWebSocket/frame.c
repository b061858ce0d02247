/* RFC 6455 frame parser (incremental, sans-I/O) and frame writer.
 *
 * The parser validates each header as soon as the bytes that decide it have arrived
 * (most rules need only the first two bytes), so a bad or oversized frame fails before
 * its payload is read. Data payloads are unmasked in place and handed out in chunks as
 * they arrive; control payloads (at most 125 bytes) are handed out whole. */
#include "internal.h"

#include <openssl/rand.h>
#include <string.h>

enum { S_HEADER = 0, S_DATA = 1, S_CONTROL = 2, S_FAILED = 3 };

bool cws_close_code_valid(uint16_t code) {
    /* 1004 is reserved; 1005, 1006 and 1015 are for reporting only, never on the wire;
     * 1016-2999 are unassigned; 3000-4999 belong to libraries and applications. */
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;
    return code >= 3000 && code <= 4999;
}

void cws_parser_init(cws_parser *p, cws_role role) {
    memset(p, 0, sizeof *p);
    p->max_frame_size = CWS_DEFAULT_MAX_FRAME_SIZE;
    p->max_message_size = CWS_DEFAULT_MAX_MESSAGE_SIZE;
    p->role = (uint8_t)role;
    p->validate_utf8 = 1;
}

bool cws_parser_idle(const cws_parser *p) {
    return p->message_opcode_ == 0 && p->state_ == S_HEADER && p->header_len_ == 0;
}

static cws_status fail(cws_parser *p, cws_status s) {
    p->state_ = S_FAILED;
    p->status_ = (uint8_t)s;
    return s;
}

static bool is_known_opcode(uint8_t op) {
    return op <= CWS_OP_BINARY || (op >= CWS_OP_CLOSE && op <= CWS_OP_PONG);
}

/* Checks everything the first two header bytes decide, and returns the full header
 * length through *need. */
static cws_status check_first_bytes(const cws_parser *p, uint8_t b0, uint8_t b1, size_t *need) {
    uint8_t op = b0 & 0x0F, rsv = b0 & 0x70, len7 = b1 & 0x7F;
    bool control = (op & 0x08) != 0;
    if (!is_known_opcode(op)) return CWS_ERR_UNKNOWN_OPCODE;
    if (rsv & ~p->allowed_rsv) return CWS_ERR_RESERVED_BITS;
    /* An extension's RSV bits mark a whole message, so they belong on its first frame. */
    if (rsv && (control || op == CWS_OP_CONTINUATION)) return CWS_ERR_RESERVED_BITS;
    bool masked = (b1 & 0x80) != 0;
    if (p->role == CWS_ROLE_SERVER && !masked) return CWS_ERR_UNMASKED_FRAME;
    if (p->role == CWS_ROLE_CLIENT && masked) return CWS_ERR_MASKED_FRAME;
    if (control) {
        if (!(b0 & CWS_FIN)) return CWS_ERR_CONTROL_FRAGMENTED;
        if (len7 > CWS_MAX_CONTROL_PAYLOAD) return CWS_ERR_CONTROL_TOO_LONG;
        if (op == CWS_OP_CLOSE && len7 == 1) return CWS_ERR_CLOSE_PAYLOAD;
    } else if (op == CWS_OP_CONTINUATION) {
        if (p->message_opcode_ == 0) return CWS_ERR_UNEXPECTED_CONTINUATION;
    } else if (p->message_opcode_ != 0) {
        return CWS_ERR_EXPECTED_CONTINUATION;
    }
    *need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    return CWS_OK;
}

/* Decodes a complete header h (already checked by check_first_bytes) and enters the
 * payload state. */
static cws_status begin_frame(cws_parser *p, const uint8_t *h) {
    uint8_t b0 = h[0], b1 = h[1], op = b0 & 0x0F, len7 = b1 & 0x7F;
    const uint8_t *q = h + 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)q[0] << 8) | q[1];
        q += 2;
        if (len < 126) return CWS_ERR_NON_MINIMAL_LENGTH;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | q[i];
        q += 8;
        if (len >> 63) return CWS_ERR_LENGTH_HIGH_BIT;
        if (len <= 0xFFFF) return CWS_ERR_NON_MINIMAL_LENGTH;
    }
    p->masked_ = (b1 & 0x80) != 0;
    if (p->masked_) memcpy(p->mask_, q, 4);
    p->mask_offset_ = 0;
    p->opcode_ = op;
    p->first_ = 1;
    p->frame_length_ = len;
    p->remaining_ = len;
    p->header_[0] = b0; /* keeps FIN and RSV bits for the events */

    if (op & 0x08) {
        p->control_len_ = 0;
        p->state_ = S_CONTROL;
        return CWS_OK;
    }
    if (len > p->max_frame_size) return CWS_ERR_FRAME_TOO_BIG;
    if (op != CWS_OP_CONTINUATION) {
        p->message_opcode_ = op;
        p->message_rsv_ = b0 & 0x70;
        p->message_size_ = 0;
        cws_utf8_init(&p->utf8_);
    }
    if (len > p->max_message_size - p->message_size_) return CWS_ERR_MESSAGE_TOO_BIG;
    p->message_size_ += len;
    p->state_ = S_DATA;
    return CWS_OK;
}

static void fill_event(const cws_parser *p, cws_event *e, const uint8_t *data, size_t n,
                       uint8_t message_opcode, bool end) {
    e->data = data;
    e->length = n;
    e->frame_length = p->frame_length_;
    e->opcode = p->opcode_;
    e->message_opcode = message_opcode;
    e->rsv = p->header_[0] & 0x70;
    e->flags = (uint8_t)((p->first_ ? CWS_EVENT_START : 0) | (end ? CWS_EVENT_END : 0) |
                         ((p->header_[0] & CWS_FIN) ? CWS_EVENT_FIN : 0));
}

static bool validates_text(const cws_parser *p) {
    return p->validate_utf8 && p->message_opcode_ == CWS_OP_TEXT &&
           !(p->message_rsv_ & CWS_RSV1);
}

/* Checks a whole control payload: close frames carry a valid code and a UTF-8 reason. */
static cws_status check_control(const cws_parser *p, const uint8_t *data, size_t n) {
    if (p->opcode_ != CWS_OP_CLOSE || n == 0) return CWS_OK;
    uint16_t code = (uint16_t)((data[0] << 8) | data[1]);
    if (!cws_close_code_valid(code)) return CWS_ERR_CLOSE_CODE;
    if (!cws_utf8_validate(data + 2, n - 2)) return CWS_ERR_CLOSE_REASON_UTF8;
    return CWS_OK;
}

cws_status cws_parse(cws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                     cws_event *events, size_t capacity, size_t *count) {
    size_t pos = 0, n = 0;
    cws_status st = CWS_OK;
    *consumed = 0;
    *count = 0;
    if (p->state_ == S_FAILED) return (cws_status)p->status_;
    if (len > 0 && buf == NULL) return CWS_ERR_INVALID_ARGUMENT;

    while (n < capacity) {
        if (p->state_ == S_HEADER) {
            size_t avail = len - pos, need = 0;
            if (p->header_len_ == 0 && avail >= 2) {
                /* Fast path: the header is (at least partly) in buf. */
                if ((st = check_first_bytes(p, buf[pos], buf[pos + 1], &need))) goto out;
                if (avail >= need) {
                    if ((st = begin_frame(p, buf + pos))) goto out;
                    pos += need;
                } else {
                    memcpy(p->header_, buf + pos, avail);
                    p->header_len_ = (uint8_t)avail;
                    p->header_need_ = (uint8_t)need;
                    pos = len;
                    break;
                }
            } else {
                /* Slow path: the header arrives across calls. */
                if (avail == 0) break;
                if (p->header_len_ < 2) {
                    p->header_[p->header_len_++] = buf[pos++];
                    if (p->header_len_ < 2) break;
                    if ((st = check_first_bytes(p, p->header_[0], p->header_[1], &need))) goto out;
                    p->header_need_ = (uint8_t)need;
                }
                size_t take = p->header_need_ - p->header_len_;
                if (take > len - pos) take = len - pos;
                memcpy(p->header_ + p->header_len_, buf + pos, take);
                p->header_len_ = (uint8_t)(p->header_len_ + take);
                pos += take;
                if (p->header_len_ < p->header_need_) break;
                p->header_len_ = 0;
                uint8_t h[CWS_MAX_HEADER_SIZE];
                memcpy(h, p->header_, sizeof h);
                if ((st = begin_frame(p, h))) goto out;
            }
            if (p->state_ == S_DATA && p->remaining_ == 0) {
                /* An empty data frame is complete the moment its header is. */
                if (p->header_[0] & CWS_FIN) {
                    if (validates_text(p) && !cws_utf8_finish(&p->utf8_)) {
                        st = CWS_ERR_INVALID_UTF8;
                        goto out;
                    }
                }
                fill_event(p, &events[n++], buf ? buf + pos : NULL, 0, p->message_opcode_, true);
                if (p->header_[0] & CWS_FIN) p->message_opcode_ = 0;
                p->state_ = S_HEADER;
            }
        } else if (p->state_ == S_DATA) {
            size_t avail = len - pos;
            if (avail == 0) break;
            size_t take = p->remaining_ < avail ? (size_t)p->remaining_ : avail;
            uint8_t *chunk = buf + pos;
            if (p->masked_)
                p->mask_offset_ = (uint8_t)cws_mask(chunk, take, p->mask_, p->mask_offset_);
            if (validates_text(p)) {
                size_t bad = 0;
                if (!cws_utf8_feed(&p->utf8_, chunk, take, &bad)) {
                    pos += bad;
                    st = CWS_ERR_INVALID_UTF8;
                    goto out;
                }
            }
            pos += take;
            p->remaining_ -= take;
            bool end = p->remaining_ == 0;
            bool fin = (p->header_[0] & CWS_FIN) != 0;
            if (end && fin && validates_text(p) && !cws_utf8_finish(&p->utf8_)) {
                st = CWS_ERR_INVALID_UTF8;
                goto out;
            }
            fill_event(p, &events[n++], chunk, take, p->message_opcode_, end);
            p->first_ = 0;
            if (end) {
                if (fin) p->message_opcode_ = 0;
                p->state_ = S_HEADER;
            }
        } else { /* S_CONTROL */
            size_t avail = len - pos, need = (size_t)p->remaining_;
            if (p->control_len_ == 0 && avail >= need) {
                /* Whole payload in buf: unmask in place, no copy. */
                uint8_t *data = buf ? buf + pos : NULL;
                if (p->masked_ && need) cws_mask(data, need, p->mask_, 0);
                if ((st = check_control(p, data, need))) goto out;
                fill_event(p, &events[n++], data, need, p->opcode_, true);
                pos += need;
                p->state_ = S_HEADER;
            } else {
                if (avail == 0) break;
                size_t take = need - p->control_len_;
                if (take > avail) take = avail;
                if (p->masked_)
                    p->mask_offset_ = (uint8_t)cws_mask_copy(p->control_ + p->control_len_, buf + pos,
                                                             take, p->mask_, p->mask_offset_);
                else
                    memcpy(p->control_ + p->control_len_, buf + pos, take);
                p->control_len_ = (uint8_t)(p->control_len_ + take);
                pos += take;
                if (p->control_len_ < need) break;
                if ((st = check_control(p, p->control_, need))) goto out;
                fill_event(p, &events[n++], p->control_, need, p->opcode_, true);
                p->control_len_ = 0;
                p->state_ = S_HEADER;
                /* The next split control frame would reuse control_ under this event. */
                break;
            }
        }
    }
out:
    *consumed = pos;
    *count = n;
    if (st != CWS_OK) return fail(p, st);
    return CWS_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

enum { KEYS_PER_BATCH = sizeof(((cws_writer *)0)->keys_) / 4 };

void cws_writer_init(cws_writer *w, cws_role role) {
    memset(w, 0, sizeof *w);
    w->role = (uint8_t)role;
    w->key_pos_ = KEYS_PER_BATCH; /* empty: the first masked frame fetches a batch */
}

/* Fresh masking keys come from a batch of RAND_bytes output: one libcrypto call per
 * 64 frames instead of per frame, with the same unpredictability. */
static bool next_key(cws_writer *w, uint8_t key[4]) {
    if (w->key_pos_ >= KEYS_PER_BATCH) {
        if (RAND_bytes(w->keys_, (int)sizeof w->keys_) != 1) return false;
        w->key_pos_ = 0;
    }
    memcpy(key, w->keys_ + 4 * w->key_pos_, 4);
    w->key_pos_++;
    return true;
}

size_t cws_header_size(uint64_t len, bool masked) {
    return 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

static cws_status check_frame_args(uint8_t opcode, uint8_t flags, uint64_t len) {
    if (!is_known_opcode(opcode) || (flags & 0x0F)) return CWS_ERR_INVALID_ARGUMENT;
    if (opcode & 0x08) {
        if (!(flags & CWS_FIN) || len > CWS_MAX_CONTROL_PAYLOAD) return CWS_ERR_INVALID_ARGUMENT;
    }
    if (len >> 63) return CWS_ERR_INVALID_ARGUMENT;
    return CWS_OK;
}

static size_t put_header(uint8_t *out, uint8_t opcode, uint8_t flags, uint64_t len,
                         const uint8_t *key) {
    size_t h = 2;
    out[0] = (uint8_t)(flags | opcode);
    uint8_t mask_bit = key ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(mask_bit | len);
    } else if (len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        h = 10;
    }
    if (key) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    return h;
}

size_t cws_write_header(cws_writer *w, uint8_t *out, uint8_t opcode, uint8_t flags,
                        uint64_t len, uint8_t mask_key[4]) {
    if (!w || !out || check_frame_args(opcode, flags, len) != CWS_OK) return 0;
    if (w->role != CWS_ROLE_CLIENT) return put_header(out, opcode, flags, len, NULL);
    uint8_t key[4];
    if (!next_key(w, key)) return 0;
    if (mask_key) memcpy(mask_key, key, 4);
    return put_header(out, opcode, flags, len, key);
}

cws_status cws_write_frame(cws_writer *w, uint8_t *out, size_t capacity, uint8_t opcode,
                           uint8_t flags, const uint8_t *payload, size_t len,
                           size_t *written) {
    *written = 0;
    if (!w || !out || (len && !payload)) return CWS_ERR_INVALID_ARGUMENT;
    cws_status st = check_frame_args(opcode, flags, len);
    if (st) return st;
    bool client = w->role == CWS_ROLE_CLIENT;
    size_t h = cws_header_size(len, client);
    if (capacity < h || capacity - h < len) return CWS_ERR_BUFFER_TOO_SMALL;
    uint8_t key[4];
    if (client && !next_key(w, key)) return CWS_ERR_CRYPTO;
    put_header(out, opcode, flags, len, client ? key : NULL);
    if (client)
        cws_mask_copy(out + h, payload, len, key, 0);
    else if (len)
        memcpy(out + h, payload, len);
    *written = h + len;
    return CWS_OK;
}

cws_status cws_write_close_payload(uint8_t out[CWS_MAX_CONTROL_PAYLOAD], uint16_t code,
                                   const uint8_t *reason, size_t reason_len,
                                   size_t *written) {
    *written = 0;
    if (!cws_close_code_valid(code)) return CWS_ERR_INVALID_ARGUMENT;
    if (reason_len > CWS_MAX_CONTROL_PAYLOAD - 2 || (reason_len && !reason))
        return CWS_ERR_INVALID_ARGUMENT;
    if (!cws_utf8_validate(reason, reason_len)) return CWS_ERR_INVALID_ARGUMENT;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len) memcpy(out + 2, reason, reason_len);
    *written = 2 + reason_len;
    return CWS_OK;
}

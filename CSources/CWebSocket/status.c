/* Status codes: the close code each error calls for, and a message for people. */
#include "internal.h"

uint16_t cws_status_close_code(cws_status s) {
    switch (s) {
    case CWS_OK:
        return 1000;
    case CWS_ERR_RESERVED_BITS:
    case CWS_ERR_UNKNOWN_OPCODE:
    case CWS_ERR_CONTROL_FRAGMENTED:
    case CWS_ERR_CONTROL_TOO_LONG:
    case CWS_ERR_UNEXPECTED_CONTINUATION:
    case CWS_ERR_EXPECTED_CONTINUATION:
    case CWS_ERR_UNMASKED_FRAME:
    case CWS_ERR_MASKED_FRAME:
    case CWS_ERR_NON_MINIMAL_LENGTH:
    case CWS_ERR_LENGTH_HIGH_BIT:
    case CWS_ERR_CLOSE_PAYLOAD:
    case CWS_ERR_CLOSE_CODE:
        return 1002;
    case CWS_ERR_INVALID_UTF8:
    case CWS_ERR_CLOSE_REASON_UTF8:
    case CWS_ERR_COMPRESSED_DATA:
        return 1007;
    case CWS_ERR_FRAME_TOO_BIG:
    case CWS_ERR_MESSAGE_TOO_BIG:
    case CWS_ERR_TOO_MANY_FRAGMENTS:
        return 1009;
    default:
        return 1011;
    }
}

const char *cws_status_message(cws_status s) {
    switch (s) {
    case CWS_OK: return "ok";
    case CWS_ERR_RESERVED_BITS: return "reserved bits set without a negotiated extension";
    case CWS_ERR_UNKNOWN_OPCODE: return "unknown opcode";
    case CWS_ERR_CONTROL_FRAGMENTED: return "fragmented control frame";
    case CWS_ERR_CONTROL_TOO_LONG: return "control frame payload longer than 125 bytes";
    case CWS_ERR_UNEXPECTED_CONTINUATION: return "continuation frame without a message to continue";
    case CWS_ERR_EXPECTED_CONTINUATION: return "new data frame inside a fragmented message";
    case CWS_ERR_UNMASKED_FRAME: return "client frame is not masked";
    case CWS_ERR_MASKED_FRAME: return "server frame is masked";
    case CWS_ERR_NON_MINIMAL_LENGTH: return "payload length not minimally encoded";
    case CWS_ERR_LENGTH_HIGH_BIT: return "64-bit payload length has its top bit set";
    case CWS_ERR_CLOSE_PAYLOAD: return "close frame payload of one byte";
    case CWS_ERR_CLOSE_CODE: return "close code not allowed on the wire";
    case CWS_ERR_INVALID_UTF8: return "text message is not valid UTF-8";
    case CWS_ERR_CLOSE_REASON_UTF8: return "close reason is not valid UTF-8";
    case CWS_ERR_FRAME_TOO_BIG: return "frame larger than the maximum frame size";
    case CWS_ERR_MESSAGE_TOO_BIG: return "message larger than the maximum message size";
    case CWS_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CWS_ERR_BUFFER_TOO_SMALL: return "output buffer too small";
    case CWS_ERR_CRYPTO: return "libcrypto call failed";
    case CWS_ERR_HANDSHAKE: return "malformed handshake value";
    case CWS_ERR_COMPRESSED_DATA: return "corrupt compressed data";
    case CWS_ERR_ZLIB: return "zlib failed";
    case CWS_ERR_TOO_MANY_FRAGMENTS: return "message split into more fragments than allowed";
    }
    return "unknown status";
}

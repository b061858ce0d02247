#!/usr/bin/env python3
"""Writes the committed seed corpus, Fuzz/corpus/<target>/, from known-good and
known-bad examples (RFC 6455 5.7 frames, RFC 7692 7.2.3 compressed messages, draft-76
keys, real upgrade requests). Each seed starts with the parameter bytes its target
reads first (see the comment at the top of each Fuzz/*/...Fuzz.swift). Rerun after
changing a target's input layout: python3 Fuzz/make-seeds.py"""
import os, struct, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def mask(payload, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame(op, payload, fin=True, rsv=0, key=None):
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | op
    mbit = 0x80 if key else 0
    if n < 126:
        h = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    return h + (key + mask(payload, key) if key else payload)


def deflate(msg, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


# frame_parser: [flags][capacity][split seed][frame limit kind,u16][message limit kind,u16]
K = b"\x37\xfa\x21\x3d"
DEFAULTS = b"\x00\x00\x00\x00\x00\x00"
def fp(name, flags, stream, limits=DEFAULTS, cap=7, seed=1):
    write("frame_parser", name, bytes([flags, cap, seed]) + limits + stream)

CLIENT, SERVER, UTF8, RSV1 = 1, 0, 2, 4 << 2
fp("rfc-5.7-hello-unmasked", CLIENT | UTF8, bytes.fromhex("810548656c6c6f"))
fp("rfc-5.7-hello-masked", SERVER | UTF8, bytes.fromhex("818537fa213d7f9f4d5158"))
fp("rfc-5.7-fragmented", CLIENT | UTF8, bytes.fromhex("010348656c8002" "6c6f"))
fp("rfc-5.7-ping-pong", SERVER, bytes.fromhex("898548656c6c6f"[:4]) + K + mask(b"Hello", K)
   + bytes.fromhex("8a85") + K + mask(b"Hello", K))
fp("rfc-5.7-256-binary", CLIENT, frame(2, bytes(range(256))))
fp("64k-header-only", CLIENT, bytes.fromhex("827f0000000000010000") + b"\x00" * 16)
fp("fragmented-with-ping", SERVER | UTF8, frame(1, "héllo ".encode(), fin=False, key=K)
   + frame(9, b"ping", key=K) + frame(0, "wörld €𝄞".encode(), key=K))
fp("close-1000-reason", SERVER | UTF8, frame(8, b"\x03\xe8bye", key=K))
fp("close-bad-code", CLIENT, frame(8, b"\x03\xedno"))
fp("compressed-rsv1", CLIENT | UTF8 | RSV1, frame(1, deflate(b"Hello"), rsv=0x40) + frame(1, b"Hello"))
fp("invalid-utf8", CLIENT | UTF8, frame(1, b"ok \xed\xa0\x80 surrogate"))
fp("small-limits", SERVER | UTF8, frame(2, b"x" * 40, fin=False, key=K) + frame(0, b"y" * 40, key=K),
   limits=b"\x02\x40\x00\x02\x48\x00", cap=1, seed=9)
fp("non-minimal-length", CLIENT, bytes.fromhex("817e0005") + b"Hello")
fp("reserved-opcode", CLIENT, bytes.fromhex("8300"))

# utf8: [split seed] then text
def u8(name, text, seed=3):
    write("utf8", name, bytes([seed]) + text)
u8("ascii", b"The quick brown fox jumps over the lazy dog. " * 3)
u8("mixed-valid", "Grüße, 世界! Καλημέρα κόσμε, コンニチハ 😀🎉🚀 𝄞 ".encode() * 3)
u8("cjk-long", "漢字かな交じり文、".encode() * 12, seed=77)
u8("emoji-split", "😀🎉🚀".encode() * 12, seed=200)
u8("surrogate", b"a" * 40 + b"\xed\xa0\x80" + b"b" * 20)
u8("overlong", b"x" * 33 + b"\xc0\xaf" + b"y" * 33)
u8("above-10ffff", "€".encode() * 15 + b"\xf4\x90\x80\x80" + b"z" * 10)
u8("truncated-end", "ä".encode() * 20 + b"\xe2\x82")
u8("bad-lead-f5", b"\xf5" + b"\x80" * 40)
u8("lone-continuation", b"abc" * 12 + b"\x80" + b"abc")

# inflate, garbage mode: [even][window bits][flags][limit u16][capacity u16][seed] messages
def infl(name, msgs, wbits=15, flags=0, limit=1000, cap=64, seed=5):
    body = b"".join(bytes([len(m)]) + m for m in msgs)
    write("inflate", name, bytes([0, wbits - 8, flags]) + struct.pack("<HH", limit, cap) + bytes([seed]) + body)
infl("rfc7692-7.2.3.1-hello", [bytes.fromhex("f248cdc9c90700")])
infl("rfc7692-7.2.3.2-context", [bytes.fromhex("f248cdc9c90700"), bytes.fromhex("f200110000")])
infl("rfc7692-7.2.3.3-stored", [bytes.fromhex("000500faff48656c6c6f00")])
infl("rfc7692-7.2.3.4-bfinal", [bytes.fromhex("f348cdc9c90700" "00")])
infl("rfc7692-7.2.3.5-two-blocks", [bytes.fromhex("f248cdc9c90700" "0000ffff" "f248cdc9c90700")], cap=3)
infl("bomb-small-limit", [deflate(b"\x00" * 100000)], limit=300, cap=128)
infl("corrupt", [bytes.fromhex("ffffffff00"), bytes.fromhex("f248cdc9c90700")], flags=1)
infl("window-8", [deflate(b"abcabcabc" * 20, 9)], wbits=9, cap=7)

# inflate, round-trip mode: [odd][level][mem level][window bits][flags][capacity u16][seed] messages
def rt(name, msgs, level=6, mem=8, wbits=15, flags=0, cap=100, seed=5):
    body = b"".join(bytes([len(m)]) + m for m in msgs)
    write("inflate", name, bytes([1, level, mem - 1, wbits - 9, flags]) + struct.pack("<H", cap) + bytes([seed]) + body)
rt("roundtrip-context", [b"Hello", b"Hello", b"Hello, world! " * 5, b""])
rt("roundtrip-no-context", [b"abc" * 30, b"xyz" * 30], flags=1 | 0x10, level=9, wbits=9)
rt("roundtrip-stored", [bytes(range(100)), bytes(range(100, 0, -1))], level=0, cap=1)

# hixie76_key: [cut] then key1 + key2
def hx(name, k1, k2):
    write("hixie76_key", name, bytes([len(k1)]) + k1 + k2)
hx("draft76-example", b"18x 6]8vM;54 *(5:  {   U1]8  z [  8", b"1_ tx7X d  <  nw  334J702) 7]o}` 0")
hx("wikipedia-example", b"4 @1  46546xW%0l 1 5", b"12998 5 Y3 1  .P00")
hx("overflow", b"99999999999 9", b"1 1")
hx("not-multiple", b"7  ", b"no spaces 5")
hx("leading-zeros", b"000000000004294967295 ", b"\xff\xfe 12")

# extension_header: [policy flags][server bits][client bits] then the header value
def ext(name, value, flags=0, sb=15, cb=15):
    write("extension_header", name, bytes([flags, sb, cb]) + value.encode())
ext("browser", "permessage-deflate; client_max_window_bits")
ext("firefox", "permessage-deflate")
ext("full-offer", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
    "server_max_window_bits=10; client_max_window_bits=12", flags=2, sb=9, cb=11)
ext("fallback", 'permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits="9"')
ext("other-extensions", 'x-webkit-deflate-frame, foo; bar="baz"; q=1 ,, permessage-deflate', flags=4 | 8)
ext("quoted-escapes", r'ext; a="b\"c"; d="\e"')
ext("duplicate-param", "permessage-deflate; server_no_context_takeover; server_no_context_takeover")
ext("bad-syntax", "permessage-deflate; =1; ;")

# upgrade_request: a request head as text
def up(name, lines):
    write("upgrade_request", name, ("\r\n".join(lines) + "\r\n\r\n").encode())
up("rfc6455-example", ["GET /chat HTTP/1.1", "Host: server.example.com", "Upgrade: websocket",
    "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Version: 13"])
up("chrome", ["GET /socket HTTP/1.1", "Host: localhost:8080", "Connection: Upgrade", "Pragma: no-cache",
    "Cache-Control: no-cache", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
    "Upgrade: websocket", "Origin: http://localhost:8080", "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br", "Accept-Language: en-US,en;q=0.9",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
up("firefox", ["GET /ws HTTP/1.1", "Host: example.org", "User-Agent: Mozilla/5.0 Firefox/121.0",
    "Accept: */*", "Sec-WebSocket-Version: 13", "Origin: https://example.org",
    "Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEC==",
    "Connection: keep-alive, Upgrade", "Upgrade: websocket"])
up("version-8", ["GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"])
up("with-body", ["GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Content-Length: 5"])
up("http-1.0-post", ["POST / HTTP/1.0", "Host: a", "Upgrade: websocket"])
up("multi-line-lists", ["GET / HTTP/1.1", "Host: h", "Upgrade: WebSocket", "Connection: upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b, c",
    "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15",
    "Sec-WebSocket-Extensions: foo"])

# engineio_packet: [mode: 0 polling body, 1 WebSocket text, 2 base64] then the text
def eio(name, mode, text):
    write("engineio_packet", name, bytes([mode]) + text.encode())
eio("open", 1, '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
eio("probe", 1, "2probe")
eio("message", 1, "4hello")
eio("payload-mixed", 0, "4hello\x1ebAQIDBA==\x1e2\x1e6")
eio("payload-binary-only", 0, "bAQIDBA==")
eio("payload-bad-base64", 0, "4a\x1eb!!")
eio("payload-empty-part", 0, "4a\x1e\x1e4b")
eio("base64-padded", 2, "Zm9vYg==")
eio("base64-bad", 2, "Zm9=vYg")

# socketio_packet: [attachment count 0-3] then per attachment [length] [bytes], then the text
def sio(name, text, attachments=()):
    data = bytes([len(attachments)])
    for a in attachments:
        data += bytes([len(a)]) + a
    write("socketio_packet", name, data + text.encode())
sio("connect", "0")
sio("connect-auth", '0/admin,{"token":"123"}')
sio("connect-ok", '0{"sid":"oSO0OpakMV_3jnilAAAA"}')
sio("disconnect", "1/admin,")
sio("event", '2["foo",{"a":[1,2.5,true,null,"x\\u00e9"]}]')
sio("event-ack", '2/admin,12["bar"]')
sio("ack", '3/admin,13["bar"]')
sio("connect-error", '4{"message":"Not authorized","data":{"reason":"token"}}')
sio("binary-event", '51-["baz",{"_placeholder":true,"num":0}]', [b"\x01\x02\x03"])
sio("binary-ack", '62-/admin,15[{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":0}}]', [b"\x00", b"\xff\xfe"])
sio("missing-attachment", '52-["x",{"_placeholder":true,"num":5}]', [b"a", b"b"])
sio("deep", "2" + "[" * 200 + "]" * 200)
sio("surrogates", '2["\\ud83d\\ude00","\\ud800"]')

#!/usr/bin/env python3
"""Raw frames for custody agent's tests (custody/agent_wire.h), sent
without the codec, so that what a broken or hostile client sends reaches
the agent as is.

  raw_frames.py table SOCK        each bad frame of the table on its own
                                  connection: an ERROR frame or a closed
                                  connection each ("case: outcome" lines);
                                  exit 1 when one got anything else
  raw_frames.py half SOCK N       N connections each send half a frame and
                                  wait; meanwhile a LIST on another is
                                  answered while they are all open; prints
                                  "closed after S" (the slowest close)
  raw_frames.py flood SOCK N T... N sign requests on one connection,
                                  cycling through the types; prints how
                                  many were answered ERROR
  raw_frames.py sign SOCK TYPE [THUMBPRINT]
                                  one sign request of a random digest (with
                                  that certificate's key): "digest=HEX
                                  signature=HEX thumbprint=T", or the ERROR
  raw_frames.py crowd SOCK N      N idle connections, then one more: its
                                  outcome; then how long until the N are
                                  closed ("idle closed after S")
  raw_frames.py jwt SOCK TYPE CLAIMS [LIFETIME]
                                  a JWT request: the token, or the ERROR
  raw_frames.py pipeline SOCK TYPE N
                                  N sign requests in one write, then their N
                                  answers in order: "answered K of N"
  raw_frames.py leave SOCK TYPE   a sign request, then the connection
                                  closed before the answer; then half a
                                  frame and closed
"""
import os
import socket
import struct
import sys
import time

SIGN_REQUEST, SIGN_RESPONSE, CERT_REQUEST, LIST_REQUEST, ERROR = 1, 2, 3, 7, 9


def field(tag, value):
    return bytes([tag]) + struct.pack(">H", len(value)) + value


def frame(kind, fields=b"", version=1):
    body = bytes([version, kind]) + fields
    return struct.pack(">I", len(body)) + body


def sign_fields(type_name, digest, hash_id=1):
    return field(1, type_name.encode()) + field(5, bytes([hash_id])) + field(6, digest)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def read_frame(s):
    """(kind, body) of one frame, or None when the connection closed."""
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (length,) = struct.unpack(">I", head)
    body = b""
    while len(body) < length:
        chunk = s.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return body[1], body[2:]


def fields_of(body):
    out, i = {}, 0
    while i + 3 <= len(body):
        tag, n = body[i], struct.unpack(">H", body[i + 1:i + 3])[0]
        out.setdefault(tag, body[i + 3:i + 3 + n])
        i += 3 + n
    return out


def outcome(s):
    try:
        got = read_frame(s)
    except (ConnectionResetError, socket.timeout) as e:
        return "closed" if isinstance(e, ConnectionResetError) else "timeout"
    if got is None:
        return "closed"
    kind, body = got
    if kind == ERROR:
        f = fields_of(body)
        return "error %d: %s" % (struct.unpack(">I", f[16])[0], f[17].decode())
    return "kind %d" % kind


def table(path):
    d32 = os.urandom(32)
    good = sign_fields("Default", d32)
    cases = [
        ("version 2", frame(SIGN_REQUEST, good, version=2)),
        ("an unknown kind", frame(99, good)),
        ("a response sent as a request", frame(SIGN_RESPONSE, good)),
        ("an ERROR sent as a request", frame(ERROR, field(16, b"\0\0\0\1") + field(17, b"x"))),
        ("length prefix 0", b"\0\0\0\0"),
        ("length prefix 1", b"\0\0\0\1\1"),
        ("length prefix over the maximum", struct.pack(">I", 65537) + b"\1\1"),
        ("length prefix 0xffffffff", b"\xff\xff\xff\xff"),
        ("random bytes after a valid prefix", struct.pack(">I", 200) + os.urandom(200)),
        ("a digest of the wrong length", frame(SIGN_REQUEST, sign_fields("Default", os.urandom(20)))),
        ("a SHA-384 digest of 32 bytes", frame(SIGN_REQUEST, sign_fields("Default", d32, 2))),
        ("a field given twice", frame(SIGN_REQUEST, good + field(1, b"Default"))),
        ("no hash", frame(SIGN_REQUEST, field(1, b"Default") + field(6, d32))),
        ("an unknown tag", frame(SIGN_REQUEST, good + field(99, b"x"))),
        ("a type with a NUL byte", frame(SIGN_REQUEST, sign_fields("Def\0ult", d32))),
        ("a field longer than the frame", frame(SIGN_REQUEST, field(1, b"Default")[:3] + b"\xff")),
        ("version and kind only", frame(SIGN_REQUEST)),
        ("a bad scheme", frame(SIGN_REQUEST, good + field(4, b"\x09"))),
        ("a list request with a field", frame(LIST_REQUEST, field(1, b"Default"))),
    ]
    bad = 0
    for name, data in cases:
        s = connect(path)
        s.sendall(data)
        got = outcome(s)
        s.close()
        ok = got == "closed" or got.startswith("error")
        bad += not ok
        print("%s: %s" % (name, got))
    # truncated: the prefix promises more than ever comes, then EOF
    s = connect(path)
    s.sendall(struct.pack(">I", 100) + b"\1\1" + b"\1\0")
    s.shutdown(socket.SHUT_WR)
    got = outcome(s)
    print("a truncated frame, then end of file: %s" % got)
    bad += got != "closed"
    return 1 if bad else 0


def half(path, n):
    conns = []
    for _ in range(n):
        s = connect(path)
        s.sendall(struct.pack(">I", 40) + b"\1\1")   # 6 of 44 bytes
        conns.append(s)
    start = time.monotonic()
    s = connect(path)
    s.sendall(frame(LIST_REQUEST))
    got = read_frame(s)
    s.close()
    served = got is not None and got[0] == 8
    still_open = 0
    for c in conns:
        c.setblocking(False)
        try:
            still_open += c.recv(1) != b""
        except BlockingIOError:
            still_open += 1
        c.setblocking(True)
        c.settimeout(10)
    print("list answered: %s, half frames still open then: %d of %d" % (served, still_open, n))
    slowest = 0.0
    for c in conns:
        try:
            data = c.recv(1)
        except ConnectionResetError:
            data = b""
        slowest = max(slowest, time.monotonic() - start)
        print("half frame: %s" % ("closed" if data == b"" else "answered"))
    print("closed after %.2f" % slowest)
    return 0 if served and still_open == n else 1


def flood(path, n, types):
    s = connect(path)
    errors = 0
    for i in range(n):
        s.sendall(frame(SIGN_REQUEST, sign_fields(types[i % len(types)], os.urandom(32))))
        got = read_frame(s)
        errors += got is not None and got[0] == ERROR
    print(errors)
    return 0


def sign(path, type_name, thumbprint=None):
    digest = os.urandom(32)
    fields = sign_fields(type_name, digest)
    if thumbprint:
        fields += field(8, thumbprint.encode())
    s = connect(path)
    s.sendall(frame(SIGN_REQUEST, fields))
    got = outcome_frame(s)
    if isinstance(got, str):
        print(got)
        return 1
    f = fields_of(got[1])
    print("digest=%s signature=%s thumbprint=%s" % (digest.hex(), f[7].hex(), f[8].decode()))
    return 0


def outcome_frame(s):
    """The SIGN response frame, or the outcome as text."""
    got = read_frame(s)
    if got is not None and got[0] == SIGN_RESPONSE:
        return got
    if got is not None and got[0] == ERROR:
        f = fields_of(got[1])
        return "error %d: %s" % (struct.unpack(">I", f[16])[0], f[17].decode())
    return "no signature: %s" % (got,)


def leave(path, type_name):
    s = connect(path)
    s.sendall(frame(SIGN_REQUEST, sign_fields(type_name, os.urandom(32))))
    s.close()
    s = connect(path)
    s.sendall(frame(SIGN_REQUEST, sign_fields(type_name, os.urandom(32)))[:9])
    s.close()
    return 0


def crowd(path, n):
    conns = [connect(path) for _ in range(n)]
    start = time.monotonic()
    extra = connect(path)
    print("one more: %s" % outcome(extra))
    extra.close()
    for c in conns:
        c.settimeout(10)
        try:
            c.recv(1)
        except (ConnectionResetError, socket.timeout):
            pass
    print("idle closed after %.2f" % (time.monotonic() - start))
    return 0


def jwt(path, type_name, claims, lifetime=None):
    fields = field(1, type_name.encode()) + field(11, claims.encode())
    if lifetime:
        fields += field(12, struct.pack(">I", int(lifetime)))
    s = connect(path)
    s.sendall(frame(5, fields))
    got = read_frame(s)
    if got is not None and got[0] == 6:
        print(fields_of(got[1])[14].decode())
        return 0
    if got is not None and got[0] == ERROR:
        f = fields_of(got[1])
        print("error %d: %s" % (struct.unpack(">I", f[16])[0], f[17].decode()))
    return 1


def pipeline(path, type_name, n):
    s = connect(path)
    s.sendall(b"".join(frame(SIGN_REQUEST, sign_fields(type_name, os.urandom(32)))
                       for _ in range(n)))
    k = 0
    for _ in range(n):
        got = read_frame(s)
        k += got is not None and got[0] == SIGN_RESPONSE
    print("answered %d of %d" % (k, n))
    return 0 if k == n else 1


def main(argv):
    mode, path = argv[1], argv[2]
    if mode == "table":
        return table(path)
    if mode == "half":
        return half(path, int(argv[3]))
    if mode == "flood":
        return flood(path, int(argv[3]), argv[4:])
    if mode == "sign":
        return sign(path, argv[3], argv[4] if len(argv) > 4 else None)
    if mode == "jwt":
        return jwt(path, argv[3], argv[4], argv[5] if len(argv) > 5 else None)
    if mode == "pipeline":
        return pipeline(path, argv[3], int(argv[4]))
    if mode == "crowd":
        return crowd(path, int(argv[3]))
    if mode == "leave":
        return leave(path, argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

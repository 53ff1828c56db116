#!/usr/bin/env python3
"""p12iter.py — rewrites the iteration counts of a PKCS#12 file.

    p12iter.py [--mac N] [--pbe N] < IN.p12 > OUT.p12

--mac N   the MAC's iteration count (added when the file leaves it out)
--pbe N   every password-based encryption's count that shows without
          decrypting: the encrypted safes' and the shrouded keys' of the
          plain safes (PKCS#12 PBE, PKCS#5 PBES1, PBES2 with PBKDF2)

Making a file with a huge count through openssl costs as long as opening
it; this edits the DER of one made with a small count instead (Python's
standard library only).  Nothing is decrypted: the private key stays
encrypted as openssl wrote it.  A changed encryption count breaks the MAC
(it covers the safes), which does not matter for files meant to be refused.
"""
import argparse
import sys

PKCS12_PBE = bytes.fromhex("2a864886f70d010c01")  # 1.2.840.113549.1.12.1.x
PKCS5 = bytes.fromhex("2a864886f70d0105")  # 1.2.840.113549.1.5.x
PBES1 = {1, 3, 4, 6, 10, 11}
PBES2 = PKCS5 + b"\x0d"
PBKDF2 = PKCS5 + b"\x0c"


class Node:
    """One DER element: tag, and children (list) or content (bytes)."""

    def __init__(self, tag, content=None, children=None):
        self.tag, self.content, self.children = tag, content, children

    def encode(self):
        body = (b"".join(c.encode() for c in self.children)
                if self.children is not None else self.content)
        n = len(body)
        if n < 0x80:
            length = bytes([n])
        else:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            length = bytes([0x80 | len(raw)]) + raw
        return bytes([self.tag]) + length + body


def parse(data, strict=True):
    """The elements of data; ValueError when it is not DER throughout."""
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("cut")
        tag, n = data[i], data[i + 1]
        if tag & 0x1f == 0x1f:
            raise ValueError("long tag")
        i += 2
        if n & 0x80:
            k = n & 0x7f
            if k == 0 or k > 4 or i + k > len(data):
                raise ValueError("length")
            n = int.from_bytes(data[i:i + k], "big")
            if n < 0x80 or data[i] == 0:
                raise ValueError("not minimal")
            i += k
        if i + n > len(data):
            raise ValueError("cut")
        body = data[i:i + n]
        i += n
        if tag & 0x20:
            out.append(Node(tag, children=parse(body)))
        elif tag == 0x04 and body[:1] == b"\x30":
            # An OCTET STRING that holds DER (safes, bags); a salt that
            # happens to parse is encoded back as it was.
            try:
                out.append(Node(tag, children=parse(body)))
            except ValueError:
                out.append(Node(tag, content=body))
        else:
            out.append(Node(tag, content=body))
    return out


def integer(n):
    return Node(0x02, content=n.to_bytes(n.bit_length() // 8 + 1, "big",
                                         signed=True))


def is_oid(node, prefix, last=None):
    if node.tag != 0x06 or not node.content.startswith(prefix):
        return False
    rest = node.content[len(prefix):]
    return last is None or (len(rest) == 1 and rest[0] in last)


def set_pbe(node, count, changed):
    """Sets the count of every PBE AlgorithmIdentifier under node."""
    kids = node.children
    if kids is None:
        return
    if node.tag == 0x30 and len(kids) == 2 and kids[1].children is not None:
        oid, params = kids
        if is_oid(oid, PKCS12_PBE) or is_oid(oid, PKCS5, PBES1):
            params.children[1] = integer(count)  # {salt, iterations}
            changed.append(1)
            return
        if oid.tag == 0x06 and oid.content == PBES2:
            kdf = params.children[0]  # {keyDerivationFunc, encryptionScheme}
            if kdf.children[0].content == PBKDF2:
                kdf.children[1].children[1] = integer(count)
                changed.append(1)
            return
    for c in kids:
        set_pbe(c, count, changed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mac", type=int)
    ap.add_argument("--pbe", type=int)
    a = ap.parse_args()
    pfx = parse(sys.stdin.buffer.read())
    if len(pfx) != 1 or pfx[0].tag != 0x30:
        sys.exit("p12iter: not a PKCS#12 file")
    top = pfx[0].children
    if a.mac is not None:
        if len(top) < 3:
            sys.exit("p12iter: the file has no MAC")
        mac = top[2].children  # {DigestInfo, macSalt, iterations DEFAULT 1}
        del mac[2:]
        mac.append(integer(a.mac))
    if a.pbe is not None:
        changed = []
        set_pbe(top[1], a.pbe, changed)
        if not changed:
            sys.exit("p12iter: no password-based encryption shows")
    sys.stdout.buffer.write(pfx[0].encode())


if __name__ == "__main__":
    main()

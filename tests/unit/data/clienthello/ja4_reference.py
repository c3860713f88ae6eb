#!/usr/bin/python3
"""Independent reference for the JA4 and JA3 values in clienthello_test.c.

Written from the specifications, not from proxy/clienthello.c, and sharing no
code with it, so that the C test checks two implementations against each
other:
  JA4: FoxIO's technical_details/JA4.md (github.com/FoxIO-LLC/ja4)
  JA3: github.com/salesforce/ja3 (README and python/ja3.py)
Run from this folder: /usr/bin/python3 ja4_reference.py [-r] [NAME.hex...]
(-r also prints JA4_r, the unhashed string). With no names it prints every
*.hex file here.
"""
import glob
import hashlib
import struct
import sys

GREASE = {0x0A0A + 0x1010 * i for i in range(16)}  # RFC 8701: 0x0a0a ... 0xfafa

VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
            0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def vec8(self):
        return self.take(self.u8())

    def vec16(self):
        return self.take(self.u16())

    def done(self):
        return self.pos == len(self.data)


def u16_list(data):
    if len(data) % 2:
        raise ValueError("odd length")
    return [struct.unpack(">H", data[i:i + 2])[0] for i in range(0, len(data), 2)]


def parse(body):
    r = Reader(body)
    hello = {"legacy_version": r.u16()}
    r.take(32)
    r.vec8()  # session id
    hello["ciphers"] = u16_list(r.vec16())
    r.vec8()  # compression methods
    hello["extensions"] = []  # (type, body) in order
    if not r.done():
        ext = Reader(r.vec16())
        while not ext.done():
            hello["extensions"].append((ext.u16(), ext.vec16()))
    if not r.done():
        raise ValueError("trailing data")
    return hello


def ext_body(hello, ext_type):
    for t, body in hello["extensions"]:
        if t == ext_type:
            return body
    return None


def ja4(hello, raw=False):
    exts = [t for t, _ in hello["extensions"] if t not in GREASE]
    ciphers = [c for c in hello["ciphers"] if c not in GREASE]

    # Version: highest non-GREASE supported_versions entry, else legacy_version.
    version = hello["legacy_version"]
    sv = ext_body(hello, 0x002B)
    if sv is not None:
        offered = [v for v in u16_list(Reader(sv).vec8()) if v not in GREASE]
        if offered:
            version = max(offered)
    a = "t" + VERSIONS.get(version, "00")
    a += "d" if 0x0000 in exts else "i"
    a += "%02d%02d" % (min(len(ciphers), 99), min(len(exts), 99))

    # ALPN: first and last character of the first protocol; if either is not
    # ASCII alphanumeric, the first and last character of its hex instead.
    alpn = "00"
    body = ext_body(hello, 0x0010)
    if body is not None:
        protocols = Reader(body).vec16()
        if protocols:
            first = Reader(protocols).vec8()
            if first:
                def alnum(b):
                    return chr(b).isascii() and chr(b).isalnum()
                if alnum(first[0]) and alnum(first[-1]):
                    alpn = chr(first[0]) + chr(first[-1])
                else:
                    h = first.hex()
                    alpn = h[0] + h[-1]
    a += alpn

    cipher_list = ",".join("%04x" % c for c in sorted(ciphers))
    ext_list = ",".join("%04x" % t for t in sorted(exts) if t not in (0x0000, 0x0010))
    sigalgs = []
    body = ext_body(hello, 0x000D)
    if body is not None:
        sigalgs = [s for s in u16_list(Reader(body).vec16()) if s not in GREASE]
    ext_string = ext_list
    if sigalgs:
        ext_string += "_" + ",".join("%04x" % s for s in sigalgs)

    def hash12(s):
        return hashlib.sha256(s.encode()).hexdigest()[:12] if s else "000000000000"

    if raw:
        return f"{a}_{cipher_list}_{ext_string}"
    # Empty cipher or extension lists hash to twelve zeros (spec).
    b = hash12(cipher_list)
    c = hash12(ext_string) if ext_list else "000000000000"
    return f"{a}_{b}_{c}"


def ja3(hello):
    def dashed(values):
        return "-".join(str(v) for v in values if v not in GREASE)

    groups, formats = [], []
    body = ext_body(hello, 0x000A)
    if body is not None:
        groups = u16_list(Reader(body).vec16())
    body = ext_body(hello, 0x000B)
    if body is not None:
        formats = list(Reader(body).vec8())
    text = ",".join([str(hello["legacy_version"]), dashed(hello["ciphers"]),
                     dashed(t for t, _ in hello["extensions"]), dashed(groups),
                     dashed(formats)])
    return hashlib.md5(text.encode()).hexdigest(), text


def main():
    args = sys.argv[1:]
    raw = "-r" in args
    names = [a for a in args if a != "-r"] or sorted(glob.glob("*.hex"))
    for name in names:
        with open(name) as f:
            hello = parse(bytes.fromhex("".join(f.read().split())))
        digest, text = ja3(hello)
        print(f"{name}: ja4={ja4(hello)} ja3={digest}")
        if raw:
            print(f"  ja4_r={ja4(hello, raw=True)}\n  ja3_r={text}")


if __name__ == "__main__":
    main()

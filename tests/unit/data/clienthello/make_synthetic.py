#!/usr/bin/python3
"""Write the synthetic ClientHellos of clienthello_test as NAME.hex.

Real clients never send some of what the parser must handle (GREASE from
every side, 100 cipher suites, over-long ALPN names, no extensions at all), and
the JA4 specification's worked example exists only as lists of values. These
hellos are built here from those lists; ja4_reference.py gives their expected
JA4 and JA3 independently. Run from this folder: /usr/bin/python3 make_synthetic.py
"""
import struct

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def vec8(data):
    return u8(len(data)) + data


def vec16(data):
    return u16(len(data)) + data


def u16s(values):
    return b"".join(u16(v) for v in values)


def ext(ext_type, body=b""):
    return u16(ext_type) + vec16(body)


def sni(name):
    return ext(0x0000, vec16(u8(0) + vec16(name.encode())))


def alpn(*names):
    return ext(0x0010, vec16(b"".join(vec8(n) for n in names)))


def versions(*values):
    return ext(0x002B, vec8(u16s(values)))


def groups(*values):
    return ext(0x000A, vec16(u16s(values)))


def sigalgs(*values):
    return ext(0x000D, vec16(u16s(values)))


def point_formats(*values):
    return ext(0x000B, vec8(bytes(values)))


def hello(ciphers, extensions, legacy_version=0x0303, session_id=bytes(32)):
    body = u16(legacy_version) + bytes(range(32)) + vec8(session_id)
    body += vec16(u16s(ciphers)) + vec8(b"\x00")
    if extensions is not None:
        body += vec16(b"".join(extensions))
    return body


def write(name, body):
    with open(f"{name}.hex", "w") as out:
        for i in range(0, len(body), 32):
            out.write(body[i:i + 32].hex() + "\n")


# The worked example of JA4.md: its ciphers, extensions and signature
# algorithms in their original order. Published JA4:
# t13d1516h2_8daaf6152771_e5627efa2ab1
SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SPEC_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


SPEC_ORDER = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
              0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]


def spec_extensions(grease):
    """The example's extensions in its order; with |grease|, GREASE values
    added the way Chrome adds them, which must not change the JA4."""
    g = (lambda i: [GREASE[i]]) if grease else (lambda i: [])
    bodies = {0x001B: ext(0x001B, b"\x02\x00\x02"), 0x0000: sni("example.com"),
              0x0033: ext(0x0033, b"\x00\x00"), 0x0010: alpn(b"h2", b"http/1.1"),
              0x4469: ext(0x4469, b"\x00\x03\x02h2"), 0x002D: ext(0x002D, b"\x01\x01"),
              0x000D: sigalgs(*(g(7) + SPEC_SIGALGS)), 0x0005: ext(0x0005, bytes([1, 0, 0, 0, 0])),
              0x002B: versions(*(g(9) + [0x0304, 0x0303])), 0xFF01: ext(0xFF01, b"\x00"),
              0x000B: point_formats(0), 0x000A: groups(*(g(5) + [0x001D, 0x0017, 0x0018])),
              0x0015: ext(0x0015, bytes(20))}
    exts = [bodies.get(t) or ext(t) for t in SPEC_ORDER]
    if grease:
        exts = [ext(GREASE[2])] + exts + [ext(GREASE[11], b"\x00")]
    return exts


def spec_example():
    return hello(SPEC_CIPHERS, spec_extensions(False))


def spec_example_grease():
    return hello([GREASE[0]] + SPEC_CIPHERS, spec_extensions(True))


# FoxIO's test data sigalg-grease.pcapng.json (a Chrome ClientHello): the
# original order of its JA4_ro. Published JA4: t13d1517h2_8daaf6152771_cb7bf5808d99
def foxio_chrome():
    order = [0xFE0D, 0x0010, 0x0017, 0x0033, 0x44CD, 0xFF01, 0x000A, 0x000D, 0x0023, 0x002B,
             0x000B, 0xCA34, 0x002D, 0x0000, 0x0005, 0x001B, 0x0012]
    bodies = {0x0010: alpn(b"h2", b"http/1.1"), 0x000A: groups(GREASE[3], 0x11EC, 0x001D, 0x0017, 0x0018),
              0x000D: sigalgs(0x0904, 0x0905, 0x0906, *SPEC_SIGALGS),
              0x002B: versions(GREASE[6], 0x0304, 0x0303), 0x000B: point_formats(0),
              0x0000: sni("optimizationguide-pa.googleapis.com")}
    exts = [ext(GREASE[1])] + [bodies.get(t) or ext(t, b"\x00") for t in order] + [ext(GREASE[4], b"\x00")]
    return hello([GREASE[8]] + SPEC_CIPHERS, exts)


def caps():
    """Beyond every cap of struct clienthello_summary."""
    ciphers = [0x1301 + i for i in range(3)] + [0xC000 + i for i in range(97)]  # 100
    exts = [sni("caps.test"),
            alpn(*[b"protocol-number-%d-is-long" % i for i in range(6)]),
            versions(*([GREASE[1]] + [0x0300 + i for i in range(5)] + [0x7F00 + i for i in range(6)])),
            groups(*range(1, 41)), sigalgs(*range(0x0100, 0x0100 + 60)), point_formats(0, 1, 2)]
    exts += [ext(0x1000 + i) for i in range(60)]
    return hello(ciphers, exts)


def no_extensions():
    """An SSLv3/TLS 1.0 era hello: no extensions block at all."""
    return hello([0x0035, 0x002F, 0x000A], None, legacy_version=0x0301, session_id=b"")


def only_grease_ciphers():
    """Every cipher suite is GREASE, and only SNI and ALPN: both JA4 hashes
    are the all-zero marker."""
    return hello([GREASE[4], GREASE[12]], [sni("zero.test"), alpn(b"h2")])


def long_lists():
    """Past the 128 values the summary sorts on the stack: 600 cipher suites
    over every band of 4096 values, some repeated, GREASE among them, and
    200 extensions, to exercise the counting sort of long lists."""
    ciphers = [(i * 0x6D + 0x101) & 0xFFFF for i in range(580)] + GREASE[:10] + [0x1301] * 10
    ciphers = [c ^ 0x0100 if c in GREASE and i < 580 else c for i, c in enumerate(ciphers)]
    exts = [sni("long.test"), alpn(b"h2"), versions(0x0304), sigalgs(0x0403, GREASE[2], 0x0804)]
    types = sorted({(i * 0x1F3 + 0x20) & 0xFFFF for i in range(196)} - set(GREASE) -
                   {0x0000, 0x0010, 0x002B, 0x000D}, reverse=True)
    exts += [ext(t) for t in types]
    return hello(ciphers, exts)


def versions_only_grease():
    """supported_versions with nothing but GREASE: JA4 falls back to
    legacy_version."""
    return hello([0xC02F], [versions(GREASE[3]), sni("v.test")])


def repeated_ciphers():
    """A cipher suite offered twice: BoringSSL accepts it and JA4 counts and
    hashes both."""
    return hello([0x1301, 0xC02F, 0x1301], [versions(0x0304, 0x0303)])


def alpn_edge(first):
    return hello([0x1301], [versions(0x0304), alpn(first, b"h2")])


def main():
    write("spec_example", spec_example())
    write("spec_example_grease", spec_example_grease())
    write("foxio_chrome_sigalg", foxio_chrome())
    write("caps", caps())
    write("no_extensions", no_extensions())
    write("only_grease_ciphers", only_grease_ciphers())
    write("long_lists", long_lists())
    write("versions_only_grease", versions_only_grease())
    write("repeated_ciphers", repeated_ciphers())
    # JA4.md's ALPN rules: non-alphanumeric first or last byte -> hex.
    write("alpn_hex_abcd", alpn_edge(b"\xab\xcd"))
    write("alpn_hex_30ab", alpn_edge(b"\x30\xab"))
    write("alpn_hex_30abcd31", alpn_edge(b"\x30\xab\xcd\x31"))
    write("alpn_single_char", alpn_edge(b"q"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""seed_fuzz_conn.py: writes the seed corpus of tests/fuzz/fuzz_conn.c from the recorded
client sessions (../shared/fixtures/clients/*/*/c2s.bin): each run alone (its key stored
first, its bytes in one piece and in small pieces, then time passing), and pairs of runs
interleaved on two connections. Usage: seed_fuzz_conn.py FIXTURES_CLIENTS_DIR OUT_DIR"""
import json
import os
import struct
import sys


def prime(k, conn=0):
    return bytes([3 | 4 | (k << 3) | (conn << 7)])


def split_at_828(data):
    """The session cut before its first 828 (header: id 16, version 1, code u16, size u32)."""
    off = 0
    while off + 23 <= len(data):
        code, size = struct.unpack_from("<HI", data, off + 17)
        if code == 828:
            return data[:off], data[off:]
        off += 23 + size
    return data, b""


def feed(conn, data, piece, eof=False):
    out = b""
    for i in range(0, len(data), piece):
        last = i + piece >= len(data)
        ctl = conn | (0x80 if eof and last else 0)
        out += bytes([ctl]) + struct.pack("<H", len(data[i:i + piece])) + data[i:i + piece]
    return out


def tick(units):
    return bytes([3 | (units << 3)])


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    runs = json.load(open(os.path.join(src, "index.json")))["runs"]
    data = [open(os.path.join(src, r["dir"], "c2s.bin"), "rb").read() for r in runs]
    for k, r in enumerate(runs):
        name = r["dir"].replace("/", "-")
        head, rest = split_at_828(data[k])
        with open(os.path.join(out, "run-" + name), "wb") as f:
            f.write(feed(0, head, 65535) + prime(k) + feed(0, rest, 65535) + tick(2))
        with open(os.path.join(out, "pieces-" + name), "wb") as f:
            f.write(feed(0, head, 700) + prime(k) + feed(0, rest, 700, eof=True) + tick(15))
    for a in range(0, len(runs), 2):
        b = (a + 5) % len(runs)
        (ha, ra), (hb, rb) = split_at_828(data[a]), split_at_828(data[b])
        with open(os.path.join(out, "pair-%d-%d" % (a, b)), "wb") as f:
            f.write(feed(0, ha, 1500) + feed(1, hb, 1500) + prime(a, 0) + prime(b, 1) +
                    feed(0, ra, 1500) + feed(1, rb, 1500) + tick(15) + tick(15))
    return 0


if __name__ == "__main__":
    sys.exit(main())

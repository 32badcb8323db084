#!/usr/bin/env python3
"""seed_fuzz_conn.py: writes the seed corpus of tests/fuzz/fuzz_conn.c from the recorded
client sessions (../shared/fixtures/clients/*/*/c2s.bin): each run alone (its key stored
first, its bytes in one piece and in small pieces, then time passing), and pairs of runs
interleaved on two connections. Usage: seed_fuzz_conn.py FIXTURES_CLIENTS_DIR OUT_DIR"""
import json
import os
import struct
import sys


def prime(k):
    return bytes([3 | 4 | (k << 3)])


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
        with open(os.path.join(out, "run-" + name), "wb") as f:
            f.write(prime(k) + feed(0, data[k], 65535) + tick(2))
        with open(os.path.join(out, "pieces-" + name), "wb") as f:
            f.write(prime(k) + feed(0, data[k], 700, eof=True) + tick(15))
    for a in range(0, len(runs), 2):
        b = (a + 5) % len(runs)
        x, y = feed(0, data[a], 1500), feed(1, data[b], 1500)
        with open(os.path.join(out, "pair-%d-%d" % (a, b)), "wb") as f:
            f.write(prime(a) + prime(b) + x + y + tick(31) + tick(31))
    return 0


if __name__ == "__main__":
    sys.exit(main())

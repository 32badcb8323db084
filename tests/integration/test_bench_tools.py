"""The bench tools still work: sdload (the C load generator of `make bench`) registers and
uploads through several connections at once against the real server, and what it stored is
what it sent; sdbench prints every limit the benchmark reads. No timing is asserted."""

import os
import re
import subprocess
import unittest

import harness
import server_helpers as sh

SDLOAD = os.path.join(harness.TOOLS, "sdload")
SDBENCH = os.path.join(harness.TOOLS, "sdbench")


def figures(text):
    """sdload's and sdbench's "NAME key=value ..." lines as {NAME: {key: value}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and all("=" in p for p in parts[1:]) and len(parts) > 1:
            out[parts[0]] = dict(p.split("=", 1) for p in parts[1:])
    return out


@harness.skip_unless_built(harness.SERVER_BIN, SDLOAD)
class Load(unittest.TestCase):
    def run_load(self, port, *args):
        p = subprocess.run([SDLOAD, "-p", str(port), "-t", "60", *args],
                           capture_output=True, text=True, timeout=90)
        return p.returncode, figures(p.stdout), p.stderr

    def test_uploads_stored_as_sent(self):
        n, size = 5, 100000  # not a multiple of 16: the padding joins the last packet
        with sh.server() as (srv, d):
            rc, f, err = self.run_load(srv.port, "-s", str(size), "-P", "4096", "upload",
                                       str(n))
            self.assertEqual(rc, 0, err)
            self.assertEqual(f["upload"]["ok"], str(n))
            self.assertEqual(f["upload"]["crc_ok"], str(n))
            rows = sh.query(d, "SELECT PathName, Size, CRC, Verified FROM files")
            self.assertEqual(len(rows), n)
            stamps, tails = set(), set()
            for path, stored_size, crc, verified in rows:
                full = os.path.join(d, "files", path)
                self.assertEqual(os.path.getsize(full), size)
                self.assertEqual(stored_size, size)
                self.assertEqual(verified, 1)
                self.assertEqual(harness.gnu_cksum(full), crc)
                with open(full, "rb") as fh:
                    data = fh.read()
                stamps.add(int.from_bytes(data[:8], "little"))
                tails.add(data[8:])
            # Each session's file is the shared one with its number in the first 8 bytes.
            self.assertEqual(stamps, set(range(n)))
            self.assertEqual(len(tails), 1)

    def test_padding_block_in_a_packet_of_its_own(self):
        with sh.server() as (srv, d):
            rc, f, err = self.run_load(srv.port, "-s", "8192", "-P", "4096", "-c", "2",
                                       "upload", "3")
            self.assertEqual(rc, 0, err)
            self.assertEqual(f["upload"]["crc_ok"], "3")

    def test_registrations(self):
        with sh.server() as (srv, d):
            rc, f, err = self.run_load(srv.port, "-c", "3", "-k", "2", "register", "7")
            self.assertEqual(rc, 0, err)
            self.assertEqual(f["register"]["ok"], "7")
            self.assertEqual(sh.query(d, "SELECT count(*) FROM clients WHERE PublicKey "
                                      "IS NOT NULL")[0][0], 7)

    def test_refused_and_connect_sessions(self):
        # The benchmark's floors: two refused 825s (1601 each, nothing stored), and bare TCP
        # connections that the server closes after their end of input.
        with sh.server() as (srv, d):
            rc, f, err = self.run_load(srv.port, "-c", "3", "refused", "5")
            self.assertEqual(rc, 0, err)
            self.assertEqual(f["refused"]["ok"], "5")
            rc, f, err = self.run_load(srv.port, "-c", "3", "connect", "5")
            self.assertEqual(rc, 0, err)
            self.assertEqual(f["connect"]["ok"], "5")
            self.assertEqual(sh.query(d, "SELECT count(*) FROM clients")[0][0], 0)

    def test_failure_is_reported(self):
        # A server that answers every CRC wrongly: no session may count as right.
        with sh.server(["--test-corrupt-crc", "9"]) as (srv, d):
            rc, f, err = self.run_load(srv.port, "-s", "1000", "upload", "2")
            self.assertNotEqual(rc, 0)
            self.assertEqual(f["upload"]["crc_ok"], "0")
            self.assertIn("1603 does not match", err)


@harness.skip_unless_built(SDBENCH)
class Limits(unittest.TestCase):
    def test_every_limit_is_printed(self):
        p = subprocess.run([SDBENCH, "limits", "1"], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = figures(p.stdout)
        for name in ("memcpy", "cksum", "aes-cbc-encrypt", "aes-cbc-decrypt",
                     "aes-gcm-encrypt", "aes-gcm-decrypt", "sha256-gcrypt", "sha256-gnutls"):
            self.assertIn(name, f)
            self.assertGreaterEqual(int(f[name]["bytes"]), 1 << 20)
            self.assertGreater(float(f[name]["cpu"]), 0.0)

    def test_database_writes(self):
        with harness.tmpdir() as d:
            p = subprocess.run([SDBENCH, "db", d, "20"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            f = figures(p.stdout)
            for name in ("db-register", "db-set-keys"):
                self.assertEqual(f[name]["count"], "20")
                self.assertGreater(float(f[name]["cpu"]), 0.0)
            self.assertEqual(os.listdir(d), [])  # the database and its WAL are gone

    def test_cksum_of_a_file_equals_gnu(self):
        with harness.tmpdir() as d:
            path = harness.make_file(os.path.join(d, "f.bin"), 300001)
            p = subprocess.run([SDBENCH, "cksum", path], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(int(figures(p.stdout)["cksum-file"]["crc"]),
                             harness.gnu_cksum(path))
            self.assertTrue(re.search(r"bytes=300001 ", p.stdout))


if __name__ == "__main__":
    harness.run_tests()

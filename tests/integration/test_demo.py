#!/usr/bin/env python3
"""test_demo.py: runs the one-command demo (scripts/demo.sh, what `make demo` runs after
building) on the built programs and checks what it claims: it exits 0; version 4 pins the
server's fingerprint; a version-3 account keeps its ID when version 4 links it; an upload cut
by the network resumes where the server's bytes end; the download is identical; the
corrupted CRC made the version-3 client send 901; every stored file equals its original;
and the server stopped cleanly."""
import os
import re
import shutil
import subprocess
import sys
import unittest

TOP = os.environ.get("SEALDROP_TOP") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class DemoTest(unittest.TestCase):
    def test_demo_runs_and_checks_pass(self):
        env = dict(os.environ)
        env["BINDIR"] = os.environ.get("SEALDROP_BIN", os.path.join(TOP, "bin"))
        res = subprocess.run(["sh", os.path.join(TOP, "scripts", "demo.sh")], env=env,
                             capture_output=True, text=True, timeout=600)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out)
        m = re.search(r"--fingerprint\): (SHA256:[A-Za-z0-9+/]{43})$", out, re.M)
        self.assertIsNotNone(m, out)
        fp = m.group(1)
        self.assertEqual(len(re.findall(r"^(alice|bob) pinned %s = the server's fingerprint$"
                                        % re.escape(fp), out, re.M)), 2, out)
        self.assertIn("TLS1.3", out)
        self.assertRegex(out, r"linked this key to the account 'Carol Example'")
        self.assertRegex(out, r"carol keeps her ID [0-9a-f]{32} over both versions")
        m = re.search(r"resuming dave\.bin at byte (\d+) of (\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(int(m.group(1)), 0)
        self.assertLessEqual(int(m.group(1)), 4 << 20, "the relay cut after 4 MiB")
        self.assertIn("relay: cut the connection after 4194304 bytes", out)
        self.assertIn("alice.downloaded is identical to alice.bin", out)
        self.assertEqual(len(re.findall(r"^(alice|bob|carol|dave)\s+identical", out, re.M)), 4,
                         out)
        self.assertRegex(out, r"\b901\b", "the corrupted CRC should make the client send 901")
        self.assertIn("server stopped cleanly", out)
        m = re.search(r"Everything is in (\S+)", out)
        self.assertIsNotNone(m, out)
        scratch = m.group(1)
        self.assertTrue(os.path.isfile(os.path.join(scratch, "server", "defensive.db")))
        if os.environ.get("SEALDROP_KEEP") != "1":
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(verbosity=2, exit=False).result.wasSuccessful() else 1)

#!/usr/bin/env python3
"""test_demo.py: runs the one-command demo (scripts/demo.sh, what `make demo` runs after
building) on the built programs and checks what it claims: it exits 0, the three uploads and
the reconnect succeed, the corrupted CRC made the client resend, every stored file equals its
original, and the server stopped cleanly."""
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
                             capture_output=True, text=True, timeout=300)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out)
        self.assertEqual(len(re.findall(r"^(alice|bob|carol)\s+identical", out, re.M)), 3, out)
        self.assertIn("server stopped cleanly", out)
        self.assertRegex(out, r"\b901\b", "the corrupted CRC should make the client send 901")
        m = re.search(r"Everything is in (\S+)", out)
        self.assertIsNotNone(m, out)
        scratch = m.group(1)
        self.assertTrue(os.path.isfile(os.path.join(scratch, "server", "defensive.db")))
        if os.environ.get("SEALDROP_KEEP") != "1":
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(verbosity=2, exit=False).result.wasSuccessful() else 1)

"""`make SAN=...` keeps sanitizer programs apart (issue 9 item 6): their objects go to
build-san/ and their programs to bin-san/, so a later plain `make` never leaves a sanitizer
binary in bin/; a plain build uses build/ and bin/. Checked with `make -n` (nothing built)."""

import os
import re
import shutil
import subprocess
import unittest

import harness


def links(args):
    # tests/run.sh exports BUILD and BINDIR: the defaults are what is checked here.
    env = {k: v for k, v in os.environ.items() if k not in ("BUILD", "BINDIR", "SAN",
                                                            "MAKEFLAGS", "MFLAGS")}
    out = subprocess.run(["make", "-n", "-B", "-C", harness.TOP] + args + ["all"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=60, env=env).stdout
    return re.findall(r"-o (\S+/sealdrop-(?:server|client|db))(?=\s)", out)


@unittest.skipUnless(shutil.which("make"), "make is not installed")
class MakeSan(unittest.TestCase):
    def test_sanitizer_programs_go_to_bin_san(self):
        out = links(["SAN=address,undefined"])
        self.assertEqual(sorted(out), ["bin-san/sealdrop-client", "bin-san/sealdrop-db",
                                       "bin-san/sealdrop-server"])

    def test_plain_programs_go_to_bin(self):
        out = links([])
        self.assertEqual(sorted(out), ["bin/sealdrop-client", "bin/sealdrop-db",
                                       "bin/sealdrop-server"])


if __name__ == "__main__":
    harness.run_tests()

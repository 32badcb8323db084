"""The server test modules again, on PostgreSQL: each runs as its own process with
SEALDROP_TEST_DB=pg, so that every harness.Server gets a fresh database of its own in the
cluster tests/run.sh started (SEALDROP_TEST_PG). By default the modules that exercise restarts
and many connections at once (about 70 s); SEALDROP_LONG=1 runs every server module (about
5 minutes more). Without a cluster: SKIPPED, with the reason."""

import os
import subprocess
import sys
import unittest

import harness

DEFAULT = ["test_server_restart", "test_server_concurrency"]
LONG = DEFAULT + ["test_client_server", "test_server_protocol", "test_server_badinput",
                  "test_server_fixtures"]
MODULES = LONG if os.environ.get("SEALDROP_LONG") == "1" else DEFAULT
HERE = os.path.dirname(os.path.abspath(__file__))
OK, WHY = harness.pg_available()


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.SERVER_BIN)
class ServerSuiteOnPostgres(unittest.TestCase):
    def test_modules(self):
        env = dict(os.environ, SEALDROP_TEST_DB="pg")
        for m in MODULES:
            with self.subTest(module=m):
                p = subprocess.run([harness.PYTHON, os.path.join(HERE, m + ".py")], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=900, text=True, errors="replace")
                tail = "\n".join(p.stdout.splitlines()[-40:])
                print("--- %s on PostgreSQL: exit %d\n%s" % (m, p.returncode, tail))
                self.assertEqual(p.returncode, 0, "%s failed on PostgreSQL" % m)


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

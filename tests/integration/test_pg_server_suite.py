"""The server test modules again, on PostgreSQL: every tests/integration/test_server_*.py and
test_client_server.py runs as its own process with SEALDROP_TEST_DB=pg (the one parameter), so
that every harness.Server gets a fresh database of its own in the cluster tests/run.sh started
(SEALDROP_TEST_PG). The modules share nothing else (free ports, their own temporary folders),
so SEALDROP_PG_JOBS of them (default 3) run at once, the longest first. SEALDROP_PG_MODULES
(names separated by spaces or commas) runs only those. Without a cluster: SKIPPED, with the
reason."""

import glob
import os
import subprocess
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
OK, WHY = harness.pg_available()
# Modules that cannot run on PostgreSQL, with why (each tests the same on PostgreSQL
# elsewhere). None today: a module that must stay on SQLite gives its reason here.
SQLITE_ONLY = {}
# Seconds each module took on the 2-core machine, to start the longest first (a module not
# listed counts as 30 s).
ROUGH_SECONDS = {
    "test_server_crash": 110, "test_server_v4": 80, "test_server_v4_crash": 80,
    "test_server_v4_transfers": 80,
    "test_server_protocol": 60, "test_server_badinput": 60, "test_client_server": 50,
    "test_server_fixtures": 45, "test_server_concurrency": 45, "test_server_retry_reply": 35,
    "test_server_restart": 30, "test_server_limits": 25, "test_server_session_rules": 20,
    "test_server_review": 10, "test_server_v4_session": 20,
}


def modules():
    names = [os.path.basename(p)[:-3] for p in
             glob.glob(os.path.join(HERE, "test_server_*.py")) +
             [os.path.join(HERE, "test_client_server.py")]]
    only = os.environ.get("SEALDROP_PG_MODULES", "").replace(",", " ").split()
    if only:
        names = [n for n in names if n in only]
    names = [n for n in names if n not in SQLITE_ONLY]
    return sorted(names, key=lambda n: (-ROUGH_SECONDS.get(n, 30), n))


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.SERVER_BIN)
class ServerSuiteOnPostgres(unittest.TestCase):
    def test_modules(self):
        names = modules()
        self.assertTrue(names, "no server test modules found")
        env = dict(os.environ, SEALDROP_TEST_DB="pg")
        jobs = max(1, int(os.environ.get("SEALDROP_PG_JOBS", "3")))
        printing = threading.Lock()

        def one(m):
            t0 = time.monotonic()
            p = subprocess.run([harness.PYTHON, os.path.join(HERE, m + ".py")], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=900, text=True,
                               errors="replace")
            took = time.monotonic() - t0
            lines = p.stdout.splitlines()
            # The whole output of a failed module, the summary of a passed one.
            shown = lines if p.returncode != 0 else [l for l in lines if l.startswith(
                ("Ran ", "OK", "SKIPPED")) or l.endswith(("skipped", "... FAIL", "... ERROR"))
                or " skipped " in l]
            with printing:
                print("--- %s on PostgreSQL: exit %d, %.0f s\n%s" %
                      (m, p.returncode, took, "\n".join(shown[-200:])), flush=True)
            return m, p.returncode, took

        t0 = time.monotonic()
        with ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(one, names))
        print("PostgreSQL pass: %d modules, %d at a time, %.0f s" %
              (len(names), jobs, time.monotonic() - t0))
        for m, code, _took in results:
            with self.subTest(module=m):
                self.assertEqual(code, 0, "%s failed on PostgreSQL" % m)


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

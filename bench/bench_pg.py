"""bench_pg.py: `make bench`'s rows for several servers (docs/deployment.md): registrations
and 1 MiB uploads per second with one, two and three sealdrop-server processes sharing one
PostgreSQL database and one storage folder, against one server on SQLite, in the same run.
Load comes from sdload (tests/tools/sdload), one process per server, all started together;
the rate is all sessions over the wall clock of the slowest. A throw-away PostgreSQL cluster
is started (tests/pgcluster.sh) and stopped; without one the PostgreSQL rows say why.

Environment: SEALDROP_BIN, SEALDROP_TOOLS as for bench.py; BENCH_PG_REGS (registrations per
configuration, default 2000), BENCH_PG_UPLOADS (1 MiB uploads, default 200), BENCH_PG_WORKERS
(workers per server, default 2). Figures on a shared 2-core machine are noisy: compare rows of
one run, not runs."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import harness  # noqa: E402

SDLOAD = os.path.join(harness.TOOLS, "sdload")
REGS = int(os.environ.get("BENCH_PG_REGS", "2000"))
UPLOADS = int(os.environ.get("BENCH_PG_UPLOADS", "200"))
WORKERS = os.environ.get("BENCH_PG_WORKERS", "2")


def load(ports, mode, total, *args):
    """sdload on every port at once, total sessions split among them; returns (ok, wall)."""
    procs = []
    start = time.monotonic()
    for i, port in enumerate(ports):
        n = total // len(ports) + (1 if i < total % len(ports) else 0)
        procs.append(subprocess.Popen([SDLOAD, "-p", str(port), "-c", "32", *args, mode,
                                       str(n)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    ok = 0
    for p in procs:
        out, _ = p.communicate(timeout=600)
        for field in out.split():
            if field.startswith("ok="):
                ok += int(field[3:])
    return ok, time.monotonic() - start


def run_config(label, n, db_arg):
    with tempfile.TemporaryDirectory(prefix="sealdrop-benchpg-") as top:
        storage = os.path.join(top, "files")
        servers = []
        try:
            for i in range(n):
                w = os.path.join(top, "s%d" % i)
                os.mkdir(w)
                db = db_arg if db_arg else os.path.join(top, "defensive.db")
                # No per-address registration limit: every sdload session comes from
                # 127.0.0.1, and the limit (120 a minute by default) would be measured instead.
                s = harness.Server(w, args=["--db", db, "--storage", storage,
                                            "--workers", WORKERS,
                                            "--max-registrations-per-minute", "0"])
                s.start()
                servers.append(s)
            ports = [s.port for s in servers]
            rok, rwall = load(ports, "register", REGS)
            uok, uwall = load(ports, "upload", UPLOADS, "-s", str(1 << 20))
        finally:
            for s in servers:
                s.stop()
    print("%-28s %14.0f %9d/%-6d %14.1f %9d/%-6d" % (label, rok / rwall, rok, REGS,
                                                     uok / uwall, uok, UPLOADS))
    sys.stdout.flush()


def main():
    if not os.access(SDLOAD, os.X_OK):
        print("bench_pg: no sdload at %s" % SDLOAD)
        return 0
    print("\n== Several servers (docs/deployment.md): sdload, %s workers per server" % WORKERS)
    print("%-28s %14s %16s %14s %16s" % ("configuration", "registr./s", "ok", "1 MiB up./s",
                                          "ok"))
    run_config("1 server, SQLite", 1, None)
    pgdir = tempfile.mkdtemp(prefix="sealdrop-benchpg-cluster-")
    p = subprocess.run(["sh", os.path.join(TOP, "tests", "pgcluster.sh"), "start", pgdir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print("PostgreSQL rows skipped: %s" % p.stderr.strip())
        shutil.rmtree(pgdir, ignore_errors=True)
        return 0
    admin = p.stdout.strip()
    try:
        for n in (1, 2, 3):
            name = "bench%d" % n
            harness.pg_psql(admin, "CREATE DATABASE %s" % name)
            run_config("%d server%s, PostgreSQL" % (n, "" if n == 1 else "s"), n,
                       "%s dbname=%s" % (admin, name))
    finally:
        subprocess.run(["sh", os.path.join(TOP, "tests", "pgcluster.sh"), "stop", pgdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""harness: what every integration test imports. Paths, temporary folders, the real server
and client binaries under control (bounded waits, always stopped), deterministic files.

Tests run as `python3 tests/integration/test_x.py` from the repository top (tests/run.sh);
importing this module also makes `import sdpeer` (tests/peer/sdpeer.py) work.
"""

import atexit
import contextlib
import os
import re
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("SEALDROP_TOP") or os.path.dirname(os.path.dirname(_HERE))
for _p in (_HERE, os.path.join(TOP, "tests", "peer")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

BIN = os.environ.get("SEALDROP_BIN") or os.path.join(TOP, "bin")
TOOLS = os.environ.get("SEALDROP_TOOLS") or os.path.join(TOP, "build", "tests", "tools")
FIXTURES = os.environ.get("SEALDROP_FIXTURES") or os.path.normpath(
    os.path.join(TOP, "..", "shared", "fixtures"))
SERVER_BIN = os.path.join(BIN, "sealdrop-server")
CLIENT_BIN = os.path.join(BIN, "sealdrop-client")
DB_BIN = os.path.join(BIN, "sealdrop-db")

PEER = os.path.join(TOP, "tests", "peer", "sdpeer.py")
PYTHON = os.environ.get("PYTHON") or "/usr/bin/python3"
# The Python reference server as a Server binary: Server(dir, binary=PEER_SERVER).
PEER_SERVER = [PYTHON, PEER, "serve"]
# The version-4 peer (tests/peer/sdpeer4.py; also serves version 3 on the same port).
PEER4 = os.path.join(TOP, "tests", "peer", "sdpeer4.py")
PEER4_SERVER = [PYTHON, PEER4, "serve"]

LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
# SEALDROP_WRAP: a command put before our own programs (e.g. "valgrind -q --error-exitcode=99"),
# used by `make valgrind`; programs under it start slowly, so they get longer to start.
WRAP = shlex.split(os.environ.get("SEALDROP_WRAP", ""))
START_TIMEOUT = 60.0 if WRAP else 10.0

# A report of AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer (SAN= builds) or
# valgrind (SEALDROP_WRAP) in our programs' output: a test that sees one fails, whatever the
# exit status (a server killed or stopped by a test never shows its sanitizer exit code).
SAN_REPORT_RE = re.compile(
    r"ERROR: (?:Address|Leak|Thread|Memory)Sanitizer|runtime error: |"
    r"==\d+== (?:Invalid |Conditional jump|Use of uninitialised|Syscall param|"
    r"Mismatched free|Source and destination overlap|[\d,]+ bytes in [\d,]+ blocks are "
    r"definitely lost)")


def check_san_report(text, what):
    """Raise AssertionError (with the report) when text holds a sanitizer or valgrind
    report; what names the program for the message."""
    m = SAN_REPORT_RE.search(text or "")
    if m:
        start = max(0, text.rfind("\n", 0, max(0, m.start() - 2000)))
        raise AssertionError("%s: sanitizer/valgrind report:\n%s" % (what, text[start:start + 8000]))


# SEALDROP_TEST_DB=pg: every Server of bin/sealdrop-server without its own --db gets a
# PostgreSQL database of its own (one per work folder, so a restart in the same folder finds its
# rows) in the cluster that tests/run.sh started (SEALDROP_TEST_PG, a libpq keyword string).
TEST_DB = os.environ.get("SEALDROP_TEST_DB", "sqlite")
PG_ADMIN = os.environ.get("SEALDROP_TEST_PG", "")
PSQL = os.environ.get("PSQL") or shutil.which("psql") or "/usr/bin/psql"


def pg_available():
    """(True, "") when a test cluster is there, else (False, why)."""
    if not PG_ADMIN or PG_ADMIN == "off":
        return False, os.environ.get("SEALDROP_TEST_PG_WHY") or "SEALDROP_TEST_PG is not set"
    if not os.access(PSQL, os.X_OK):
        return False, "no psql"
    return True, ""


def pg_conninfo(dbname):
    """The connection string of database dbname in the test cluster (last keyword wins)."""
    return "%s dbname=%s" % (PG_ADMIN, dbname)


class _LibPQ:
    """The few libpq calls the tests need, through ctypes: one connection per connection
    string, kept open (a psql run costs 0.1-0.5 s, most of it the connection). None when
    libpq cannot be loaded (then psql is used)."""

    def __init__(self):
        import ctypes
        import ctypes.util
        import threading
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        lib = ctypes.CDLL(name)
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for fn, res, args in (("PQconnectdb", vp, [cp]), ("PQstatus", i, [vp]),
                              ("PQerrorMessage", cp, [vp]), ("PQexec", vp, [vp, cp]),
                              ("PQresultStatus", i, [vp]), ("PQresultErrorMessage", cp, [vp]),
                              ("PQntuples", i, [vp]), ("PQnfields", i, [vp]),
                              ("PQgetvalue", cp, [vp, i, i]), ("PQclear", None, [vp]),
                              ("PQfinish", None, [vp])):
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        self.lib = lib
        self.conns = {}
        self.lock = threading.Lock()

    def _connect(self, conninfo):
        lib = self.lib
        conn = lib.PQconnectdb(("connect_timeout=10 " + conninfo).encode())
        if not conn or lib.PQstatus(conn) != 0:
            why = lib.PQerrorMessage(conn).decode(errors="replace") if conn else "no memory"
            if conn:
                lib.PQfinish(conn)
            raise RuntimeError(why.strip())
        return conn

    def run(self, conninfo, sql, timeout):
        """Like psql -At -c sql: rows of the last result, columns joined with |."""
        lib = self.lib
        with self.lock:
            for attempt in (0, 1):
                conn = self.conns.get(conninfo)
                if conn is None:
                    conn = self.conns[conninfo] = self._connect(conninfo)
                    self._check(conn, "SET statement_timeout = %d; SET client_min_messages = "
                                "warning" % int(timeout * 1000))
                res = lib.PQexec(conn, sql.encode())
                st = lib.PQresultStatus(res) if res else -1
                if st in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
                    out = []
                    for r in range(lib.PQntuples(res)):
                        out.append("|".join(lib.PQgetvalue(res, r, c).decode()
                                            for c in range(lib.PQnfields(res))))
                    lib.PQclear(res)
                    return "".join(line + "\n" for line in out)
                why = (lib.PQresultErrorMessage(res) if res else
                       lib.PQerrorMessage(conn)).decode(errors="replace").strip()
                if res:
                    lib.PQclear(res)
                if lib.PQstatus(conn) == 0 or attempt:
                    raise RuntimeError(why)
                # The connection went (the cluster restarted, the database was dropped):
                # a new one, once.
                lib.PQfinish(conn)
                del self.conns[conninfo]

    def _check(self, conn, sql):
        res = self.lib.PQexec(conn, sql.encode())
        self.lib.PQclear(res)


_PQ = []


def _libpq():
    if not _PQ:
        try:
            _PQ.append(_LibPQ())
        except (OSError, AttributeError):
            _PQ.append(None)
    return _PQ[0]


def pg_psql(conninfo, sql, timeout=60):
    """Runs sql as psql -At would (unaligned, tuples only); returns its output; raises
    RuntimeError on failure. Through libpq on a kept connection when it loads, else psql."""
    pq = _libpq()
    if pq is not None:
        try:
            return pq.run(conninfo, sql, timeout)
        except RuntimeError as e:
            raise RuntimeError("psql: %s: %s" % (sql, e)) from None
    p = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                        "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    if p.returncode != 0:
        raise RuntimeError("psql: %s: %s" % (sql, p.stderr.strip()))
    return p.stdout


_PG_MADE = set()  # databases this process made or found (a psql run costs 0.1-0.3 s)


def _pg_drop_made():
    """At exit: the databases this process made go (about 8 MB each; the server test suite
    on PostgreSQL makes hundreds). SEALDROP_KEEP=1 keeps them, as it keeps the folders."""
    if os.environ.get("SEALDROP_KEEP") == "1":
        return
    for name in sorted(_PG_MADE):
        try:
            pg_psql(PG_ADMIN, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        except (RuntimeError, OSError, subprocess.SubprocessError):
            pass  # the cluster is gone or going: tests/run.sh removes it anyway
    _PG_MADE.clear()


atexit.register(_pg_drop_made)


def pg_create_db(dbname, fresh=False):
    """Creates dbname in the test cluster (dropped first when fresh); returns its conninfo."""
    if fresh:
        pg_psql(PG_ADMIN, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % dbname)
        _PG_MADE.discard(dbname)
    if dbname not in _PG_MADE:
        try:
            pg_psql(PG_ADMIN, "CREATE DATABASE %s" % dbname)
        except RuntimeError as e:
            if "already exists" not in str(e):
                raise
        _PG_MADE.add(dbname)
    return pg_conninfo(dbname)


def pg_db_for(workdir):
    """The test database of a work folder (created on first use)."""
    import hashlib
    return pg_create_db("sd_" + hashlib.sha1(workdir.encode()).hexdigest()[:16])


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tmpdir(prefix="sealdrop-"):
    """A fresh folder, removed afterwards unless SEALDROP_KEEP=1 (then its path is printed)."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if os.environ.get("SEALDROP_KEEP") == "1":
            print("kept %s" % path, file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


class Server:
    """The real bin/sealdrop-server in workdir, always with --bind 127.0.0.1 --port 0,
    stderr (and stdout) to workdir/server.log. start() waits (at most 10 s) for the
    "listening on 127.0.0.1:PORT" line and sets .port."""

    def __init__(self, workdir, args=(), env=None, binary=None, log_name="server.log"):
        """binary: the program, a path or a command list (default bin/sealdrop-server)."""
        self.workdir = workdir
        self.args = list(args)
        self.env = env
        if binary is None:
            binary = WRAP + [SERVER_BIN]
            if TEST_DB == "pg" and "--db" not in self.args:
                self.args += ["--db", pg_db_for(os.path.realpath(workdir))]
        self.command = [binary] if isinstance(binary, str) else list(binary)
        self.log_path = os.path.join(workdir, log_name)
        self.proc = None
        self.port = None
        self._log = None
        self._log_start = 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        try:  # a restart in the same folder appends: only look past the old text
            self._log_start = os.path.getsize(self.log_path)
        except OSError:
            self._log_start = 0
        self._log = open(self.log_path, "ab")
        cmd = self.command + ["--bind", "127.0.0.1", "--port", "0"] + self.args
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log, env=env)
        except OSError:
            self._close_log()
            raise
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log(since_start=True))
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        code = self.proc.poll()
        self.kill9()
        raise RuntimeError("server did not start (exit %s); log:\n%s" % (code, self.log()))

    def wait_for_log(self, pattern, timeout=10.0):
        """Wait (bounded) until the log of this run matches pattern (a regex); returns the
        match, or None after timeout or when the process has exited without it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(since_start=True))
            if m or time.monotonic() >= deadline:
                return m
            if not self.running():
                return rx.search(self.log(since_start=True))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig, wait up to timeout seconds, then SIGKILL. Returns the exit code
        (negative: killed by that signal), None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()
        check_san_report(self.log(since_start=True), "server")
        return self.proc.returncode

    def kill9(self):
        """SIGKILL now; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()
        check_san_report(self.log(since_start=True), "server")
        return self.proc.returncode

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self, since_start=False):
        """The log text so far (since_start: only what this run wrote)."""
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(self._log_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def run_client(workdir, args=(), timeout=60, env=None, binary=None, input=None):
    """Run bin/sealdrop-client in workdir; returns CompletedProcess with text stdout and
    stderr. A run past timeout is killed and raises subprocess.TimeoutExpired.
    binary: a path or a command list (default bin/sealdrop-client)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    if binary is None:
        binary = WRAP + [CLIENT_BIN]
    cmd = ([binary] if isinstance(binary, str) else list(binary)) + list(args)
    done = subprocess.run(cmd, cwd=workdir, env=full_env,
                          stdin=subprocess.DEVNULL if input is None else None, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          text=True, errors="replace")
    check_san_report(done.stderr, "client")
    return done


def write_transfer_info(directory, host_port, name, path):
    """Write directory/transfer.info: host:port, client name, file path (SPEC 8)."""
    p = os.path.join(directory, "transfer.info")
    with open(p, "w") as f:
        f.write("%s\n%s\n%s\n" % (host_port, name, path))
    return p


def gnu_cksum(path):
    """The first field of GNU `cksum PATH`."""
    out = subprocess.run(["cksum", path], stdout=subprocess.PIPE, check=True, timeout=600,
                         text=True).stdout
    return int(out.split()[0])


def gen_bytes(size, seed=None):
    """The fixtures' generator as bytes (x0 = seed, default size; x = x*1664525 + 1013904223
    mod 2^32; byte = x >> 24). For small sizes; make_file streams large ones."""
    return b"".join(_gen_chunks(size, size if seed is None else seed))


_A, _C, _M = 1664525, 1013904223, 0xFFFFFFFF


def _gen_chunks(size, seed, lanes=1 << 16):
    # The generator is affine mod 2^32, so K steps at once are x -> A^K x + C_K. Row r holds
    # x[r*K .. r*K+K-1] packed in one big integer, 9 bytes a lane (a 32-bit value times a
    # 32-bit multiplier plus a 32-bit addend fits in 72 bits, so lanes never carry into each
    # other); one big-integer multiply advances all K lanes: 100 MiB takes seconds, not
    # minutes. test_peer_fixtures checks the result against the fixtures' uploads.
    width = 9
    x = seed & _M
    first = []
    for _ in range(min(lanes, size)):
        x = (x * _A + _C) & _M
        first.append(x)
    k = len(first)
    if k == 0:
        return
    a_k = pow(_A, k, 1 << 32)
    c_k = 0
    for _ in range(k):
        c_k = (c_k * _A + _C) & _M

    def pack(values):
        return int.from_bytes(b"".join(v.to_bytes(width, "little") for v in values), "little")

    row = pack(first)
    ones = pack([1] * k)
    mask32, add, mask8 = ones * _M, ones * c_k, ones * 0xFF
    left = size
    while left > 0:
        out = ((row >> 24) & mask8).to_bytes(width * k, "little")[0::width]
        n = min(k, left)
        yield out[:n]
        left -= n
        if left > 0:
            row = (row * a_k + add) & mask32


def make_file(path, size, seed=None):
    """Write size deterministic bytes (gen_bytes) to path in chunks; returns path."""
    with open(path, "wb") as f:
        for c in _gen_chunks(size, size if seed is None else seed):
            f.write(c)
    return path


def skip_unless_built(*paths):
    """unittest skip decorator for tests that need programs (default: server and client)
    that another module may not have delivered yet; prints why it skipped."""
    paths = paths or (SERVER_BIN, CLIENT_BIN)
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    return unittest.skipIf(missing, "not built: %s" % ", ".join(missing))


def run_tests():
    """Run the calling module's unittest tests (verbosity 2); exit non-zero on failure."""
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)

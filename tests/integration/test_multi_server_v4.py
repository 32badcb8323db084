"""Version-4 uploads and start-up work on several servers sharing one PostgreSQL database and
one storage folder (docs/deployment.md): an upload cut on server A resumes on server B from
the durable offset and reads back byte-identical from A; one upload per (account, name)
across servers (the newer PUT_OPEN takes over, the older connection gets ERROR 8 and never
publishes, also when the older one still writes its file); a server starting while another
is mid-upload, waiting for a version-3 verdict, or between a commit intent and its
publishing leaves that work alone (it completes, byte-identical); a commit intent a killed
server left is rolled forward by a live one; `sealdrop-db check` exits 0 after each. On
PostgreSQL (the cluster of tests/run.sh, SEALDROP_TEST_PG, else SKIPPED) and again with the
servers sharing one SQLite file (MultiServerV4SQLite)."""

import contextlib
import glob
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

import harness
import sdpeer
import sdpeer4
from sdpeer4 import Client4, Dropped, Identity, RemoteError

OK, WHY = harness.pg_available()
MiB = 1 << 20
RSA = []


def rsa():
    if not RSA:
        RSA.append(sdpeer.RSAKey.generate())
    return RSA[0]


@contextlib.contextmanager
def service(n, tag, backend, env=None):
    """n servers on one fresh database (PostgreSQL, or one SQLite file all of them open) and
    one storage folder; yields (servers, storage, db, top), db being the --db value. env:
    extra environment of the FIRST server."""
    with harness.tmpdir("sealdrop-xs-") as top:
        if backend == "pg":
            conninfo = harness.pg_create_db("sd_xs_%s_%d" % (tag, os.getpid()), fresh=True)
        else:
            conninfo = os.path.join(top, "shared.db")
        storage = os.path.join(top, "storage")
        servers = []
        try:
            for i in range(n):
                servers.append(start_server(top, "s%d" % i, conninfo, storage,
                                            env if i == 0 else None))
            yield servers, storage, conninfo, top
        finally:
            for s in servers:
                if s.running():
                    try:
                        os.kill(s.pid, signal.SIGCONT)
                    except OSError:
                        pass
                s.stop()


def start_server(top, name, conninfo, storage, env=None):
    w = os.path.join(top, name)
    os.makedirs(w, exist_ok=True)
    s = harness.Server(w, args=["--db", conninfo, "--storage", storage, "--workers", "2",
                                "--max-registrations-per-minute", "0"], env=env)
    s.start()
    return s


def send(c, data, start, end, step=256 * 1024):
    """PUT_DATA chunks of data[start:end]."""
    pos = start
    while pos < end:
        n = min(step, end - pos)
        c.put_data(pos, 0, n, data[pos:pos + n])
        pos += n


def db_check(storage, conninfo):
    return subprocess.run([harness.DB_BIN, "--db", conninfo, "--storage", storage, "check"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def rows(db, sql):
    """The answer of sql as lists of text, from PostgreSQL or the SQLite file db."""
    if "=" in db:  # a libpq keyword string (harness.pg_create_db)
        return [line.split("|") for line in harness.pg_psql(db, sql).splitlines()]
    con = sqlite3.connect(db, timeout=10)
    try:
        return [["" if v is None else str(v) for v in row] for row in con.execute(sql)]
    finally:
        con.close()


@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN)
class MultiServerV4(unittest.TestCase):
    """On PostgreSQL (several hosts); MultiServerV4SQLite runs the same on one SQLite file
    shared by several processes of one host."""
    backend = "pg"

    def setUp(self):
        if self.backend == "pg" and not OK:
            self.skipTest("PostgreSQL: %s" % WHY)

    def service(self, n, tag, env=None):
        return service(n, tag + self.backend, self.backend, env)
    def account(self, server, name):
        ident = Identity.generate()
        c = Client4("127.0.0.1", server.port, identity=ident, timeout=20.0)
        try:
            c.connect()
            w = c.register(rsa(), name)
        finally:
            c.close()
        return {"identity": ident, "id": bytes.fromhex(w["id"]) if isinstance(w["id"], str)
                else bytes(w["id"])}

    def client(self, server, who, **kw):
        kw.setdefault("timeout", 30.0)
        c = Client4("127.0.0.1", server.port, identity=who["identity"], **kw)
        self.addCleanup(c.close)
        c.connect()
        self.assertIsNotNone(c.whoami())
        return c

    def stored(self, storage, who, name):
        with open(os.path.join(storage, who["id"].hex(), name), "rb") as f:
            return f.read()

    def partial_files(self, storage, who):
        return glob.glob(os.path.join(storage, who["id"].hex(), ".sealdrop-part-*"))

    def assert_check(self, storage, conninfo):
        r = db_check(storage, conninfo)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))

    def test_cut_on_a_resumed_on_b(self):
        """Cut mid-file on A; B resumes at the durable offset A recorded (in place: A let go
        of the file); only the rest travels; GET on A is byte-identical."""
        with self.service(2, "resume") as (servers, storage, conninfo, _):
            a, b = servers
            who = self.account(a, "rita")
            size = 12 * MiB
            data = random.Random(21).randbytes(size)
            c = Client4("127.0.0.1", a.port, identity=who["identity"], timeout=30.0,
                        drop_after=5 * MiB)
            self.addCleanup(c.close)
            with self.assertRaises((Dropped, OSError)):
                c.connect()
                c.whoami()
                c.upload("cut.bin", data, chunk=256 * 1024)
            c.close()
            m = a.wait_for_log(r"partial upload kept at (\d+) of %d bytes" % size, 20)
            self.assertIsNotNone(m, a.log())
            kept = int(m.group(1))
            self.assertGreater(kept, 3 * MiB)
            self.assertEqual(rows(conninfo, 'SELECT "Offset" FROM uploads'), [[str(kept)]])
            d = self.client(b, who)
            res = d.upload("cut.bin", data)
            self.assertTrue(res["verified"], res)
            self.assertEqual(res["resumed_from"], kept)
            self.assertFalse(res["restarted"])
            self.assertEqual(res["data_sent"], size - kept)
            self.assertIn('"cut.bin": %d bytes, resuming at %d' % (size, kept), b.log())
            g = self.client(a, who).get("cut.bin")
            self.assertTrue(g["verified"])
            self.assertEqual(g["data"], data)
            self.assertEqual(self.stored(storage, who, "cut.bin"), data)
            self.assertEqual(self.partial_files(storage, who), [])
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM uploads"), [["0"]])
            self.assert_check(storage, conninfo)

    def test_newer_on_b_takes_over_a_live_upload_on_a(self):
        """A's connection is alive and writing past its durable offset when B's PUT_OPEN
        comes: B resumes from a copy of the durable prefix, finishes and publishes; A's
        connection gets ERROR 8 at PUT_FINISH; the file is B's bytes."""
        with self.service(2, "live") as (servers, storage, conninfo, _):
            a, b = servers
            who = self.account(a, "sam")
            size = 6 * MiB
            data = random.Random(22).randbytes(size)
            # A durable prefix first: a connection cut on A.
            c = Client4("127.0.0.1", a.port, identity=who["identity"], timeout=30.0,
                        drop_after=2 * MiB)
            self.addCleanup(c.close)
            with self.assertRaises((Dropped, OSError)):
                c.connect()
                c.whoami()
                c.upload("same.bin", data, chunk=256 * 1024)
            c.close()
            m = a.wait_for_log(r"partial upload kept at (\d+) of", 20)
            self.assertIsNotNone(m, a.log())
            kept = int(m.group(1))
            # The older connection on A resumes and writes 1 MiB more, not recorded.
            old = self.client(a, who)
            st = old.put_open(size, "same.bin")
            self.assertEqual(st["offset"], kept)
            old.put_data(kept, 0, MiB, data[kept:kept + MiB])
            self.assertIsNotNone(a.wait_for_log(r'"same.bin": %d bytes, resuming' % size))
            # The newer one on B, while A holds the file.
            new = self.client(b, who)
            deadline = time.monotonic() + 10
            st = new.put_open(size, "same.bin")
            self.assertEqual(st["offset"], kept, "B resumes from the durable prefix only")
            self.assertEqual(st["prefix_sha256"], hashlib.sha256(data[:kept]).digest())
            self.assertLess(time.monotonic(), deadline)
            pos = kept
            while pos < size:
                n = min(256 * 1024, size - pos)
                new.put_data(pos, 0, n, data[pos:pos + n])
                pos += n
            done = new.put_finish(hashlib.sha256(data).digest())
            self.assertEqual(done["size"], size)
            # The older connection: whatever it sends now, it never publishes.
            other = bytes(random.Random(23).randbytes(size))
            pos = kept + MiB
            with self.assertRaises(RemoteError) as e:
                while pos < size:
                    n = min(256 * 1024, size - pos)
                    old.put_data(pos, 0, n, other[pos:pos + n])
                    pos += n
                old.put_finish(hashlib.sha256(data[:kept + MiB] + other[kept + MiB:]).digest())
            self.assertEqual(e.exception.reason, sdpeer4.BUSY)
            self.assertEqual(self.stored(storage, who, "same.bin"), data)
            g = self.client(a, who).get("same.bin")
            self.assertEqual(g["data"], data)
            self.assertIsNotNone(a.wait_for_log("upload taken over", 10))
            self.assertEqual(self.partial_files(storage, who), [])
            self.assert_check(storage, conninfo)

    def test_concurrent_put_same_name_on_a_and_b(self):
        """Two clients open the same name at once, one on each server, then send different
        bytes: exactly one publishes (the later PUT_OPEN), the other gets ERROR 8; the stored
        file is the winner's source, byte for byte."""
        with self.service(2, "race") as (servers, storage, conninfo, _):
            who = self.account(servers[0], "tess")
            size = 4 * MiB
            sources = [random.Random(30 + i).randbytes(size) for i in range(2)]
            clients = [self.client(servers[i], who) for i in range(2)]
            opened = threading.Barrier(2, timeout=30)
            results = [None, None]

            def run(i):
                c, data = clients[i], sources[i]
                try:
                    st = c.put_open(size, "race.bin")
                    opened.wait()
                    pos = st["offset"]
                    if pos:  # resumed the other's bytes: not its own source
                        results[i] = ("resumed", pos)
                        return
                    while pos < size:
                        n = min(256 * 1024, size - pos)
                        c.put_data(pos, 0, n, data[pos:pos + n])
                        pos += n
                    results[i] = ("done", c.put_finish(hashlib.sha256(data).digest()))
                except RemoteError as e:
                    results[i] = ("error", e.reason)
                except (OSError, sdpeer.PeerError) as e:
                    results[i] = ("closed", str(e))

            ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
                self.assertFalse(t.is_alive())
            kinds = sorted(r[0] for r in results)
            self.assertEqual(kinds, ["done", "error"], results)
            winner = [i for i in range(2) if results[i][0] == "done"][0]
            loser = 1 - winner
            self.assertEqual(results[loser][1], sdpeer4.BUSY)
            self.assertEqual(self.stored(storage, who, "race.bin"), sources[winner])
            hexsha = "encode(SHA256, 'hex')" if self.backend == "pg" else "lower(hex(SHA256))"
            self.assertEqual(rows(conninfo, "SELECT %s FROM files WHERE FileName = "
                                  "'race.bin' AND Verified = 1" % hexsha),
                             [[hashlib.sha256(sources[winner]).hexdigest()]])
            self.assertEqual(self.partial_files(storage, who), [])
            self.assert_check(storage, conninfo)

    def test_start_up_of_a_server_leaves_live_work_alone(self):
        """While A holds a version-4 upload mid-file (written past its durable offset) and a
        version-3 upload waiting for its client's verdict, a third server starts on the same
        folder: both complete on A afterwards, byte-identical (its start-up neither truncated
        the one nor removed the other)."""
        with self.service(1, "startup") as (servers, storage, conninfo, top):
            a = servers[0]
            who = self.account(a, "uma")
            size = 3 * MiB
            data = random.Random(40).randbytes(size)
            v4 = self.client(a, who)
            self.assertEqual(v4.put_open(size, "v4.bin")["offset"], 0)
            send(v4, data, 0, 2 * MiB)
            key = rsa()
            cid = None
            v3data = harness.gen_bytes(300000, seed=41)
            with sdpeer.PeerClient("127.0.0.1", a.port, timeout=30) as pc:
                pc.connect()
                code, cid = pc.register("vic")
                self.assertEqual(code, sdpeer.REGISTERED)
                code, aes = pc.send_public_key("vic", key)
                self.assertEqual(code, sdpeer.AES_KEY)
                r = pc.upload("v3.bin", v3data, aes)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertTrue(a.wait_for_log(r"v4.bin", 5))
                time.sleep(0.5)  # A has written the 2 MiB (no reply to PUT_DATA)
                c = start_server(top, "s9", conninfo, storage)
                servers.append(c)
                self.assertEqual(pc.crc_ok("v3.bin"), sdpeer.ACK)
            send(v4, data, 2 * MiB, size)
            done = v4.put_finish(hashlib.sha256(data).digest())
            self.assertEqual(done["size"], size)
            self.assertEqual(self.stored(storage, who, "v4.bin"), data)
            with open(os.path.join(storage, bytes(cid).hex(), "v3.bin"), "rb") as f:
                self.assertEqual(f.read(), v3data)
            self.assertNotIn("removed", c.log())
            self.assert_check(storage, conninfo)

    def intent_left_to_live_server(self, step):
        """A stops (SIGSTOP, alive with its locks) at step of a version-3 publish; a server
        starting meanwhile leaves that commit to A; once continued, A acknowledges it."""
        env = {"SEALDROP_CRASH_AT": step, "SEALDROP_CRASH_STOP": "1"}
        tag = step.replace("-", "")
        with self.service(1, tag, env=env) as (servers, storage, conninfo, top):
            a = servers[0]
            key = rsa()
            data = harness.gen_bytes(200000, seed=50)
            with sdpeer.PeerClient("127.0.0.1", a.port, timeout=60) as pc:
                pc.connect()
                code, cid = pc.register("wes")
                code, aes = pc.send_public_key("wes", key)
                r = pc.upload("i.bin", data, aes)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                pc.request(sdpeer.CRC_OK, sdpeer.name_field("i.bin"))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with open("/proc/%d/stat" % a.pid) as f:
                        if f.read().split(") ")[1].split()[0] == "T":
                            break
                    time.sleep(0.05)
                else:
                    self.fail("server A did not stop at %s" % step)
                self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["1"]])
                c = start_server(top, "s9", conninfo, storage)
                servers.append(c)
                self.assertIsNotNone(c.wait_for_log("left to the live server completing it"))
                self.assertNotIn("rolled forward", c.log())
                os.kill(a.pid, signal.SIGCONT)
                self.assertEqual(pc.recv()[0], sdpeer.ACK)
            with open(os.path.join(storage, bytes(cid).hex(), "i.bin"), "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["0"]])
            self.assertEqual(rows(conninfo, "SELECT Verified FROM files"), [["1"]])
            self.assert_check(storage, conninfo)

    def test_intent_before_rename_left_to_its_server(self):
        self.intent_left_to_live_server("after-intent")

    def test_intent_after_rename_left_to_its_server(self):
        self.intent_left_to_live_server("after-rename")

    def test_killed_servers_intent_rolled_forward_by_a_live_one(self):
        """A is killed right after recording a commit intent; no server starts after it. The
        next uploads of that path on the live server B (version 3, then version 4) roll the
        dead server's intent forward instead of failing on it (1607, ERROR 9)."""
        env = {"SEALDROP_CRASH_AT": "after-intent"}
        with self.service(2, "stale", env=env) as (servers, storage, conninfo, _):
            a, b = servers
            key = rsa()
            who = self.account(b, "xena")
            first = harness.gen_bytes(150000, seed=60)
            with sdpeer.PeerClient("127.0.0.1", a.port, timeout=30) as pc:
                pc.connect()
                code, aes, _ = pc.reconnect("xena", who["id"], key)
                self.assertEqual(code, sdpeer.RECONNECTED)
                r = pc.upload("s.bin", first, aes)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                pc.request(sdpeer.CRC_OK, sdpeer.name_field("s.bin"))
                with self.assertRaises((OSError, sdpeer.PeerError)):
                    pc.recv()
            a.proc.wait(10)
            self.assertEqual(a.proc.returncode, 137)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["1"]])
            second = harness.gen_bytes(160000, seed=61)
            with sdpeer.PeerClient("127.0.0.1", b.port, timeout=30) as pc:
                pc.connect()
                code, aes, _ = pc.reconnect("xena", who["id"], key)
                r = pc.upload("s.bin", second, aes)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok("s.bin"), sdpeer.ACK)
            self.assertIn("rolled forward", b.log())
            self.assertEqual(self.stored(storage, who, "s.bin"), second)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["0"]])
            self.assert_check(storage, conninfo)

    def test_killed_servers_intent_in_the_way_of_a_version4_upload(self):
        env = {"SEALDROP_CRASH_AT": "after-intent"}
        with self.service(2, "stale4", env=env) as (servers, storage, conninfo, _):
            a, b = servers
            key = rsa()
            who = self.account(b, "yara")
            with sdpeer.PeerClient("127.0.0.1", a.port, timeout=30) as pc:
                pc.connect()
                code, aes, _ = pc.reconnect("yara", who["id"], key)
                r = pc.upload("t.bin", b"old bytes" * 1000, aes)
                pc.request(sdpeer.CRC_OK, sdpeer.name_field("t.bin"))
                with self.assertRaises((OSError, sdpeer.PeerError)):
                    pc.recv()
            a.proc.wait(10)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["1"]])
            data = random.Random(62).randbytes(MiB)
            res = self.client(b, who).upload("t.bin", data)
            self.assertTrue(res["verified"])
            self.assertEqual(self.stored(storage, who, "t.bin"), data)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM commits"), [["0"]])
            self.assert_check(storage, conninfo)

    def test_start_ups_one_at_a_time(self):
        """The start-up lock: a server finding it held waits, says so, then starts."""
        with self.service(1, "lock") as (servers, storage, conninfo, top):
            import fcntl
            fd = os.open(os.path.join(storage, ".sealdrop-startup.lock"), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                w = os.path.join(top, "s8")
                os.makedirs(w)
                s = harness.Server(w, args=["--db", conninfo, "--storage", storage])
                t = threading.Thread(target=s.start)
                t.start()
                time.sleep(1.5)
                self.assertNotIn("listening", s.log())
                fcntl.flock(fd, fcntl.LOCK_UN)
                t.join(20)
                servers.append(s)
                self.assertIsNotNone(s.port)
                self.assertIn("waited for another server's start-up", s.log())
            finally:
                os.close(fd)
            self.assert_check(storage, conninfo)


class MultiServerV4SQLite(MultiServerV4):
    backend = "sqlite"


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

"""Crash consistency of version 4's storage steps (issue 9's rule applied to version 4): the
real sealdrop-server is killed at every named step of the resumable upload (publish through a
commit intent, the durable offset recorded every 64 MiB and when an upload leaves its
connection, a fresh or resumed upload's record, a discarded upload), of DELETE, of the
start-up reconciliation of partial uploads and of their expiry (SEALDROP_CRASH_AT=<step>
makes it _exit(137) there), and with SIGKILL at random moments of version-4 uploads, then
restarted in the same folder. After every restart: every files row with Verified = 1 describes
exactly its file (size, cksum, SHA-256), the rows are exactly what the steps reached say, no
commit intent is left, every partial-upload record's temporary file holds exactly its durable
offset, no stored file lacks a row (or, for a temporary file, a record), `sealdrop-db check`
exits 0; then the client's retry resumes where the durable offset says and the file reads back
byte-identical through GET. SEALDROP_V4_CRASH_ROUNDS sets the number of random kills
(default 6)."""

import hashlib
import os
import random
import signal
import ssl
import subprocess
import threading
import time
import unittest

import harness
import sdpeer
import sdpeer4
import server_helpers as sh
from sdpeer4 import Client4, RemoteError

MiB = 1 << 20
SYNC_INTERVAL = 64 * MiB  # server/put.h PUT_SYNC_INTERVAL
ROUND_TIMEOUT = 20
REASON_NOT_FOUND = 5      # SPEC-v4.md ERROR reasons
RESUME_PREFIX = ".sealdrop-part-resume-"
# What a dead server leaves its client with.
CUT = (sdpeer.PeerError, sdpeer4.Dropped, OSError, ssl.SSLError, EOFError)


def sha(data):
    return hashlib.sha256(data).digest()


@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN)
class CrashV4(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.tmpdir("sealdrop-v4crash-")
        self.dir = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.storage = os.path.join(self.dir, "files")
        self.ident = sdpeer4.Identity.generate()
        self.rnd = random.Random(49)
        self.crashes = 0
        srv = self.start()
        try:
            c = Client4("127.0.0.1", srv.port, identity=self.ident, timeout=ROUND_TIMEOUT)
            try:
                c.connect()
                self.cid = bytes.fromhex(c.register(sdpeer.RSAKey.generate(),
                                                    "crash4-%s" % os.urandom(3).hex())["id"])
            finally:
                c.close()
        finally:
            self.assertEqual(srv.stop(), 0)
        self.folder = os.path.join(self.storage, self.cid.hex())
        self.expected = {}  # file name -> (size, cksum, sha256) of its verified row

    # -- servers and clients -----------------------------------------------------------

    def start(self, step=None, args=()):
        srv = harness.Server(self.dir, args=list(args), env={"SEALDROP_CRASH_AT": step or ""})
        srv.start()
        self.addCleanup(srv.kill9)
        return srv

    def start_dies(self, step, args=()):
        """A start armed at a step of the start-up itself: it must die there (137)."""
        srv = harness.Server(self.dir, args=list(args), env={"SEALDROP_CRASH_AT": step})
        self.addCleanup(srv.kill9)
        with self.assertRaises(RuntimeError, msg="the start did not reach %s" % step):
            srv.start()
        self.assertEqual(srv.proc.returncode, 137, srv.log(since_start=True)[-2000:])
        self.crashes += 1

    def client(self, port, drop_after=None):
        c = Client4("127.0.0.1", port, identity=self.ident, timeout=ROUND_TIMEOUT,
                    drop_after=drop_after)
        self.addCleanup(c.close)
        c.connect()
        self.assertIsNotNone(c.whoami())
        return c

    def died(self, srv, step):
        try:
            code = srv.proc.wait(timeout=ROUND_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        self.assertEqual(code, 137, "the server did not crash at %s:\n%s"
                         % (step, srv.log(since_start=True)[-3000:]))
        srv.kill9()
        self.crashes += 1

    def cut_upload(self, port, name, data, cut):
        """An upload whose connection drops after cut bytes of frames: the server keeps what
        it received (fsynced, durable offset recorded when the connection ends)."""
        c = Client4("127.0.0.1", port, identity=self.ident, timeout=ROUND_TIMEOUT,
                    drop_after=cut)
        try:
            c.connect()
            c.whoami()
            c.upload(name, data, chunk=256 * 1024)
            self.fail("the upload of %s was not cut" % name)
        except CUT:
            pass
        finally:
            c.close()

    def attempt(self, port, fn):
        """Runs fn(client) against a server that is to die in it; what the death does to the
        client (an error, a closed connection) is expected."""
        try:
            fn(self.client(port))
        except CUT + (RemoteError,):
            pass

    # -- checks ------------------------------------------------------------------------

    def rows(self):
        return {r[0]: r[1:] for r in sh.query(
            self.dir, "SELECT FileName, PathName, Size, CRC, Verified, SHA256 FROM files "
            "WHERE ID = ?", (self.cid,))}

    def uploads(self):
        return {r[0]: r[1:] for r in sh.query(
            self.dir, 'SELECT FileName, Size, "Offset", TempPath FROM uploads WHERE ID = ?',
            (self.cid,))}

    def check(self, where):
        """The invariant after a (re)start; returns the partial-upload records."""
        rows = sh.assert_rows_describe_files(self, self.dir, self.cid, where)
        ups = self.uploads()
        named = set()
        for fname, (path, _size, _crc, verified, digest) in rows.items():
            named.add(os.path.realpath(os.path.join(self.storage, path)))
            self.assertTrue(verified, "%s: %s not verified" % (where, fname))
            self.assertIsNotNone(digest, "%s: %s has no SHA-256" % (where, fname))
        got = {f: (r[1], r[2], bytes(r[4])) for f, r in rows.items()}
        self.assertEqual(got, self.expected, "%s: rows" % where)
        for fname, (size, offset, temp) in ups.items():
            full = os.path.join(self.storage, temp)
            named.add(os.path.realpath(full))
            self.assertTrue(os.path.basename(temp).startswith(RESUME_PREFIX), where)
            self.assertTrue(os.path.isfile(full), "%s: record of %s, no file" % (where, fname))
            self.assertEqual(os.path.getsize(full), offset,
                             "%s: the temporary file of %s is not its durable offset"
                             % (where, fname))
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM commits"), [(0,)], where)
        stray = []
        for top, _dirs, files in os.walk(self.storage):
            # An empty resumable file a kill left right after creating it stays until it is
            # 5 s old (a younger one may be a live server's, not locked yet:
            # docs/deployment.md); it holds nothing. test_record_steps sees it go.
            stray += [os.path.join(top, f) for f in files
                      if os.path.realpath(os.path.join(top, f)) not in named
                      and f != sh.STARTUP_LOCK
                      and not (f.startswith(RESUME_PREFIX)
                               and os.path.getsize(os.path.join(top, f)) == 0)]
        self.assertEqual(stray, [], "%s: stored files without a row or record" % where)
        sh.assert_db_check(self, self.dir, where)
        return ups

    def finish(self, port, name, data, resumed_from=None):
        """The client's retry after the restart: the upload completes (resuming at the
        durable offset), and GET reads it back byte-identical."""
        c = self.client(port)
        res = c.upload(name, data)
        self.assertTrue(res["verified"], res)
        self.assertFalse(res["restarted"], "%s: the resumed prefix was wrong" % name)
        if resumed_from is not None:
            self.assertEqual(res["resumed_from"], resumed_from, name)
        self.assertEqual(res["data_sent"], len(data) - res["resumed_from"])
        g = c.get(name)
        self.assertTrue(g["verified"])
        self.assertTrue(g["data"] == data, "%s: GET differs from the upload" % name)
        c.close()
        self.expected[name] = (len(data), sdpeer4.cksum_fast(data), sha(data))
        return res

    def data(self, lo=MiB // 2, hi=2 * MiB):
        return self.rnd.randbytes(self.rnd.randrange(lo, hi))

    # -- the named steps ---------------------------------------------------------------

    def test_publish_steps(self):
        # (step, whether the crash happens after the intent: the new version is stored)
        steps = [("put-before-intent", False), ("put-after-intent", True),
                 ("put-after-rename", True), ("put-after-dirsync", True),
                 ("put-after-publish", True), ("put-after-record-gone", True)]
        srv = self.start()
        self.finish(srv.port, "a.bin", self.data())  # an older verified version
        srv.stop()
        for step, stored in steps:
            new = self.data()
            srv = self.start(step)
            # Part of it first: the upload that dies resumed from a durable offset.
            self.cut_upload(srv.port, "a.bin", new, len(new) // 2)
            durable = self.uploads()["a.bin"][1]
            self.assertGreater(durable, 0)
            self.attempt(srv.port, lambda c: c.upload("a.bin", new))
            self.died(srv, step)
            srv = self.start()
            if stored:
                self.expected["a.bin"] = (len(new), sdpeer4.cksum_fast(new), sha(new))
            ups = self.check("after %s" % step)
            self.assertEqual(set(ups), set() if stored else {"a.bin"}, step)
            # Not stored: it resumes at the durable offset; stored: it is sent again whole.
            self.finish(srv.port, "a.bin", new, 0 if stored else durable)
            self.check("after %s, then the retry" % step)
            srv.stop()

    def test_durable_offset_steps(self):
        # Recorded when the upload leaves its connection.
        for step in ("put-sync-after-fsync", "put-sync-after-record"):
            name, new = step + ".bin", self.data()
            srv = self.start(step)
            self.cut_upload(srv.port, name, new, len(new) // 2)
            self.died(srv, step)
            if step == "put-sync-after-fsync":
                # The start-up itself dies cutting the file back to its record's offset (0):
                # the next start does it again.
                self.start_dies("reconcile-after-truncate")
            srv = self.start()
            ups = self.check("after %s" % step)
            offset = ups[name][1]
            if step == "put-sync-after-fsync":
                self.assertEqual(offset, 0)
            else:
                self.assertGreater(offset, len(new) // 4)
            self.finish(srv.port, name, new, offset)
            self.check("after %s, then the retry" % step)
            srv.stop()
        # Recorded every 64 MiB during the upload: the kill there leaves exactly 64 MiB.
        big = self.rnd.randbytes(SYNC_INTERVAL + MiB + 17)
        srv = self.start("put-sync-after-record")
        self.attempt(srv.port, lambda c: c.upload("big.bin", big))
        self.died(srv, "put-sync-after-record (64 MiB)")
        srv = self.start()
        self.assertEqual(self.check("after the 64 MiB record")["big.bin"][1], SYNC_INTERVAL)
        self.finish(srv.port, "big.bin", big, SYNC_INTERVAL)
        srv.stop()

    def test_record_steps(self):
        # A fresh upload: its temporary file made, no record yet.
        new = self.data()
        srv = self.start("put-fresh-after-create")
        self.attempt(srv.port, lambda c: c.put_open(len(new), "fresh.bin"))
        self.died(srv, "put-fresh-after-create")
        # Empty and unlocked: a start-up leaves it while it is younger than 5 s (it may be
        # another live server's, created an instant before its lock: docs/deployment.md),
        # and removes it after.
        srv = self.start()
        srv.stop()
        self.assertEqual(len(self.uploads()), 0)
        time.sleep(5.5)
        srv = self.start()
        self.assertEqual(self.check("after put-fresh-after-create"), {})
        left = [f for _t, _d, fs in os.walk(self.storage) for f in fs
                if f.startswith(RESUME_PREFIX)]
        self.assertEqual(left, [], "the empty file of the killed upload is gone")
        self.finish(srv.port, "fresh.bin", new, 0)
        srv.stop()

        # A resumed upload: the file synced, its record not refreshed yet.
        new = self.data()
        srv = self.start("put-resume-after-sync")
        self.cut_upload(srv.port, "resumed.bin", new, len(new) // 2)
        durable = self.uploads()["resumed.bin"][1]
        self.attempt(srv.port, lambda c: c.put_open(len(new), "resumed.bin"))
        self.died(srv, "put-resume-after-sync")
        srv = self.start()
        self.assertEqual(self.check("after put-resume-after-sync")["resumed.bin"][1], durable)
        self.finish(srv.port, "resumed.bin", new, durable)
        srv.stop()

        # A partial upload of another size is dropped: its file gone, its record not yet;
        # then the start-up that drops the record dies between its own two steps.
        new = self.data()
        srv = self.start("put-resume-drop-after-unlink")
        self.cut_upload(srv.port, "resized.bin", new, len(new) // 2)
        new = new + b"longer"
        self.attempt(srv.port, lambda c: c.put_open(len(new), "resized.bin"))
        self.died(srv, "put-resume-drop-after-unlink")
        self.start_dies("reconcile-after-unlink")
        srv = self.start()
        self.assertEqual(self.check("after put-resume-drop-after-unlink"), {})
        self.finish(srv.port, "resized.bin", new, 0)
        srv.stop()

        # A wrong SHA-256 discards the upload (the stored version stays).
        srv = self.start()
        self.finish(srv.port, "kept.bin", self.data())
        srv.stop()
        new = self.data()
        srv = self.start("put-discard-after-unlink")
        self.cut_upload(srv.port, "kept.bin", new, len(new) // 2)
        self.attempt(srv.port, lambda c: c.upload("kept.bin", new, fault="wrong_sha"))
        self.died(srv, "put-discard-after-unlink")
        srv = self.start()
        self.assertEqual(self.check("after put-discard-after-unlink"), {})
        self.finish(srv.port, "kept.bin", new, 0)
        srv.stop()

    def test_expiry_step(self):
        new = self.data()
        srv = self.start(args=["--resume-ttl", "1"])  # the record expires in 1 s
        time.sleep(0.6)  # after the workers' first expiry pass (the next is a minute away)
        self.cut_upload(srv.port, "old.bin", new, len(new) // 2)
        self.assertEqual(srv.stop(), 0)
        self.assertGreater(self.check("before the expiry")["old.bin"][1], 0)
        time.sleep(2.2)  # past --resume-ttl 1
        self.start_dies("expire-after-unlink", args=["--resume-ttl", "1"])
        srv = self.start()
        self.assertEqual(self.check("after expire-after-unlink"), {})
        self.finish(srv.port, "old.bin", new, 0)
        srv.stop()

    def test_delete_steps(self):
        # (step, whether the file is gone: before the unlink the start-up puts the row back)
        steps = [("delete-after-intent", False), ("delete-after-row", False),
                 ("delete-after-unlink", True), ("delete-after-intent-gone", True)]
        for step, gone in steps:
            name, data = step + ".bin", self.data()
            srv = self.start()
            self.finish(srv.port, name, data)
            srv.stop()
            srv = self.start(step)
            self.attempt(srv.port, lambda c: c.delete(name))
            self.died(srv, step)
            srv = self.start()
            if gone:
                del self.expected[name]
            self.check("after %s" % step)
            # The client's retry: gone afterwards either way.
            c = self.client(srv.port)
            if not gone:
                self.assertEqual(c.get(name)["data"], data)
                c.delete(name)
                del self.expected[name]
            with self.assertRaises(RemoteError) as e:
                c.get(name)
            self.assertEqual(e.exception.reason, REASON_NOT_FOUND)
            with self.assertRaises(RemoteError) as e:
                c.delete(name)
            self.assertEqual(e.exception.reason, REASON_NOT_FOUND)
            c.close()
            self.check("after %s, then the retry" % step)
            self.finish(srv.port, name, data, 0)
            srv.stop()

    def test_refused_chunk_across_the_sync_point(self):
        """A chunk refused after the 64 MiB durability point inside it: the file is cut back
        no further than the recorded durable offset (it was cut to the chunk's start, below
        the record: sealdrop-db check saw a record longer than its file, and a restart
        dropped the whole upload)."""
        data = self.rnd.randbytes(SYNC_INTERVAL + 2 * MiB)
        srv = self.start()
        c = self.client(srv.port)
        st = c.put_open(len(data), "refused.bin")
        step, pos = st["max_chunk"], 0
        start = SYNC_INTERVAL - step // 2  # the refused chunk crosses 64 MiB
        while pos < start:
            n = min(step, start - pos)
            c.put_data(pos, 0, n, data[pos:pos + n])
            pos += n
        piece = data[pos:pos + step]  # whole, then bytes after the deflate stream's end
        c.put_data(pos, sdpeer4.FLAG_DEFLATE, len(piece), sdpeer4.deflate_raw(piece) + b"x")
        with self.assertRaises(RemoteError) as e:
            c.expect(sdpeer4.OK)
        self.assertEqual(e.exception.reason, 1)
        c.close()
        self.assertIsNotNone(srv.wait_for_log(r"partial upload kept|failed to record", 10))
        ups = self.check("after the refused chunk, server running")
        self.assertGreaterEqual(ups["refused.bin"][1], SYNC_INTERVAL)
        srv.kill9()
        self.crashes += 1
        srv = self.start()
        offset = self.check("after the refused chunk and a kill")["refused.bin"][1]
        self.assertGreaterEqual(offset, SYNC_INTERVAL)
        self.finish(srv.port, "refused.bin", data, offset)
        srv.stop()

    # -- random kills ------------------------------------------------------------------

    def test_sigkill_during_uploads(self):
        rounds = int(os.environ.get("SEALDROP_V4_CRASH_ROUNDS", "6"))
        rnd = random.Random(int(os.environ.get("SEALDROP_V4_CRASH_SEED", "23")))
        names = ["r%d.bin" % i for i in range(3)]
        sent = {n: {} for n in names}  # name -> sha256 -> data the client offered
        last = {}  # name -> the data the client offered last
        resumed = []
        for n in range(rounds):
            srv = self.start()
            stop = threading.Event()
            errors = []

            def client(port=srv.port, seed=rnd.random()):
                crnd = random.Random(seed)
                try:
                    c = self.client(port)
                    while not stop.is_set():
                        name = crnd.choice(names)
                        if crnd.random() < 0.15 and name in self.rows():
                            c.delete(name)
                            continue
                        if name in last and crnd.random() < 0.5:
                            data = last[name]  # again: it resumes where the kill left it
                        else:
                            data = crnd.randbytes(crnd.randrange(1, 3 * MiB // 2))
                        sent[name][sha(data)] = last[name] = data
                        if crnd.random() < 0.3:
                            # This connection is cut: the server records what it got.
                            cut = Client4("127.0.0.1", port, identity=self.ident,
                                          timeout=ROUND_TIMEOUT,
                                          drop_after=crnd.randrange(64, len(data) + 128))
                            try:
                                cut.connect()
                                cut.whoami()
                                cut.upload(name, data, chunk=64 * 1024)
                            except sdpeer4.Dropped:
                                pass
                            finally:
                                cut.close()
                            continue
                        res = c.upload(name, data, compress=crnd.choice(["no", "auto"]),
                                       chunk=crnd.choice([64 * 1024, 256 * 1024, None]))
                        if res["resumed_from"] > 0:
                            resumed.append(res["resumed_from"])
                        if not res["verified"]:
                            errors.append("upload not verified: %r" % (res,))
                            return
                except CUT:
                    pass  # the kill (a dead server answers no ERROR)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

            t = threading.Thread(target=client, daemon=True)
            t.start()
            time.sleep(rnd.uniform(0.2, 1.5))
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=ROUND_TIMEOUT)
            stop.set()
            t.join(ROUND_TIMEOUT)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            self.crashes += 1
            srv.kill9()
            srv = self.start()
            # Every verified row is one of the versions the client sent for that name.
            self.expected = {}
            for fname, (_p, size, crc, _v, digest) in self.rows().items():
                self.assertIn(bytes(digest), sent[fname], fname)
                self.expected[fname] = (size, crc, bytes(digest))
            ups = self.check("random kill %d" % n)
            for fname, (_size, offset, _t) in ups.items():
                # A partial upload holds a prefix of a version the client offered.
                with open(os.path.join(self.storage, ups[fname][2]), "rb") as f:
                    prefix = f.read()
                self.assertTrue(any(d[:offset] == prefix for d in sent[fname].values()),
                                "random kill %d: %s's partial file is no prefix" % (n, fname))
            srv.stop()
        srv = self.start()
        for name in names:
            self.finish(srv.port, name, self.data())
        self.check("after the random kills")
        self.assertEqual(srv.stop(), 0)
        print("\n%d random kills, invariant intact after each; %d uploads resumed after one"
              % (self.crashes, len(resumed)))


if __name__ == "__main__":
    harness.run_tests()

"""Failures (not kills) of the last storage steps of an upload, after which the server keeps
running: SEALDROP_FAIL_AT=<step> (server/crash.h) makes one step fail once, as if its system
call or transaction had failed with EIO: the rename of the finished file into place, the
fsync of its folder, and the transaction that publishes the files row from the commit intent,
for version 3's verdict (900: rename, dirsync, publish) and version 4's PUT_FINISH
(put-rename, put-dirsync, put-publish).

Each round uploads over a verified version of the same file (or, in one variant, a path with
no version yet) and checks the reply the client gets (version 3: the answer to 900; version
4: the ERROR reason), that the server still serves other clients of both versions, and what
the code says each failure leaves:
- a failed rename: the intent is dropped, the stored version and its row stay, no temporary
  file is left; a repeated 900 is refused (1607), the version stored before is not confirmed
  in the client's name;
- a failed folder fsync or publishing transaction: the new file is in place, its intent
  stays, and (a) without a restart the next upload of the same path by the same account
  settles it (commit_roll_stale) and completes, (b) the next start rolls it forward, or
  (version 3) (c) the client's repeated 900 settles it and is answered 1604: the stored file
  is then the content the client sent.
After every round the verified rows describe their files and `sealdrop-db check` exits 0."""

import hashlib
import os
import random
import unittest

import harness
import sdpeer
import sdpeer4
import server_helpers as sh
from sdpeer4 import Client4, RemoteError

PACKET = 4096
TIMEOUT = 20
REASON_STORAGE = 9  # SPEC-v4.md ERROR reasons
TMP_PREFIX = ".sealdrop-part-"

# step -> what stays after the failure: "old" = the stored version and its row stay, no
# intent; "intent" = the new file is in place, the row is still the old one and the intent
# stays (a folder fsync that failed may have left the rename not durable: both versions keep
# the intent, for the next upload of the path or the next start to settle)
V3_STEPS = {"rename": "old", "dirsync": "intent", "publish": "intent"}
V4_STEPS = {"put-rename": "old", "put-dirsync": "intent", "put-publish": "intent"}


def sha(data):
    return hashlib.sha256(data).digest()


@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN)
class FailSteps(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.tmpdir("sealdrop-failsteps-")
        self.dir = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.rnd = random.Random(61)
        self.name3 = "fail3-%s" % os.urandom(3).hex()
        self.rsa = sdpeer.RSAKey.generate()
        self.ident = sdpeer4.Identity.generate()
        srv = self.start()
        try:
            with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=TIMEOUT) as pc:
                self.assertEqual(pc.register(self.name3)[0], sdpeer.REGISTERED)
                self.assertEqual(pc.send_public_key(self.name3, self.rsa)[0], sdpeer.AES_KEY)
                self.cid3 = bytes(pc.client_id)
            c = self.client4(srv.port)
            self.cid4 = bytes.fromhex(c.register(sdpeer.RSAKey.generate(),
                                                 "fail4-%s" % os.urandom(3).hex())["id"])
            c.close()
        finally:
            self.assertEqual(srv.stop(), 0)

    # -- servers and clients -----------------------------------------------------------

    def start(self, step=None, crash_at=None):
        srv = harness.Server(self.dir, env={"SEALDROP_FAIL_AT": step or "",
                                            "SEALDROP_CRASH_AT": crash_at or ""})
        srv.start()
        self.addCleanup(srv.kill9)
        if step:
            self.assertIsNotNone(srv.wait_for_log(r"SEALDROP_FAIL_AT: step %s fails once"
                                                  % step.split("@")[0], 5))
        return srv

    def client3(self, port):
        pc = sdpeer.PeerClient("127.0.0.1", port, timeout=TIMEOUT)
        self.addCleanup(pc.close)
        pc.connect()
        code, key, _ = pc.reconnect(self.name3, self.cid3, self.rsa)
        self.assertEqual(code, sdpeer.RECONNECTED)
        return pc, key

    def client4(self, port, ident=None):
        c = Client4("127.0.0.1", port, identity=ident or self.ident, timeout=TIMEOUT)
        self.addCleanup(c.close)
        c.connect()
        c.whoami()
        return c

    def upload3(self, pc, key, fname, data):
        """An upload and its 900; returns the reply to the 900."""
        r = pc.upload(fname, data, key, packet_size=PACKET)
        self.assertEqual(r["code"], sdpeer.FILE_CRC)
        self.assertEqual(r["cksum"], sdpeer.cksum(data))
        return pc.crc_ok(fname)

    def upload4(self, c, fname, data):
        res = c.upload(fname, data)
        self.assertTrue(res["verified"], res)
        self.assertEqual(c.get(fname)["data"], data)

    def serves_others(self, port):
        """A new client of either version is served in full."""
        sh.assert_serves(self, port)
        c = self.client4(port, sdpeer4.Identity.generate())
        c.register(sdpeer.RSAKey.generate(), "probe4-%s" % os.urandom(3).hex())
        data = self.rnd.randbytes(3000)
        self.upload4(c, "probe.bin", data)
        c.close()

    # -- checks ------------------------------------------------------------------------

    def intents(self, cid):
        return sh.query(self.dir, "SELECT FileName FROM commits WHERE ID = ?", (cid,))

    def temporary_files(self, cid):
        folder = os.path.join(self.dir, "files", cid.hex())
        return sorted(f for f in os.listdir(folder) if f.startswith(TMP_PREFIX))

    def row_is(self, cid, fname, data, where, window=False):
        """fname's row is data's, verified, and (unless inside the window between the rename
        and the publishing) describes its file; no row when data is None."""
        rows = sh.stored_rows(self.dir, cid) if window else \
            sh.assert_rows_describe_files(self, self.dir, cid, where)
        if data is None:
            self.assertNotIn(fname, rows, where)
            return
        self.assertEqual(rows[fname][1:4], (len(data), sdpeer.cksum(data), 1),
                         "%s: the row of %s is not the expected version" % (where, fname))

    def file_is(self, cid, fname, data, where):
        """The stored file of fname holds data; none when data is None."""
        path = os.path.join(self.dir, "files", cid.hex(), fname)
        if data is None:
            self.assertFalse(os.path.exists(path), "%s: a stored file" % where)
            return
        with open(path, "rb") as f:
            self.assertTrue(f.read() == data, "%s: the stored file is not the expected "
                            "version" % where)

    def after_failure(self, cid, fname, old, new, stays, where):
        """The state a failed step leaves while the server runs (old: the version stored
        before, or None)."""
        self.row_is(cid, fname, old, where, window=stays == "intent")
        self.file_is(cid, fname, old if stays == "old" else new, where)
        self.assertEqual(self.intents(cid), [(fname,)] if stays == "intent" else [], where)
        self.assertEqual(self.temporary_files(cid), [], "%s: temporary files left" % where)
        if stays != "intent":
            sh.assert_db_check(self, self.dir, where)

    def settled(self, cid, fname, data, where):
        """No intent, the row and the file are data's (none: None), nothing else left, the
        check passes."""
        self.assertEqual(self.intents(cid), [], where)
        self.row_is(cid, fname, data, where)
        self.file_is(cid, fname, data, where)
        self.assertEqual(self.temporary_files(cid), [], "%s: temporary files left" % where)
        sh.assert_db_check(self, self.dir, where)

    # -- the rounds --------------------------------------------------------------------

    # variant: "again" = over a verified version, then the same path uploaded again without
    # a restart; "restart" = over a verified version, then a restart; "fresh" = a path with
    # no version yet, then a restart; version 3 also "retry" = over a verified version, the
    # client repeats its 900.
    VARIANTS = ("again", "restart", "fresh")

    def round3(self, step, stays, variant):
        where = "v3 %s (%s)" % (step, variant)
        fname = "%s-%s.bin" % (step, variant)
        old, new = self.rnd.randbytes(PACKET * 3 + 5), self.rnd.randbytes(PACKET * 4 + 9)
        if variant == "fresh":
            old = None
        else:
            srv = self.start()
            pc, key = self.client3(srv.port)
            self.assertEqual(self.upload3(pc, key, fname, old), sdpeer.ACK)
            pc.close()
            self.assertEqual(srv.stop(), 0)

        srv = self.start(step)
        pc, key = self.client3(srv.port)
        self.assertEqual(self.upload3(pc, key, fname, new), sdpeer.ERROR,
                         "%s: the answer to 900" % where)
        self.assertIsNotNone(srv.wait_for_log(r"failed: (renaming|syncing|publishing)", 5))
        self.assertTrue(srv.running(), where)
        self.serves_others(srv.port)
        self.after_failure(self.cid3, fname, old, new, stays, where)
        final = old if stays == "old" else new
        if variant == "retry":
            # The client repeats its 900, as the stock client does after 1607: the intent a
            # failed publishing left is settled and the answer is about the file it sent
            # (1604); after a failed rename nothing of it was stored, and the version stored
            # before is not confirmed in its name (1607).
            self.assertEqual(pc.crc_ok(fname), sdpeer.ACK if stays == "intent" else
                             sdpeer.ERROR, where + ": the repeated 900")
            self.settled(self.cid3, fname, final, where + ", verdict repeated")
            pc.close()
        elif variant == "again":
            # The same account uploads the same path again: the intent in the way is rolled
            # forward first (commit_roll_stale), then this upload is stored.
            final = self.rnd.randbytes(PACKET * 2 + 3)
            self.assertEqual(self.upload3(pc, key, fname, final), sdpeer.ACK, where)
            self.settled(self.cid3, fname, final, where + ", uploaded again")
            pc.close()
        else:
            # The client gives up (a server stopping waits a grace period for the retry of a
            # verdict that failed).
            pc.close()
            self.assertEqual(srv.stop(), 0)
            srv = self.start()
            if stays == "intent":
                self.assertIsNotNone(srv.wait_for_log(r"commit of \S+ rolled forward", 5))
            self.settled(self.cid3, fname, final, where + ", restarted")
        self.assertEqual(srv.stop(), 0)
        # And after a start, the same.
        srv = self.start()
        self.settled(self.cid3, fname, final, where + ", started again")
        self.assertEqual(srv.stop(), 0)

    def round4(self, step, stays, variant):
        where = "v4 %s (%s)" % (step, variant)
        fname = "%s-%s.bin" % (step, variant)
        old, new = self.rnd.randbytes(300000), self.rnd.randbytes(400000)
        if variant == "fresh":
            old = None
        else:
            srv = self.start()
            c = self.client4(srv.port)
            self.upload4(c, fname, old)
            c.close()
            self.assertEqual(srv.stop(), 0)

        srv = self.start(step)
        c = self.client4(srv.port)
        with self.assertRaises(RemoteError, msg=where) as e:
            c.upload(fname, new)
        self.assertEqual(e.exception.reason, REASON_STORAGE, "%s: %s" % (where, e.exception))
        self.assertTrue(srv.running(), where)
        self.serves_others(srv.port)
        self.after_failure(self.cid4, fname, old, new, stays, where)
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM uploads WHERE ID = ?",
                                  (self.cid4,)), [(0,)], "%s: a partial upload left" % where)
        final = old if stays == "old" else new
        if variant == "again":
            # The same connection goes on: the same path again, another content.
            final = self.rnd.randbytes(200000)
            res = c.upload(fname, final)
            self.assertTrue(res["verified"], res)
            self.assertEqual(res["resumed_from"], 0, where)
            self.settled(self.cid4, fname, final, where + ", uploaded again")
        else:
            self.assertEqual(srv.stop(), 0)
            srv = self.start()
            if stays == "intent":
                self.assertIsNotNone(srv.wait_for_log(r"commit of \S+ rolled forward", 5))
            self.settled(self.cid4, fname, final, where + ", restarted")
        if final is not None:
            self.assertEqual(sh.stored_rows(self.dir, self.cid4)[fname][4], sha(final), where)
            c = self.client4(srv.port)
            self.assertTrue(c.get(fname)["data"] == final, "%s: GET differs" % where)
            c.close()
        self.assertEqual(srv.stop(), 0)
        srv = self.start()
        self.settled(self.cid4, fname, final, where + ", started again")
        self.assertEqual(srv.stop(), 0)

    def test_v3_rename(self):
        for variant in self.VARIANTS + ("retry",):
            self.round3("rename", V3_STEPS["rename"], variant)

    def test_v3_dirsync(self):
        for variant in self.VARIANTS + ("retry",):
            self.round3("dirsync", V3_STEPS["dirsync"], variant)

    def test_v3_publish(self):
        for variant in self.VARIANTS + ("retry",):
            self.round3("publish", V3_STEPS["publish"], variant)

    def test_v4_rename(self):
        for variant in self.VARIANTS:
            self.round4("put-rename", V4_STEPS["put-rename"], variant)

    def test_v4_dirsync(self):
        for variant in self.VARIANTS:
            self.round4("put-dirsync", V4_STEPS["put-dirsync"], variant)

    def test_v4_publish(self):
        for variant in self.VARIANTS:
            self.round4("put-publish", V4_STEPS["put-publish"], variant)

    def test_repeated_verdict_killed(self):
        """The server killed while a repeated 900 settles the intent a failed publishing left
        (before the roll-forward, and after it with 1604 not sent): after a restart the row
        and the file are the version the client sent, and the check passes."""
        for point in ("settle-before", "settle-after"):
            where = "v3 publish, repeated 900 killed at %s" % point
            fname = "killed-%s.bin" % point
            old, new = self.rnd.randbytes(PACKET * 3 + 1), self.rnd.randbytes(PACKET * 5 + 7)
            srv = self.start()
            pc, key = self.client3(srv.port)
            self.assertEqual(self.upload3(pc, key, fname, old), sdpeer.ACK)
            pc.close()
            self.assertEqual(srv.stop(), 0)
            srv = self.start("publish", crash_at=point)
            pc, key = self.client3(srv.port)
            self.assertEqual(self.upload3(pc, key, fname, new), sdpeer.ERROR, where)
            with self.assertRaises((sdpeer.PeerError, OSError), msg=where):
                pc.crc_ok(fname)
            self.assertEqual(srv.proc.wait(10), 137, where)
            pc.close()
            srv = self.start()
            self.settled(self.cid3, fname, new, where + ", restarted")
            self.assertEqual(srv.stop(), 0)

    def test_nth_time_only(self):
        """<step>@2: the first publish succeeds, the second fails, the third succeeds (the
        failure happens once)."""
        srv = self.start("put-publish@2")
        c = self.client4(srv.port)
        first, second = self.rnd.randbytes(5000), self.rnd.randbytes(6000)
        self.upload4(c, "nth.bin", first)
        with self.assertRaises(RemoteError) as e:
            c.upload("nth.bin", second)
        self.assertEqual(e.exception.reason, REASON_STORAGE)
        third = self.rnd.randbytes(7000)
        self.upload4(c, "nth.bin", third)
        self.settled(self.cid4, "nth.bin", third, "put-publish@2")
        c.close()
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    harness.run_tests()

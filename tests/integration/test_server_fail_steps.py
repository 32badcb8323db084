"""Failures (not kills) of the last storage steps of an upload, after which the server keeps
running: SEALDROP_FAIL_AT=<step> (server/crash.h) makes one step fail once, as if its system
call or transaction had failed with EIO: the rename of the finished file into place, the
fsync of its folder, and the transaction that publishes the files row from the commit intent,
for version 3's verdict (900: rename, dirsync, publish) and version 4's PUT_FINISH
(put-rename, put-dirsync, put-publish).

Each round uploads over a verified version of the same file and checks the reply the client
gets (version 3: the answer to 900; version 4: the ERROR reason), that the server still serves
other clients of both versions, and what the code says each failure leaves:
- a failed rename: the intent is dropped, the stored version and its row stay, no temporary
  file is left;
- a failed folder fsync (version 4) or publishing transaction (both): the new file is in
  place, its intent stays, and (a) without a restart the next upload of the same path by the
  same account settles it (commit_roll_stale) and completes, or (b) the next start rolls it
  forward: the stored file is then the content the client sent;
- version 3's failed folder fsync publishes anyway (commit.c) and still answers 1607: the row
  is the new version and no intent stays; a retried 900 is answered 1604.
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

# step -> (what stays after the failure: "old" = the stored version and its row stay, no
# intent; "intent" = the new file is in place, the row is still the old one and the intent
# stays; "published" = the row is the new version, no intent)
V3_STEPS = {"rename": "old", "dirsync": "published", "publish": "intent"}
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

    def start(self, step=None):
        srv = harness.Server(self.dir, env={"SEALDROP_FAIL_AT": step or ""})
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

    def stored(self, cid, fname):
        with open(os.path.join(self.dir, "files", cid.hex(), fname), "rb") as f:
            return f.read()

    def temporary_files(self, cid):
        folder = os.path.join(self.dir, "files", cid.hex())
        return sorted(f for f in os.listdir(folder) if f.startswith(TMP_PREFIX))

    def row_is(self, cid, fname, data, where):
        row = sh.assert_rows_describe_files(self, self.dir, cid, where)[fname]
        self.assertEqual((row[1], row[2], row[3]), (len(data), sdpeer.cksum(data), 1),
                         "%s: the row of %s is not the expected version" % (where, fname))

    def after_failure(self, cid, fname, old, new, stays, where):
        """The state a failed step leaves while the server runs."""
        rows = sh.stored_rows(self.dir, cid)
        if stays == "published":
            self.row_is(cid, fname, new, where)
        else:
            self.assertEqual((rows[fname][1], rows[fname][2], rows[fname][3]),
                             (len(old), sdpeer.cksum(old), 1),
                             "%s: the row is not the stored version's" % where)
        self.assertEqual(self.intents(cid), [(fname,)] if stays == "intent" else [], where)
        self.assertTrue(self.stored(cid, fname) == (old if stays == "old" else new),
                        "%s: the stored file is not the expected version" % where)
        self.assertEqual(self.temporary_files(cid), [], "%s: temporary files left" % where)
        if stays != "intent":
            sh.assert_rows_describe_files(self, self.dir, cid, where)
            sh.assert_db_check(self, self.dir, where)

    def settled(self, cid, fname, data, where):
        """No intent, the row and the file are data's, nothing else left, the check passes."""
        self.assertEqual(self.intents(cid), [], where)
        self.row_is(cid, fname, data, where)
        self.assertTrue(self.stored(cid, fname) == data, "%s: stored file differs" % where)
        self.assertEqual(self.temporary_files(cid), [], "%s: temporary files left" % where)
        sh.assert_db_check(self, self.dir, where)

    # -- version 3 ---------------------------------------------------------------------

    def round3(self, step, stays, restart):
        where = "v3 %s (%s)" % (step, "restart" if restart else "next upload")
        fname = "%s-%s.bin" % (step, "restart" if restart else "again")
        old, new = self.rnd.randbytes(PACKET * 3 + 5), self.rnd.randbytes(PACKET * 4 + 9)
        srv = self.start()
        pc, key = self.client3(srv.port)
        self.assertEqual(self.upload3(pc, key, fname, old), sdpeer.ACK)
        pc.close()
        srv.stop()

        srv = self.start(step)
        pc, key = self.client3(srv.port)
        self.assertEqual(self.upload3(pc, key, fname, new), sdpeer.ERROR,
                         "%s: the answer to 900" % where)
        self.assertIsNotNone(srv.wait_for_log(r"failed: (renaming|syncing|publishing)", 5))
        self.assertTrue(srv.running(), where)
        self.serves_others(srv.port)
        self.after_failure(self.cid3, fname, old, new, stays, where)
        if stays == "published":
            # The client's retry of the 900 (SPEC.md 7): that verdict stands, 1604.
            self.assertEqual(pc.crc_ok(fname), sdpeer.ACK, where)
        final = new if stays != "old" else old
        if restart:
            # The client gives up (a server stopping waits a grace period for the retry of a
            # verdict that failed).
            pc.close()
            self.assertEqual(srv.stop(), 0)
            srv = self.start()
            if stays == "intent":
                self.assertIsNotNone(srv.wait_for_log(r"commit of \S+ rolled forward", 5))
            self.settled(self.cid3, fname, final, where + ", restarted")
        else:
            # The same account uploads the same path again: the intent in the way is rolled
            # forward first (commit_roll_stale), then this upload is stored.
            again = self.rnd.randbytes(PACKET * 2 + 3)
            self.assertEqual(self.upload3(pc, key, fname, again), sdpeer.ACK, where)
            self.settled(self.cid3, fname, again, where + ", uploaded again")
            final = again
        pc.close()
        self.assertEqual(srv.stop(), 0)
        # And after a start, the same.
        srv = self.start()
        self.settled(self.cid3, fname, final, where + ", started again")
        self.assertEqual(srv.stop(), 0)

    def test_v3_rename(self):
        for restart in (False, True):
            self.round3("rename", V3_STEPS["rename"], restart)

    def test_v3_dirsync(self):
        for restart in (False, True):
            self.round3("dirsync", V3_STEPS["dirsync"], restart)

    def test_v3_publish(self):
        for restart in (False, True):
            self.round3("publish", V3_STEPS["publish"], restart)

    # -- version 4 ---------------------------------------------------------------------

    def round4(self, step, stays, restart):
        where = "v4 %s (%s)" % (step, "restart" if restart else "next upload")
        fname = "%s-%s.bin" % (step, "restart" if restart else "again")
        old, new = self.rnd.randbytes(300000), self.rnd.randbytes(400000)
        srv = self.start()
        c = self.client4(srv.port)
        self.upload4(c, fname, old)
        c.close()
        srv.stop()

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
        final = new if stays != "old" else old
        if restart:
            self.assertEqual(srv.stop(), 0)
            srv = self.start()
            if stays == "intent":
                self.assertIsNotNone(srv.wait_for_log(r"commit of \S+ rolled forward", 5))
            self.settled(self.cid4, fname, final, where + ", restarted")
            self.assertEqual(sh.stored_rows(self.dir, self.cid4)[fname][4], sha(final), where)
        else:
            # The same connection goes on: the same path again, another content.
            again = self.rnd.randbytes(200000)
            res = c.upload(fname, again)
            self.assertTrue(res["verified"], res)
            self.assertEqual(res["resumed_from"], 0, where)
            self.settled(self.cid4, fname, again, where + ", uploaded again")
            final = again
        c = self.client4(srv.port)
        self.assertTrue(c.get(fname)["data"] == final, "%s: GET differs" % where)
        c.close()
        self.assertEqual(srv.stop(), 0)
        srv = self.start()
        self.settled(self.cid4, fname, final, where + ", started again")
        self.assertEqual(srv.stop(), 0)

    def test_v4_rename(self):
        for restart in (False, True):
            self.round4("put-rename", V4_STEPS["put-rename"], restart)

    def test_v4_dirsync(self):
        for restart in (False, True):
            self.round4("put-dirsync", V4_STEPS["put-dirsync"], restart)

    def test_v4_publish(self):
        for restart in (False, True):
            self.round4("put-publish", V4_STEPS["put-publish"], restart)

    def test_unarmed_and_other_steps(self):
        """Armed at a step that is never reached, or at the N-th time, the server works as
        usual until then: @2 fails the second publish only."""
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

"""Crash consistency of stored files (issue 9 item 1): the real sealdrop-server is killed at
every named step of the upload / 1603 / 900 / 902 path (SEALDROP_CRASH_AT=<step>[@N] makes it
_exit(137) there) and with SIGKILL at random moments during uploads, then restarted in the same
folder. After every restart: every row with Verified = 1 describes exactly the bytes at its
PathName (size and cksum), no commit intent is left, the rows are exactly what the steps
reached say (an upload the client did not confirm never replaced a verified file), and
`sealdrop-db check` exits 0. SEALDROP_CRASH_ROUNDS sets the number of random kills (default
24)."""

import os
import random
import signal
import subprocess
import threading
import time
import unittest

import harness
import sdpeer
import server_helpers as sh

# (step, what the client's verdict is, which version the row must describe afterwards):
# "old" = the version stored before this round (or none), "new" = this round's attempt.
STEPS = [
    ("packet@2", "old"),
    ("data@3", "old"),
    ("before-stage", "old"),
    ("after-stage", "old"),
    ("after-1603", "old"),
    ("before-intent", "old"),
    ("after-intent", "new"),
    ("after-rename", "new"),
    ("after-dirsync", "new"),
    ("after-publish", "new"),
    ("after-1604", "new"),
]
PACKET = 4096
ROUND_TIMEOUT = 10


@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN)
class Crash(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.tmpdir("sealdrop-crash-")
        self.dir = self._tmp.__enter__()
        self.name = "crash-%s" % os.urandom(3).hex()
        self.rsa = sdpeer.RSAKey.generate()
        self.crashes = 0
        srv = harness.Server(self.dir)
        srv.start()
        try:
            with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=20) as pc:
                self.assertEqual(pc.register(self.name)[0], sdpeer.REGISTERED)
                self.assertEqual(pc.send_public_key(self.name, self.rsa)[0], sdpeer.AES_KEY)
                self.cid = bytes(pc.client_id)
        finally:
            self.assertEqual(srv.stop(), 0)
        self.expected = {}  # file name -> (size, crc, verified)

    def tearDown(self):
        self._tmp.__exit__(None, None, None)

    # -- checks ---------------------------------------------------------------------------

    def rows(self):
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in sh.query(
            self.dir, "SELECT FileName, PathName, Size, CRC, Verified FROM files WHERE ID = ?",
            (self.cid,))}

    def check_invariant(self, where, exact=True):
        """After a (re)start: every verified row matches its file, no intent is left, the rows
        are the expected ones (exact) and sealdrop-db check is happy."""
        rows = sh.assert_rows_describe_files(self, self.dir, self.cid, where)
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM commits"), [(0,)], where)
        if exact:
            got = {f: (r[1], r[2], r[3]) for f, r in rows.items()}
            self.assertEqual(got, self.expected, where)
        sh.assert_db_check(self, self.dir, where)

    # -- one crash round ------------------------------------------------------------------

    def start(self, step=None):
        srv = harness.Server(self.dir, env={"SEALDROP_CRASH_AT": step or ""})
        srv.start()
        return srv

    def connect(self, port):
        pc = sdpeer.PeerClient("127.0.0.1", port, timeout=ROUND_TIMEOUT)
        pc.connect()
        code, key, _ = pc.reconnect(self.name, self.cid, self.rsa)
        self.assertEqual(code, sdpeer.RECONNECTED)
        return pc, key

    def crash_round(self, step, fname, data, verdict):
        """Starts a server armed at step, checks the state the start left, uploads data as
        fname and sends verdict (900 or 902); the server must die at step."""
        srv = self.start(step)
        try:
            self.check_invariant("start before %s" % step)
            pc, key = self.connect(srv.port)
            with pc:
                try:
                    r = pc.upload(fname, data, key, packet_size=PACKET)
                    self.assertEqual(r["code"], sdpeer.FILE_CRC)
                    self.assertEqual(r["cksum"], sdpeer.cksum(data))
                    pc.request(verdict, sdpeer.name_field(fname))
                    pc.recv()
                except (sdpeer.PeerError, OSError):
                    pass
            try:
                code = srv.proc.wait(timeout=ROUND_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = None
            self.assertEqual(code, 137, "the server did not crash at %s:\n%s"
                             % (step, srv.log(since_start=True)[-2000:]))
            self.crashes += 1
        finally:
            srv.stop()

    def test_every_named_step(self):
        rnd = random.Random(9)
        # 900 over a verified version: the row is the old one until the intent is recorded.
        for i, (step, outcome) in enumerate(STEPS):
            data = rnd.randbytes(rnd.randrange(PACKET * 2 + 1, PACKET * 6))
            if "a.bin" not in self.expected:
                self.crash_round("after-1604", "a.bin", data, sdpeer.CRC_OK)
                self.expected["a.bin"] = (len(data), sdpeer.cksum(data), 1)
                data = rnd.randbytes(len(data) + 1)
            self.crash_round(step, "a.bin", data, sdpeer.CRC_OK)
            if outcome == "new":
                self.expected["a.bin"] = (len(data), sdpeer.cksum(data), 1)
        # 902 with no verified version: published as not verified once the intent is in.
        for i, (step, outcome) in enumerate(STEPS):
            fname = "fail-%d.bin" % i
            data = rnd.randbytes(rnd.randrange(PACKET * 2 + 1, PACKET * 6))
            self.crash_round(step, fname, data, sdpeer.CRC_FAIL)
            if outcome == "new":
                self.expected[fname] = (len(data), sdpeer.cksum(data), 0)
        # 902 over a verified version: the attempt is discarded whatever the step reached.
        for step in ("after-1603", "after-1604"):
            data = rnd.randbytes(PACKET * 3)
            self.crash_round(step, "a.bin", data, sdpeer.CRC_FAIL)
        # A kill during the roll-forward itself (after its rename, before its publish): the
        # next start finishes it.
        data = rnd.randbytes(PACKET * 4 + 7)
        self.crash_round("after-intent", "a.bin", data, sdpeer.CRC_OK)
        self.expected["a.bin"] = (len(data), sdpeer.cksum(data), 1)
        srv = harness.Server(self.dir, env={"SEALDROP_CRASH_AT": "recover-after-rename"})
        with self.assertRaises(RuntimeError):
            srv.start()  # it dies before listening
        self.assertEqual(srv.proc.returncode, 137)
        self.crashes += 1
        srv = self.start()
        try:
            self.check_invariant("after the roll-forward crash")
            self.assertIsNotNone(srv.wait_for_log(r"commit of \S+ rolled forward", 5))
        finally:
            self.assertEqual(srv.stop(), 0)
        print("\n%d crash points, invariant intact after each" % self.crashes)
        self.assertGreaterEqual(self.crashes, 25)

    def test_sigkill_at_random_moments(self):
        rounds = int(os.environ.get("SEALDROP_CRASH_ROUNDS", "24"))
        rnd = random.Random(int(os.environ.get("SEALDROP_CRASH_SEED", "17")))
        confirmed = {}  # file name -> CRCs the client sent 900 for (the only ones allowed)
        ever_verified = set()  # a verified file stays verified (902 never replaces it)
        names = ["r%d.bin" % i for i in range(3)]
        for n in range(rounds):
            srv = self.start()
            stop = threading.Event()
            errors = []

            def client(port=srv.port, seed=rnd.random()):
                crnd = random.Random(seed)
                pc = sdpeer.PeerClient("127.0.0.1", port, timeout=ROUND_TIMEOUT)
                try:
                    with pc:
                        code, key, _ = pc.reconnect(self.name, self.cid, self.rsa)
                        if code != sdpeer.RECONNECTED:
                            errors.append("reconnect: %d" % code)
                            return
                        while not stop.is_set():
                            fname = crnd.choice(names)
                            data = crnd.randbytes(crnd.randrange(1, 600000))
                            r = pc.upload(fname, data, key, packet_size=crnd.choice(
                                [1024, 8192, 65536]))
                            if r["code"] != sdpeer.FILE_CRC:
                                errors.append("upload: %r" % (r,))
                                return
                            if crnd.random() < 0.75:
                                confirmed.setdefault(fname, set()).add(r["cksum"])
                                pc.request(sdpeer.CRC_OK, sdpeer.name_field(fname))
                            else:
                                pc.request(sdpeer.CRC_FAIL, sdpeer.name_field(fname))
                            if pc.recv()[0] != sdpeer.ACK:
                                errors.append("verdict not answered 1604")
                                return
                except (sdpeer.PeerError, OSError):
                    pass  # the kill

            try:
                self.check_invariant("random round %d start" % n, exact=False)
                t = threading.Thread(target=client, daemon=True)
                t.start()
                time.sleep(rnd.uniform(0.02, 0.6))
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait(timeout=ROUND_TIMEOUT)
                stop.set()
                t.join(ROUND_TIMEOUT)
                self.assertFalse(t.is_alive())
                self.assertEqual(errors, [])
                self.crashes += 1
            finally:
                stop.set()
                srv.stop()
            # No verified row describes an attempt its client did not confirm.
            rows = self.rows()
            for fname, (_p, _s, crc, verified) in rows.items():
                if verified:
                    self.assertIn(crc, confirmed.get(fname, set()), fname)
                    ever_verified.add(fname)
            for fname in ever_verified:
                self.assertEqual(rows.get(fname, (0, 0, 0, 0))[3], 1,
                                 "round %d: the verified %s was replaced by an unconfirmed "
                                 "upload" % (n, fname))
        srv = self.start()
        try:
            self.check_invariant("after the last random kill", exact=False)
        finally:
            self.assertEqual(srv.stop(), 0)
        print("\n%d random kills, invariant intact after each" % self.crashes)


if __name__ == "__main__":
    harness.run_tests()

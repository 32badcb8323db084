"""The real sealdrop-server on issue 9's session rules and error reports: an 828 only on the
connection that was given the key (item 2), a pending registration belongs to its connection
and expires after --pending-ttl (item 3), a full disk is logged with its errno text and a
refused attempt's later packets are skipped with one log line (item 6)."""

import os
import re
import resource
import shutil
import signal
import subprocess
import time
import unittest

import harness
import sdpeer
import server_helpers as sh


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@harness.skip_unless_built(harness.SERVER_BIN)
class SessionKey(unittest.TestCase):
    def test_828_from_another_connection_gets_1607(self):
        # Someone who saw a client's ID (it travels in clear) opens a connection and sends
        # 828 under it: 1607 whatever the bytes, and the victim's verified file stays.
        with sh.server() as (srv, d):
            data = harness.gen_bytes(5000)
            pc = sh.registered(srv.port, "victim")
            with pc:
                pc.upload("v.bin", data, pc.aes_key)
                self.assertEqual(pc.crc_ok("v.bin"), sdpeer.ACK)
                with sdpeer.PeerClient("127.0.0.1", srv.port) as evil:
                    evil.client_id = pc.client_id
                    guess = os.urandom(32)
                    r = evil.upload("v.bin", b"garbage" * 100, guess)
                    self.assertEqual(r["code"], sdpeer.ERROR)
                    # Even with the right key (which it cannot have): not on this connection.
                    r = evil.upload("v.bin", b"garbage" * 100, pc.aes_key)
                    self.assertEqual(r["code"], sdpeer.ERROR)
                    self.assertEqual(evil.crc_ok("v.bin"), sdpeer.ERROR)
                # The owner's own connection still uploads.
                r = pc.upload("w.bin", data, pc.aes_key)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok("w.bin"), sdpeer.ACK)
            with open(os.path.join(d, "files", pc.client_id.hex(), "v.bin"), "rb") as f:
                self.assertEqual(f.read(), data)
            row = sh.query(d, "SELECT Verified, Size, CRC FROM files WHERE ID = ? AND "
                           "FileName = 'v.bin'", (bytes(pc.client_id),))
            self.assertEqual(row, [(1, len(data), sdpeer.cksum(data))])
            self.assertIsNotNone(srv.wait_for_log(r"no key was issued to this client ID on "
                                                  r"this connection", 5))

    def test_refused_attempt_logged_once(self):
        # 40 packets of an attempt refused at its first (a name the server cannot store):
        # one log line for the attempt, not one per packet (issue 9 item 6); each packet
        # still gets its 1607, as before.
        with sh.server() as (srv, d):
            pc = sh.registered(srv.port, "owner")
            with pc:
                packets = sdpeer.packetize(harness.gen_bytes(40000), pc.aes_key,
                                           ".sealdrop-part-x", "split", 1024)
                for p in packets:
                    pc.request(sdpeer.SEND_FILE, p)
                for _ in packets:
                    self.assertEqual(pc.recv()[0], sdpeer.ERROR)
                data = harness.gen_bytes(3000)
                r = pc.upload("fine.bin", data, pc.aes_key)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok("fine.bin"), sdpeer.ACK)
            log = srv.log(since_start=True)
            self.assertGreater(len(packets), 30)
            self.assertEqual(len(re.findall(r"send file refused", log)), 1, log)
            self.assertIn("cannot be stored", log)


@harness.skip_unless_built(harness.SERVER_BIN)
class PendingRegistration(unittest.TestCase):
    def test_pending_expires_while_running(self):
        with sh.server(["--pending-ttl", "1"]) as (srv, d):
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                self.assertEqual(pc.register("squatter")[0], sdpeer.REGISTERED)
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                self.assertEqual(pc.register("squatter")[0], sdpeer.REGISTER_FAILED)
            # A registered client with a key does not expire.
            with sh.registered(srv.port, "keeper"):
                pass
            self.assertTrue(wait_until(lambda: sh.query(
                d, "SELECT Name FROM clients WHERE Name = 'squatter'") == [], 8),
                "the pending row expired")
            self.assertIsNotNone(srv.wait_for_log(r"registration without a key for more "
                                                  r"than 1 s removed", 5))
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                self.assertEqual(pc.register("squatter")[0], sdpeer.REGISTERED)
            self.assertEqual(sh.query(d, "SELECT Name FROM clients WHERE Name = 'keeper'"),
                             [("keeper",)])

    def test_pending_expires_at_start_up(self):
        with harness.tmpdir() as d:
            srv = harness.Server(d)
            srv.start()
            try:
                with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                    self.assertEqual(pc.register("old-pending")[0], sdpeer.REGISTERED)
                    self.assertEqual(pc.register("new-pending")[0], sdpeer.REGISTERED)
            finally:
                self.assertEqual(srv.stop(), 0)
            sh.execute(d, "UPDATE clients SET LastSeen = datetime('now', '-11 minutes') "
                       "WHERE Name = 'old-pending'")
            srv = harness.Server(d)
            srv.start()
            try:
                self.assertIsNotNone(srv.wait_for_log(r"removed 1 pending registration "
                                                      r"older than 600 s", 5))
                self.assertEqual(sh.query(d, "SELECT Name FROM clients"), [("new-pending",)])
            finally:
                self.assertEqual(srv.stop(), 0)

    def test_pending_ttl_option_checked(self):
        for bad in ("0", "x", "-5"):
            r = subprocess.run([harness.SERVER_BIN, "--pending-ttl", bad],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(r.returncode, 2, bad)


def _limit_file_size():
    # The kernel refuses writes past RLIMIT_FSIZE with EFBIG, and SIGXFSZ is ignored so the
    # server sees the error (an ignored signal stays ignored across exec).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))


@harness.skip_unless_built(harness.SERVER_BIN)
class DiskErrors(unittest.TestCase):
    def upload_refused(self, srv, name):
        pc = sh.registered(srv.port, name)
        with pc:
            r = pc.upload("big.bin", harness.gen_bytes(400000), pc.aes_key,
                          packet_size=8192)
            self.assertEqual(r["code"], sdpeer.ERROR)

    def test_write_error_logged_with_errno_text(self):
        with harness.tmpdir() as d:
            srv = harness.Server(d, binary=harness.WRAP + [harness.SERVER_BIN])
            env = dict(os.environ)
            cmd = srv.command + ["--bind", "127.0.0.1", "--port", "0"]
            log = open(os.path.join(d, "server.log"), "ab")
            proc = subprocess.Popen(cmd, cwd=d, stdout=log, stderr=log, env=env,
                                    preexec_fn=_limit_file_size)
            srv.proc = proc
            try:
                m = srv.wait_for_log(r"listening on 127\.0\.0\.1:(\d+)", 10)
                self.assertIsNotNone(m)
                srv.port = int(m.group(1))
                self.upload_refused(srv, "efbig")
                self.assertIsNotNone(srv.wait_for_log(r"refused content: File too large", 5),
                                     srv.log())
                self.assertNotIn("I/O error", srv.log())
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
                log.close()

    @unittest.skipUnless(hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"),
                         "a full file system needs a tmpfs mount (root)")
    def test_full_disk_logged_as_such(self):
        with harness.tmpdir() as d:
            store = os.path.join(d, "small")
            os.mkdir(store)
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", store],
                              stderr=subprocess.DEVNULL).returncode != 0:
                self.skipTest("cannot mount a tmpfs")
            try:
                srv = harness.Server(d, args=["--storage", store])
                srv.start()
                try:
                    self.upload_refused(srv, "full")
                    self.assertIsNotNone(srv.wait_for_log(
                        r"refused content: No space left on device", 5), srv.log())
                    self.assertNotIn("I/O error", srv.log())
                    sh.assert_serves(self, srv.port, size=1000)
                finally:
                    self.assertEqual(srv.stop(), 0)
            finally:
                subprocess.run(["umount", store])


if __name__ == "__main__":
    harness.run_tests()

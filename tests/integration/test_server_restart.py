"""The real sealdrop-server across restarts: a client registered before a restart reconnects
after it; kill -9 in the middle of an upload leaves a sound database, no file wrongly marked
verified and no temporary file after the next start; SIGTERM lets an upload in flight finish
within the grace period, aborts what does not, and exits 0."""

import os
import signal
import time
import unittest

import harness
import sdpeer
import server_helpers as sh

PART = ".sealdrop-part-"


def parts(folder):
    return [f for f in sh.files_under(folder) if os.path.basename(f).startswith(PART)]


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def send_partial(pc, file_name, data, packet_size, count):
    """The first count packets of an upload of data (a 'split' sender)."""
    packets = sdpeer.packetize(data, pc.aes_key, file_name, "split", packet_size)
    for p in packets[:count]:
        pc.request(sdpeer.SEND_FILE, p)
    return packets[count:]


@harness.skip_unless_built(harness.SERVER_BIN)
class Restart(unittest.TestCase):
    def test_registered_client_reconnects_after_restart(self):
        with harness.tmpdir() as d:
            srv = harness.Server(d)
            srv.start()
            try:
                pc = sh.registered(srv.port, "Before Restart")
                pc.close()
            finally:
                self.assertEqual(srv.stop(), 0)
            srv = harness.Server(d)
            srv.start()
            try:
                data = harness.gen_bytes(7000)
                with sdpeer.PeerClient("127.0.0.1", srv.port) as pc2:
                    code, key, _ = pc2.reconnect("Before Restart", pc.client_id, pc.rsa_key)
                    self.assertEqual(code, sdpeer.RECONNECTED)
                    r = pc2.upload("after.bin", data, key)
                    self.assertEqual(r["cksum"], sdpeer.cksum(data))
                    self.assertEqual(pc2.crc_ok("after.bin"), sdpeer.ACK)
            finally:
                self.assertEqual(srv.stop(), 0)

    def test_kill9_mid_upload(self):
        with harness.tmpdir() as d:
            srv = harness.Server(d)
            srv.start()
            big = harness.gen_bytes(8 << 20, seed=99)
            small = harness.gen_bytes(5000)
            try:
                pc = sh.registered(srv.port, "Killed Mid Upload")
                r = pc.upload("kept.bin", small, pc.aes_key)
                self.assertEqual(pc.crc_ok("kept.bin"), sdpeer.ACK)
                send_partial(pc, "big.bin", big, 65536, 64)
                self.assertTrue(wait_until(lambda: parts(d)), "a temporary file exists")
            finally:
                srv.kill9()
                pc.close()
            self.assertTrue(parts(d), "kill -9 left the temporary file")
            self.assertEqual(sh.query(d, "PRAGMA integrity_check"), [("ok",)])
            srv = harness.Server(d)
            srv.start()
            try:
                self.assertEqual(parts(d), [], "start-up removes partial files")
                self.assertIsNotNone(srv.wait_for_log(r"removed 1 partial file", 5))
                self.assertEqual(sh.query(d, "PRAGMA integrity_check"), [("ok",)])
                self.assertIsNone(sh.file_row(d, pc.client_id, "big.bin"))
                self.assertEqual(sh.query(d, "SELECT FileName FROM files WHERE Verified = 1"),
                                 [("kept.bin",)])
                with open(os.path.join(d, "files", pc.client_id.hex(), "kept.bin"), "rb") as f:
                    self.assertEqual(f.read(), small)
                self.assertFalse(os.path.exists(os.path.join(d, "files", pc.client_id.hex(),
                                                             "big.bin")))
                # The client's next run succeeds.
                with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=30) as pc2:
                    code, key, _ = pc2.reconnect("Killed Mid Upload", pc.client_id, pc.rsa_key)
                    self.assertEqual(code, sdpeer.RECONNECTED)
                    r = pc2.upload("big.bin", big, key, packet_size=65536)
                    self.assertEqual(r["code"], sdpeer.FILE_CRC)
                    self.assertEqual(pc2.crc_ok("big.bin"), sdpeer.ACK)
                    stored = os.path.join(d, "files", pc.client_id.hex(), "big.bin")
                    self.assertEqual(r["cksum"], harness.gnu_cksum(stored))
                self.assertEqual(sh.file_row(d, pc.client_id, "big.bin")[3], 1)
            finally:
                self.assertEqual(srv.stop(), 0)

    def test_sigterm_lets_an_upload_finish(self):
        data = harness.gen_bytes(1 << 20, seed=5)
        with sh.server(["--grace", "20"]) as (srv, d):
            pc = sh.registered(srv.port, "Graceful")
            with pc:
                rest = send_partial(pc, "g.bin", data, 16384, 10)
                self.assertTrue(wait_until(lambda: parts(d)))
                srv.proc.send_signal(signal.SIGTERM)
                self.assertIsNotNone(srv.wait_for_log(r"SIGTERM received", 5))
                # No new connections while draining.
                time.sleep(0.3)
                with self.assertRaises((sdpeer.PeerError, OSError)):
                    with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=2) as late:
                        late.register("late-comer")
                for p in rest:
                    pc.request(sdpeer.SEND_FILE, p)
                code, body = pc.recv()
                self.assertEqual(code, sdpeer.FILE_CRC)
                self.assertEqual(sdpeer.decode_file_crc(body)["cksum"], sdpeer.cksum(data))
                self.assertEqual(pc.crc_ok("g.bin"), sdpeer.ACK)
            srv.proc.wait(timeout=20)
            self.assertEqual(srv.proc.returncode, 0)
            self.assertEqual(sh.file_row(d, pc.client_id, "g.bin")[3], 1)
            self.assertEqual(parts(d), [])

    def test_sigterm_aborts_what_does_not_finish(self):
        data = harness.gen_bytes(1 << 20, seed=6)
        with sh.server(["--grace", "1"]) as (srv, d):
            pc = sh.registered(srv.port, "Too Slow")
            with pc:
                send_partial(pc, "slow.bin", data, 16384, 10)
                self.assertTrue(wait_until(lambda: parts(d)))
                srv.proc.send_signal(signal.SIGTERM)
                srv.proc.wait(timeout=15)
                self.assertEqual(srv.proc.returncode, 0)
            self.assertEqual(parts(d), [], "the partial file is removed")
            self.assertIsNone(sh.file_row(d, pc.client_id, "slow.bin"))
            self.assertEqual(sh.query(d, "PRAGMA integrity_check"), [("ok",)])


if __name__ == "__main__":
    harness.run_tests()

"""The real sealdrop-server on defects found by the review: client-supplied text in log lines
goes through the display sanitiser (C1 controls never reach the log); a client that
half-closes after its last packet still gets every reply queued for it; a database locked by
another process (on PostgreSQL: a table lock) costs a request a 1607 within a bound, and the
server serves on afterwards."""

import contextlib
import os
import socket
import sqlite3
import subprocess
import time
import unittest

import harness
import sdpeer
import server_helpers as sh


def raw_log(srv):
    with open(srv.log_path, "rb") as f:
        return f.read()


@harness.skip_unless_built(harness.SERVER_BIN)
class LogSanitising(unittest.TestCase):
    def test_c1_in_file_name_never_logged(self):
        # U+009B (CSI in C1) is valid UTF-8 and allowed in a file name; on a terminal that
        # reads C1 it starts an escape sequence. Neither the name nor the stored path in the
        # 1603 line (nor the 900 line) may carry it.
        name = "a\u009b31mred\u0085.bin"
        with sh.server() as (srv, d):
            pc = sh.registered(srv.port, "c1 owner")
            with pc:
                data = harness.gen_bytes(3000)
                r = pc.upload(name, data, pc.aes_key)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok(name), sdpeer.ACK)
            self.assertIsNotNone(srv.wait_for_log(r"received for [0-9a-f]{32}/a\?+31mred", 5),
                                 srv.log())
            self.assertTrue(os.path.exists(os.path.join(d, "files", pc.client_id.hex(), name)))
            log = raw_log(srv)
            self.assertNotIn("\u009b".encode("utf-8"), log)
            self.assertNotIn("\u0085".encode("utf-8"), log)
            self.assertNotIn(b"\x1b", log)



@harness.skip_unless_built(harness.SERVER_BIN)
class HalfClose(unittest.TestCase):
    def test_replies_flushed_after_shutdown_wr(self):
        # Requests whose replies the client does not read at first (a small receive buffer:
        # they back up in the server's output, below the point where it stops reading), then
        # an upload and shutdown(SHUT_WR): the server reads EOF while replies are still
        # queued, and must send them all, the 1603 last, before closing. (Loopback's socket
        # buffers often take all the replies before the EOF is read; test_server_conn's
        # test_eof_flushes_first covers the blocked output deterministically.)
        n = 2000
        with sh.server() as (srv, d):
            pc = sdpeer.PeerClient("127.0.0.1", srv.port, timeout=20)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.settimeout(20)
            sock.connect(("127.0.0.1", srv.port))
            pc.sock = sock
            with pc:
                self.assertEqual(pc.register("half closer")[0], sdpeer.REGISTERED)
                code, _ = pc.send_public_key("half closer", sdpeer.RSAKey.generate())
                self.assertEqual(code, sdpeer.AES_KEY)
                data = harness.gen_bytes(20000)
                flood = b"".join(sdpeer.encode_request(pc.client_id, sdpeer.CRC_OK,
                                                       sdpeer.name_field("none"))
                                 for _ in range(n))
                pc.sock.sendall(flood)
                pc.send_packets("last.bin", data, pc.aes_key)
                pc.sock.shutdown(socket.SHUT_WR)
                time.sleep(1.0)  # the server reads everything, EOF included
                codes = []
                for _ in range(n + 1):
                    try:
                        codes.append(pc.recv()[0])
                    except sdpeer.PeerError as e:
                        self.fail("after %d replies: %s" % (len(codes), e))
                self.assertEqual(codes.count(sdpeer.ERROR), n)
                self.assertEqual(codes[-1], sdpeer.FILE_CRC)
                # Then the server closes: EOF, no more bytes.
                self.assertEqual(pc.sock.recv(1), b"")


@contextlib.contextmanager
def held_lock(folder):
    """Another process holds the lock the server's requests need: SQLite's write lock, or on
    PostgreSQL (SEALDROP_TEST_DB=pg) an ACCESS EXCLUSIVE lock on clients, which every
    request that looks a client up waits for (an administrator's ALTER TABLE or LOCK TABLE;
    without a lock_timeout a worker would wait for ever)."""
    if harness.TEST_DB != "pg":
        lock = sqlite3.connect(sh.db_path(folder), timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            yield
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    psql = subprocess.Popen([harness.PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d",
                             sh.db_target(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        psql.stdin.write("BEGIN;\nLOCK TABLE clients IN ACCESS EXCLUSIVE MODE;\n"
                         "SELECT 'locked';\n")
        psql.stdin.flush()
        # readline() blocks until psql answers (or exits: then it returns its error).
        line = psql.stdout.readline().strip()
        if line != "locked":
            raise AssertionError("psql could not lock clients: %s" % line)
        yield
    finally:
        psql.stdin.write("ROLLBACK;\n")
        psql.stdin.close()
        psql.wait(timeout=30)
        psql.stdout.close()


@harness.skip_unless_built(harness.SERVER_BIN)
class LockedDatabase(unittest.TestCase):
    def test_held_lock_costs_1607_quickly(self):
        with sh.server(["--workers", "1"]) as (srv, d):
            with sh.registered(srv.port, "before lock") as pc:
                self.assertEqual(pc.upload("a.bin", harness.gen_bytes(1000), pc.aes_key)["code"],
                                 sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok("a.bin"), sdpeer.ACK)
            with held_lock(d):
                with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=20) as pc:
                    t0 = time.monotonic()
                    code, _ = pc.register("while locked")
                    elapsed = time.monotonic() - t0
                self.assertEqual(code, sdpeer.ERROR)
                # The worker's busy timeout (1 s; on PostgreSQL its lock_timeout), not
                # db_open's 5 s, and it did wait.
                self.assertGreaterEqual(elapsed, 0.8)
                self.assertLess(elapsed, 3.0)
            # The lock is gone: the same worker serves new connections as before.
            with sh.registered(srv.port, "after lock") as pc:
                r = pc.upload("b.bin", harness.gen_bytes(2000), pc.aes_key)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok("b.bin"), sdpeer.ACK)
            self.assertEqual(len(sh.query(d, "SELECT 1 FROM files WHERE Verified = 1")), 2)


if __name__ == "__main__":
    unittest.main()

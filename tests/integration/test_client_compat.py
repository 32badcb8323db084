"""test_client_compat: the real bin/sealdrop-client against servers that read the text in their
own way (issue 9 item 8): a 1604 after 900/902 with any payload, or cut short by the end of the
connection, and servers that read each request with one recv() of the header size and one of
the payload size, which --paced serves. The servers are the Python peer (tests/peer/sdpeer.py)
with its fault switches, and OneRecvServer below.

SEALDROP_LONG=1 runs the full --paced check (20 uploads of 20 MiB); by default it is 3 of 2 MiB
so that `make test` stays short."""

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
import unittest

import harness
from harness import (CLIENT_BIN, make_file, run_tests, skip_unless_built, tmpdir,
                     write_transfer_info)
import sdpeer


def run_client(workdir, args=(), **kw):
    """The client told to speak version 3 only: these servers read version 3 and nothing
    else, and --protocol auto would first send them a TLS hello (the fallback is tested in
    test_client_v4)."""
    return harness.run_client(workdir, ["--protocol", "3"] + list(args), **kw)

NAME = "Compat Tester"
OK, USAGE, TRANSFER_INFO, ME_INFO, FILE, CONNECT, CONNECTION, SERVER, CRC, REFUSED = range(10)
LONG = os.environ.get("SEALDROP_LONG") == "1"

_plain_cksum = sdpeer.cksum


def _fast_cksum(data):
    # The peer's pure-Python CRC is slow on MiBs; GNU cksum computes the same CRC.
    if len(data) < (1 << 20):
        return _plain_cksum(data)
    out = subprocess.run(["cksum"], input=bytes(data), stdout=subprocess.PIPE, check=True,
                         timeout=300).stdout
    return int(out.split()[0])


sdpeer.cksum = _fast_cksum


def read(path):
    with open(path, "rb") as f:
        return f.read()


def codes(peer, start=0):
    return [c for c, _, _ in peer.requests[start:]]


class OneRecvServer(sdpeer.PeerServer):
    """A server written like three of the public ones: each request is read with one recv() of
    the 23-byte header and one recv() of the payload size, and a read that comes back short is
    fatal (the connection is dropped; short_reads records (wanted, got)). Requests are then
    answered as the peer answers them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.short_reads = []

    def _recv_once(self, conn, n):
        """One recv() of n bytes, as a blocking socket would do it (a poll that times out
        received nothing, so it is not a read); None on EOF or a short read."""
        while not self.stop_event.is_set():
            try:
                data = conn.recv(n)
            except socket.timeout:
                continue
            if len(data) < n:
                if data:
                    with self.lock:
                        self.short_reads.append((n, len(data)))
                return None
            return data
        return None

    def _serve(self, conn):
        state = {"upload": None}
        try:
            while not self.stop_event.is_set():
                raw = self._recv_once(conn, sdpeer.REQ_HEADER_SIZE)
                if raw is None:
                    return
                _, code, size = struct.unpack_from("<BHI", raw, sdpeer.ID_SIZE)
                hdr = {"client_id": raw[:sdpeer.ID_SIZE], "code": code, "payload_size": size}
                with self.lock:
                    self.requests.append((code, hdr["client_id"], size))
                if size > sdpeer.FILE_HEADER_SIZE + self.max_content:
                    return
                payload = self._recv_once(conn, size) if size else b""
                if payload is None:
                    return
                reply = self._handle(hdr, payload, state)
                if reply is not None:
                    conn.sendall(reply)
        except (sdpeer.PeerError, OSError):
            pass
        finally:
            if not self.stop_event.is_set():
                with self.lock:
                    if conn in self.conns:
                        self.conns.remove(conn)
                conn.close()


class CompatTest(unittest.TestCase):
    server_class = sdpeer.PeerServer

    def setUp(self):
        self._tmp = tmpdir("sd-compat-")
        self.dir = self._tmp.__enter__()
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.peer = self.server_class(os.path.join(self.dir, "peer"))
        self.peer.start()

    def tearDown(self):
        self.peer.stop()
        self._tmp.__exit__(None, None, None)

    def setup_file(self, size, name="upload.bin", client=NAME):
        path = make_file(os.path.join(self.work, name), size)
        write_transfer_info(self.work, "127.0.0.1:%d" % self.peer.port, client, name)
        return path

    def fresh_work(self):
        shutil.rmtree(self.work)
        os.makedirs(self.work)


@skip_unless_built(CLIENT_BIN)
class AnyAck(CompatTest):
    """After 900 or 902 a 1604 is the answer whatever it carries; 900 is never sent again."""

    def test_1604_with_any_payload_confirms(self):
        # The old client took each for a malformed reply (or, over 4 KiB, a broken framing),
        # sent 900 again and exited 7.
        for payload in (b"", b"\x01" * 5, b"\x02" * 300, b"\x03" * 5000):
            with self.subTest(size=len(payload)):
                self.fresh_work()
                client = "Ack %d" % len(payload)
                path = self.setup_file(3000, name="a%d.bin" % len(payload), client=client)
                self.peer.ack_payload = payload
                n = len(self.peer.requests)
                res = run_client(self.work, ["--verbose"], timeout=60)
                self.assertEqual(res.returncode, OK, res.stderr)
                c = codes(self.peer, n)
                self.assertEqual(c.count(900), 1, c)
                self.assertEqual(c[-1], 900)
                self.assertNotIn("server responded with an error", res.stderr)
                files = self.peer.clients[client]["files"]
                self.assertTrue(files[os.path.basename(path).encode()]["verified"])

    def test_1604_cut_by_the_end_of_the_connection_confirms(self):
        # 1604 announcing 255 payload bytes, 16 sent, then the connection closes: the old
        # client exited 6 (connection lost).
        self.peer.ack_cut = 16
        path = self.setup_file(3000)
        res = run_client(self.work, ["--verbose"], timeout=60)
        self.assertEqual(res.returncode, OK, res.stderr)
        self.assertIn("announcing 255 payload bytes, 16 received: then the server closed the "
                      "connection; the 1604 is the answer", res.stderr)
        self.assertEqual(codes(self.peer).count(900), 1)
        self.assertTrue(self.peer.clients[NAME]["files"][b"upload.bin"]["verified"])
        self.assertEqual(self.peer.stored["upload.bin"], read(path))

    def test_1604_whose_payload_never_comes_confirms(self):
        # The header alone, the connection left open: a short wait, not the read timeout.
        self.setup_file(100)
        # Answer 900 with a header announcing 16 bytes and nothing more, connection open.
        handle = self.peer._crc

        def header_only(hdr, payload, state):
            reply = handle(hdr, payload, state)
            if hdr["code"] == sdpeer.CRC_OK:
                return reply[:7]
            return reply
        self.peer._crc = header_only
        start = time.monotonic()
        res = run_client(self.work, ["--verbose", "--timeout", "20"], timeout=60)
        self.assertEqual(res.returncode, OK, res.stderr)
        self.assertLess(time.monotonic() - start, 10)
        self.assertIn("the rest did not come; the 1604 is the answer", res.stderr)
        self.assertEqual(codes(self.peer).count(900), 1)

    def test_902_answered_with_an_empty_1604(self):
        self.peer.wrong_crc = 4
        self.peer.ack_payload = b""
        self.setup_file(1000)
        res = run_client(self.work, timeout=60)
        self.assertEqual(res.returncode, CRC, res.stderr)
        c = codes(self.peer)
        self.assertEqual(c.count(902), 1)
        self.assertNotIn("server responded with an error", res.stderr)

    def test_1607_to_900_is_still_retried(self):
        # SPEC.md 7: an error reply is not an answer; only a 1604 ends the step.
        self.peer.error_replies = {900: 1}
        self.peer.ack_payload = b""
        self.setup_file(1000)
        res = run_client(self.work, timeout=60)
        self.assertEqual(res.returncode, OK, res.stderr)
        self.assertEqual(codes(self.peer).count(900), 2)


@skip_unless_built(CLIENT_BIN)
class Paced(CompatTest):
    """--paced against a server that reads each request with one recv() per part."""

    server_class = OneRecvServer
    # Servers that read a fixed buffer use 1 KiB packets (the recorded clients of the 1024-byte
    # layouts): 23 + 267 + 1024 = 1314 bytes, one TCP segment on any Ethernet path.
    PACKET = "1024"

    def test_the_server_is_strict(self):
        # A packet split in two writes with a pause between them is a short read: fatal.
        with socket.create_connection(("127.0.0.1", self.peer.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req = sdpeer.encode_request(sdpeer.ZERO_ID, sdpeer.REGISTER,
                                        sdpeer.name_field("Strict"))
            s.sendall(req[:100])
            time.sleep(0.3)
            try:
                s.sendall(req[100:])
                s.recv(100)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while not self.peer.short_reads and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.peer.short_reads, [(255, 77)])
        self.assertNotIn("Strict", self.peer.clients)

    def test_paced_uploads_arrive_whole(self):
        runs, size = (20, 20 << 20) if LONG else (3, 2 << 20)
        path = self.setup_file(size, name="paced.bin")
        want = hashlib.sha256(read(path)).digest()
        times = []
        for i in range(runs):
            self.peer.stored.clear()
            n = len(self.peer.requests)
            start = time.monotonic()
            res = run_client(self.work, ["--paced", "--packet-size", self.PACKET, "--quiet"],
                             timeout=600)
            times.append(time.monotonic() - start)
            self.assertEqual(res.returncode, OK, "run %d: %s" % (i + 1, res.stderr))
            self.assertEqual(self.peer.short_reads, [])
            self.assertEqual(hashlib.sha256(self.peer.stored["paced.bin"]).digest(), want)
            cipher = (size // 16 + 1) * 16
            self.assertEqual(codes(self.peer, n).count(828), -(-cipher // 1024))
        if LONG:
            print("\n--paced: %d uploads of %d MiB in 1024-byte packets, all intact; "
                  "seconds per upload: min %.2f, median %.2f, max %.2f"
                  % (runs, size >> 20, min(times), sorted(times)[runs // 2], max(times)))

    def test_paced_needs_a_packet_that_fits_its_buffer(self):
        self.setup_file(1 << 20)
        res = run_client(self.work, ["--paced", "--single-packet"], timeout=60)
        self.assertEqual(res.returncode, FILE, res.stderr)
        self.assertIn("--paced", res.stderr)


if __name__ == "__main__":
    run_tests()

"""test_client: the real bin/sealdrop-client against the independent Python peer server
(tests/peer/sdpeer.py PeerServer, in this process) and its fault switches: registration and
reconnect, the CRC loop, retries on 1607, 1606, the failure exits, the me.info/priv.key files of
the four recorded clients, file sizes and every packet layout option."""

import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import threading
import unittest

import harness
from harness import (CLIENT_BIN, FIXTURES, free_port, make_file, run_tests,
                     skip_unless_built, tmpdir, write_transfer_info)
import sdpeer


def run_client(workdir, args=(), **kw):
    """The client told to speak version 3 only: these tests record every request the
    version-3 peer receives, and --protocol auto would first send a TLS hello (its fallback
    to version 3 is tested in test_client_v4)."""
    return harness.run_client(workdir, ["--protocol", "3"] + list(args), **kw)

NAME = "Client Tester"

# Exit statuses documented in sealdrop-client --help.
OK, USAGE, TRANSFER_INFO, ME_INFO, FILE, CONNECT, CONNECTION, SERVER, CRC, REFUSED = range(10)

_plain_cksum = sdpeer.cksum


def _fast_cksum(data):
    # The peer's pure-Python CRC takes minutes on 100 MiB; GNU cksum is a third, independent
    # implementation of the same CRC, so large uploads are checked with it.
    if len(data) < (1 << 20):
        return _plain_cksum(data)
    out = subprocess.run(["cksum"], input=bytes(data), stdout=subprocess.PIPE, check=True,
                         timeout=300).stdout
    return int(out.split()[0])


sdpeer.cksum = _fast_cksum


def codes(peer):
    return [c for c, _, _ in peer.requests]


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


@skip_unless_built(CLIENT_BIN)
class ClientTest(unittest.TestCase):
    peer_args = {}

    def setUp(self):
        self._tmp = tmpdir("sd-client-")
        self.dir = self._tmp.__enter__()
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.peer = sdpeer.PeerServer(os.path.join(self.dir, "peer"), **self.peer_args)
        self.peer.start()

    def tearDown(self):
        self.peer.stop()
        self._tmp.__exit__(None, None, None)

    def setup_file(self, size, name="upload.bin", host_port=None, client=NAME):
        path = make_file(os.path.join(self.work, name), size)
        write_transfer_info(self.work, host_port or "127.0.0.1:%d" % self.peer.port, client, name)
        return path

    def run_ok(self, args=(), timeout=120):
        res = run_client(self.work, args, timeout=timeout)
        self.assertEqual(res.returncode, OK, res.stderr)
        return res

    def assert_stored(self, path):
        self.assertEqual(self.peer.stored.get(os.path.basename(path)), read(path))

    def me_info(self):
        return read(os.path.join(self.work, "me.info"))


class RegisterReconnect(ClientTest):
    def test_register_then_reconnect(self):
        path = self.setup_file(5000)
        self.run_ok()
        client = self.peer.clients[NAME]
        self.assertEqual(codes(self.peer)[:2], [825, 826])
        self.assertEqual(codes(self.peer)[-1], 900)
        self.assert_stored(path)
        for f in ("me.info", "priv.key"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.work, f)).st_mode)
            self.assertEqual(mode, 0o600, f)
        lines = self.me_info().decode().split("\n")
        self.assertEqual(lines[0], NAME)
        self.assertEqual(lines[1], client["id"].hex())
        # The private key in me.info and priv.key is the one whose public half the peer got.
        key = sdpeer.RSAKey.from_base64(lines[2])
        self.assertEqual(key.spki(), bytes(client["public_key"]))
        self.assertEqual(key.e, 17)
        self.assertEqual(len(key.spki()), 160)
        pk = sdpeer.RSAKey.from_base64(read(os.path.join(self.work, "priv.key"), "r"))
        self.assertEqual(pk.spki(), key.spki())
        self.assertTrue(client["files"][b"upload.bin"]["verified"])

        first = self.me_info()
        n = len(self.peer.requests)
        self.run_ok()
        second = codes(self.peer)[n:]
        self.assertEqual(second[0], 827)
        self.assertNotIn(825, second)
        self.assertNotIn(826, second)
        self.assertEqual(self.peer.requests[n][1], client["id"])
        self.assertEqual(self.me_info(), first)
        self.assert_stored(path)

    def test_no_progress_bar_when_not_a_terminal(self):
        self.setup_file(300000)
        res = self.run_ok()
        self.assertNotIn("\r", res.stderr)
        self.assertNotIn("\033[", res.stderr)
        res = self.run_ok(["--quiet"])
        self.assertEqual(res.stderr, "")

    def test_progress_bar_on_a_terminal(self):
        import pty
        import select
        self.setup_file(3 << 20)
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([CLIENT_BIN], cwd=self.work, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=slave)
            os.close(slave)
            slave = None
            out = b""
            while True:
                r, _, _ = select.select([master], [], [], 60)
                if not r:
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the client closed its side
                    break
                if not chunk:
                    break
                out += chunk
            self.assertEqual(proc.wait(timeout=60), OK, out)
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        text = out.decode("utf-8", "replace")
        self.assertIn("\r", text)
        self.assertIn("%", text)
        self.assertIn("left", text)
        self.assertIn("3.0 MiB", text)      # the total
        self.assertIn("sent in", text)      # the final line with the average rate
        res = self.run_ok(["--quiet"])
        self.assertEqual(res.stderr, "")

    def test_verbose_logs_each_message(self):
        self.setup_file(10)
        res = self.run_ok(["--verbose"])
        for code in ("825", "1600", "826", "1602", "828", "1603", "900", "1604"):
            self.assertIn(code, res.stderr)

    def test_name_taken(self):
        self.setup_file(10)
        self.run_ok()
        os.remove(os.path.join(self.work, "me.info"))
        os.remove(os.path.join(self.work, "priv.key"))
        n = len(self.peer.requests)
        res = run_client(self.work, timeout=60)
        self.assertEqual(res.returncode, REFUSED, res.stderr)
        self.assertIn("Fatal error", res.stderr)
        self.assertEqual(codes(self.peer)[n:], [825])
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.info")))

    def test_options_override_transfer_info(self):
        path = make_file(os.path.join(self.work, "other.bin"), 777)
        sub = os.path.join(self.work, "sub")
        os.makedirs(sub)
        res = run_client(self.dir, ["-C", sub, "--server", "127.0.0.1:%d" % self.peer.port,
                                    "--name", "Option User", "--file", path], timeout=60)
        self.assertEqual(res.returncode, OK, res.stderr)
        self.assertIn("Option User", self.peer.clients)
        self.assertTrue(os.path.exists(os.path.join(sub, "me.info")))
        self.assert_stored(path)

    def test_help_and_version(self):
        res = run_client(self.work, ["--help"], timeout=10)
        self.assertEqual(res.returncode, 0)
        for word in ("Exit status", "--packet-size", "--first-packet", "--pad-last-packet",
                     "--per-packet-encryption", "--single-packet", "--timeout"):
            self.assertIn(word, res.stdout)
        res = run_client(self.work, ["--version"], timeout=10)
        self.assertEqual(res.returncode, 0)
        self.assertIn(read(os.path.join(harness.TOP, "VERSION"), "r").strip(), res.stdout)
        res = run_client(self.work, ["--no-such-option"], timeout=10)
        self.assertEqual(res.returncode, USAGE)


class CrcLoop(ClientTest):
    def test_wrong_crc_once(self):
        self.peer.wrong_crc = 1
        path = self.setup_file(3000)
        self.run_ok()
        c = codes(self.peer)
        self.assertEqual(c.count(901), 1)
        self.assertEqual(c[-1], 900)
        self.assertNotIn(902, c)
        # The whole file went twice: as many 828s after the 901 as before it.
        i = c.index(901)
        self.assertEqual(c[:i].count(828), c[i:].count(828))
        self.assert_stored(path)

    def test_wrong_crc_four_times(self):
        self.peer.wrong_crc = 4
        self.setup_file(3000)
        res = run_client(self.work, timeout=60)
        self.assertEqual(res.returncode, CRC, res.stderr)
        self.assertIn("Fatal error", res.stderr)
        c = codes(self.peer)
        self.assertEqual(c.count(901), 3)
        self.assertEqual(c.count(902), 1)
        self.assertEqual(c[-1], 902)
        self.assertNotIn(900, c)
        self.assertFalse(self.peer.clients[NAME]["files"][b"upload.bin"]["verified"])

    def test_server_that_acks_901(self):
        self.peer.wrong_crc = 2
        self.peer.ack_901 = True
        path = self.setup_file(20000)
        self.run_ok(["--packet-size", "8192"])
        c = codes(self.peer)
        self.assertEqual(c.count(901), 2)
        self.assertEqual(c[-1], 900)
        self.assert_stored(path)


class Retries(ClientTest):
    def test_1607_three_times_then_success(self):
        for code in (825, 826, 828, 900):
            with self.subTest(code=code):
                shutil.rmtree(self.work)
                os.makedirs(self.work)
                path = self.setup_file(1000, name="f%d.bin" % code, client="R %d" % code)
                self.peer.error_replies = {code: 3}
                n = len(self.peer.requests)
                res = self.run_ok()
                self.assertEqual(res.stderr.count("server responded with an error"), 3)
                self.assertEqual(codes(self.peer)[n:].count(code), 4)
                self.assert_stored(path)

    def test_1607_on_reconnect(self):
        path = self.setup_file(100)
        self.run_ok()
        self.peer.error_replies = {827: 3}
        n = len(self.peer.requests)
        self.run_ok()
        self.assertEqual(codes(self.peer)[n:n + 4], [827] * 4)
        self.assert_stored(path)

    def test_1607_four_times_is_fatal(self):
        for code in (825, 828):
            with self.subTest(code=code):
                shutil.rmtree(self.work)
                os.makedirs(self.work)
                self.setup_file(1000, client="F %d" % code)
                self.peer.error_replies = {code: 4}
                res = run_client(self.work, timeout=60)
                self.assertEqual(res.returncode, SERVER, res.stderr)
                self.assertEqual(res.stderr.count("server responded with an error"), 4)
                self.assertIn("Fatal error: ", res.stderr)

    def test_help_readme_and_man_page_say_what_exit_7_means(self):
        # One try and 3 retries, as test_1607_four_times_is_fatal checks the code does.
        want = "errors 4 times (a try and 3 retries"
        res = run_client(self.work, ["--help"], timeout=10)
        line = [l for l in res.stdout.split("\n") if l.startswith("  7 ")]
        self.assertEqual(len(line), 1)
        self.assertIn(want, line[0])
        readme = read(os.path.join(harness.TOP, "README.md"), "r")
        self.assertIn("| 7 | the server answered a step with " + want, readme)
        man = read(os.path.join(harness.TOP, "docs", "sealdrop-client.1"), "r")
        self.assertIn(want, man)

    def test_1607_for_every_packet_of_a_multi_packet_upload(self):
        # Three 1607s for the three packets of the first upload: one failed attempt.
        path = self.setup_file(3000)
        self.peer.error_replies = {828: 3}
        self.run_ok(["--packet-size", "1024"])
        self.assert_stored(path)

    def test_deny_reconnect_registers_anew(self):
        path = self.setup_file(100)
        self.run_ok()
        old_id = self.peer.clients[NAME]["id"]
        self.peer.deny_reconnect = True
        n = len(self.peer.requests)
        self.run_ok()
        c = codes(self.peer)[n:]
        self.assertEqual(c[:3], [827, 825, 826])
        new_id = self.peer.clients[NAME]["id"]
        self.assertNotEqual(new_id, old_id)
        lines = self.me_info().decode().split("\n")
        self.assertEqual(lines[1], new_id.hex())
        key = sdpeer.RSAKey.from_base64(lines[2])
        self.assertEqual(key.spki(), bytes(self.peer.clients[NAME]["public_key"]))
        self.assert_stored(path)

    def test_1606_then_1601_continues_under_the_1606_id(self):
        # A course-sample server: 1606 registers the name on the spot, 825 is refused.
        path = self.setup_file(100)
        self.run_ok()
        self.peer.deny_reconnect = True
        self.peer.name_taken = True
        n = len(self.peer.requests)
        self.run_ok()
        c = codes(self.peer)[n:]
        self.assertEqual(c[:3], [827, 825, 826])
        pending_id = self.peer.clients[NAME]["id"]
        self.assertEqual(self.peer.requests[n + 2][1], pending_id)  # 826 under that ID
        self.assertEqual(self.me_info().decode().split("\n")[1], pending_id.hex())
        self.assert_stored(path)


class Failures(ClientTest):
    def prepare_registered(self):
        path = self.setup_file(100)
        self.run_ok()
        return path, self.me_info()

    def assert_failure(self, status, args=(), words=(), timeout=30):
        res = run_client(self.work, args, timeout=timeout)
        self.assertEqual(res.returncode, status, res.stderr)
        self.assertIn("sealdrop-client: ", res.stderr)
        self.assertIn("Fatal error: ", res.stderr)
        for w in words:
            self.assertIn(w, res.stderr)
        return res

    def test_missing_transfer_info(self):
        self.assert_failure(TRANSFER_INFO, words=("transfer.info",))
        self.assertEqual(self.peer.requests, [])

    def test_bad_transfer_info(self):
        _, me = self.prepare_registered()
        n = len(self.peer.requests)
        for text in ("127.0.0.1:99999\n%s\nupload.bin\n" % NAME,
                     "127.0.0.1:%d\n%s\nupload.bin\n" % (self.peer.port, "x" * 101),
                     "127.0.0.1:%d\n%s\n" % (self.peer.port, NAME),
                     "no-port\n%s\nupload.bin\n" % NAME):
            with self.subTest(text=text[:30]):
                with open(os.path.join(self.work, "transfer.info"), "w") as f:
                    f.write(text)
                self.assert_failure(TRANSFER_INFO)
                self.assertEqual(self.me_info(), me)
        self.assertEqual(len(self.peer.requests), n)

    def test_unreachable_server(self):
        _, me = self.prepare_registered()
        port = free_port()  # nothing listens there
        with open(os.path.join(self.work, "transfer.info"), "w") as f:
            f.write("127.0.0.1:%d\n%s\nupload.bin\n" % (port, NAME))
        self.assert_failure(CONNECT, ["--connect-timeout", "3"], words=(str(port),))
        self.assertEqual(self.me_info(), me)

    def test_connect_timeout(self):
        # A listener whose backlog is full never completes the handshake: the connect
        # deadline must end the attempt.
        _, me = self.prepare_registered()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fillers = []
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            port = listener.getsockname()[1]
            for _ in range(8):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            with open(os.path.join(self.work, "transfer.info"), "w") as f:
                f.write("127.0.0.1:%d\n%s\nupload.bin\n" % (port, NAME))
            res = run_client(self.work, ["--connect-timeout", "1", "--timeout", "1"], timeout=30)
            # Depending on the kernel the SYN is dropped (connect timeout, 5) or accepted
            # into the backlog and never answered (read timeout, 6): never a hang.
            self.assertIn(res.returncode, (CONNECT, CONNECTION), res.stderr)
            self.assertIn("Fatal error: ", res.stderr)
        finally:
            for s in fillers:
                s.close()
            listener.close()
        self.assertEqual(self.me_info(), me)

    def test_stalled_server(self):
        for code in (827, 828, 900):
            with self.subTest(code=code):
                _, me = self.prepare_registered()
                self.peer.stall_on = code
                res = self.assert_failure(CONNECTION, ["--timeout", "1"],
                                          words=("timeout",))
                self.peer.stall_on = None
                self.assertEqual(self.me_info(), me)

    def test_dropped_connection(self):
        _, me = self.prepare_registered()
        self.peer.drop_on = 828
        self.assert_failure(CONNECTION, ["--timeout", "5"])
        self.assertEqual(self.me_info(), me)

    def test_unreadable_file(self):
        _, me = self.prepare_registered()
        n = len(self.peer.requests)
        for path in ("missing.bin", ".", "/dev/null/x"):
            with self.subTest(path=path):
                with open(os.path.join(self.work, "transfer.info"), "w") as f:
                    f.write("127.0.0.1:%d\n%s\n%s\n" % (self.peer.port, NAME, path))
                self.assert_failure(FILE)
                self.assertEqual(self.me_info(), me)
        # Refused before connecting.
        self.assertEqual(len(self.peer.requests), n)

    def test_names_the_server_refuses_are_refused_before_connecting(self):
        # The server's own rules (protocol/text.c): a client name with a C1 control or bytes
        # that are not UTF-8, and a file name the server reserves or cannot store.
        _, me = self.prepare_registered()
        n = len(self.peer.requests)
        for name, words in ((b"C1 \xc2\x85 name", ("control character",)),
                            (b"Latin-1 \xe9", ("not valid UTF-8",))):
            with self.subTest(name=name):
                with open(os.path.join(self.work, "transfer.info"), "wb") as f:
                    f.write(b"127.0.0.1:%d\n%s\nupload.bin\n" % (self.peer.port, name))
                self.assert_failure(TRANSFER_INFO, words=("the client name",) + words)
        for fname in (".sealdrop-part-1234", "back\\"):
            with self.subTest(file=fname):
                make_file(os.path.join(self.work, fname), 10)
                write_transfer_info(self.work, "127.0.0.1:%d" % self.peer.port, NAME, fname)
                self.assert_failure(FILE, words=("the server refuses it",))
        self.assertEqual(self.me_info(), me)
        self.assertEqual(len(self.peer.requests), n)

    def test_file_that_shrinks_while_sent(self):
        # Truncated when the peer sees the first packet: the client, held back by the socket
        # buffers, has read only a few MiB of 64 MiB by then.
        path = self.setup_file(64 << 20, name="shrinks.bin")
        original = self.peer._send_file
        done = []

        def truncate_then_handle(hdr, payload, state):
            if not done:
                done.append(1)
                os.truncate(path, 1 << 20)
            return original(hdr, payload, state)

        self.peer._send_file = truncate_then_handle
        self.assert_failure(FILE, words=("changed size",), timeout=120)
        self.assertTrue(done)

    def test_file_edited_in_place_while_sent(self):
        # Same size, first bytes rewritten when the peer sees the first packet: the CRC
        # matches what was read (torn), so the client must not confirm it: 902, exit 4.
        path = self.setup_file(64 << 20, name="edited.bin")
        original = self.peer._send_file
        done = []

        def edit_then_handle(hdr, payload, state):
            if not done:
                done.append(1)
                with open(path, "r+b") as f:
                    head = f.read(4096)
                    f.seek(0)
                    f.write(bytes(b ^ 0xFF for b in head))
            return original(hdr, payload, state)

        self.peer._send_file = edit_then_handle
        self.assert_failure(FILE, words=("changed while it was being sent",), timeout=120)
        self.assertTrue(done)
        codes = [r[0] for r in self.peer.requests]
        self.assertIn(902, codes)
        self.assertNotIn(900, codes)

    def test_broken_me_info_is_refused_and_kept(self):
        self.setup_file(100)
        broken = b"Name\nnot an id\n@@@\n"
        with open(os.path.join(self.work, "me.info"), "wb") as f:
            f.write(broken)
        self.assert_failure(ME_INFO, words=("me.info",))
        self.assertEqual(self.me_info(), broken)
        self.assertEqual(self.peer.requests, [])


class FixtureClients(ClientTest):
    """The me.info/priv.key files written by four other clients, used for a reconnect."""

    CLIENTS = ("client-fixed1024-from1", "client-fixed1024-from0", "client-var8192-from1",
               "client-perpacket-swapped")

    def test_reconnect_with_recorded_files(self):
        for name in self.CLIENTS:
            with self.subTest(client=name):
                run = os.path.join(FIXTURES, "clients", name, "first-run-3000")
                with open(os.path.join(run, "keys.json")) as f:
                    keys = json.load(f)
                shutil.rmtree(self.work)
                os.makedirs(self.work)
                for fn in ("me.info", "priv.key"):
                    shutil.copy(os.path.join(run, fn), os.path.join(self.work, fn))
                cid = bytes.fromhex(keys["client_id"])
                spki = bytes.fromhex(keys["public_key_spki"])
                # Seed the peer with the recorded client (name, ID, public key).
                with self.peer.lock:
                    self.peer.clients["Fixture Tester"] = {
                        "id": cid, "name": "Fixture Tester", "public_key": spki,
                        "rsa": sdpeer.RSAKey.public_from_spki(spki), "aes_key": None,
                        "files": {}}
                path = self.setup_file(3000, client="Fixture Tester")
                before = self.me_info()
                n = len(self.peer.requests)
                self.run_ok()
                self.assertEqual(self.peer.requests[n][0], 827)
                self.assertEqual(self.peer.requests[n][1], cid)
                self.assertNotIn(825, codes(self.peer)[n:])
                self.assert_stored(path)
                self.assertEqual(self.me_info(), before)

    def test_me_info_without_key_lines_uses_priv_key(self):
        run = os.path.join(FIXTURES, "clients", "client-perpacket-swapped", "first-run-3000")
        with open(os.path.join(run, "keys.json")) as f:
            keys = json.load(f)
        lines = read(os.path.join(run, "me.info")).split(b"\n")
        with open(os.path.join(self.work, "me.info"), "wb") as f:
            f.write(lines[0] + b"\n" + lines[1] + b"\n")
        shutil.copy(os.path.join(run, "priv.key"), os.path.join(self.work, "priv.key"))
        spki = bytes.fromhex(keys["public_key_spki"])
        self.peer.clients["Fixture Tester"] = {
            "id": bytes.fromhex(keys["client_id"]), "name": "Fixture Tester",
            "public_key": spki, "rsa": sdpeer.RSAKey.public_from_spki(spki),
            "aes_key": None, "files": {}}
        path = self.setup_file(17, client="Fixture Tester")
        self.run_ok()
        self.assert_stored(path)


class ScriptedServer:
    """A one-connection server that hands out a recorded client_id and AES key (wrapped with
    whatever public key the client sends) and keeps the raw bytes of every 828 request."""

    def __init__(self, client_id, aes_key, crc):
        self.client_id, self.aes_key, self.crc = client_id, aes_key, crc
        self.raw_828 = []
        self.error = None
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(30)
            with conn:
                while True:
                    hdr, payload = sdpeer.read_request(conn)
                    code = hdr["code"]
                    if code == 825:
                        conn.sendall(sdpeer.encode_response(1600, self.client_id))
                    elif code == 826:
                        spki = sdpeer._der_prefix(payload[255:415])
                        key = sdpeer.RSAKey.public_from_spki(spki)
                        conn.sendall(sdpeer.encode_response(
                            1602, self.client_id + key.wrap(self.aes_key)))
                    elif code == 828:
                        raw = (hdr["client_id"] + struct.pack("<BHI", hdr["version"], code,
                                                              hdr["payload_size"]) + payload)
                        self.raw_828.append(raw)
                        number, total = struct.unpack_from("<HH", payload, 8)
                        if number == total:
                            conn.sendall(sdpeer.encode_response(
                                1603, self.client_id + payload[0:4] + payload[12:267]
                                + struct.pack("<I", self.crc)))
                    elif code == 900:
                        conn.sendall(sdpeer.encode_response(1604, self.client_id))
                        return
                    else:
                        raise sdpeer.PeerError("unexpected request %d" % code)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(30)


class RecordedBytes(unittest.TestCase):
    """With the recorded ID and AES key and 8192-byte packets, our 828 requests are byte for
    byte those of client-var8192-from1 (fixtures README 1, check 6)."""

    @skip_unless_built(CLIENT_BIN)
    def test_828_requests_match_the_recording(self):
        for run in ("first-run-3000", "first-run-20000"):
            with self.subTest(run=run):
                d = os.path.join(FIXTURES, "clients", "client-var8192-from1", run)
                keys = json.loads(read(os.path.join(d, "keys.json")))
                msgs = json.loads(read(os.path.join(d, "messages.json")))["messages"]
                c2s = read(os.path.join(d, "c2s.bin"))
                want = [c2s[m["offset"]:m["payload_offset"] + m["payload_size"]]
                        for m in msgs if m["dir"] == "c2s" and m["code"] == 828]
                srv = ScriptedServer(bytes.fromhex(keys["client_id"]),
                                     bytes.fromhex(keys["aes_key"]), keys["upload"]["cksum"])
                with tmpdir("sd-rec-") as work:
                    fname = keys["upload"]["file"]
                    shutil.copy(os.path.join(d, fname), os.path.join(work, fname))
                    write_transfer_info(work, "127.0.0.1:%d" % srv.port, "Fixture Tester", fname)
                    res = run_client(work, ["--packet-size", "8192"], timeout=60)
                    srv.join()
                    self.assertIsNone(srv.error)
                    self.assertEqual(res.returncode, OK, res.stderr)
                self.assertEqual(len(srv.raw_828), len(want))
                for got, exp in zip(srv.raw_828, want):
                    self.assertEqual(got, exp)


class SizesAndLayouts(ClientTest):
    def test_sizes(self):
        for size in (0, 1, 15, 16, 17, 1000, 65535, 65536, 65537):
            with self.subTest(size=size):
                path = self.setup_file(size, name="s%d.bin" % size)
                self.run_ok()
                self.assert_stored(path)
                self.assertEqual(self.peer.clients[NAME]["files"][b"s%d.bin" % size]["size"],
                                 size)

    def test_100_mib(self):
        path = self.setup_file(100 << 20, name="big.bin")
        self.run_ok(timeout=600)
        stored = self.peer.stored["big.bin"]
        self.assertEqual(len(stored), 100 << 20)
        self.assertEqual(hashlib.sha256(stored).digest(),
                         hashlib.sha256(read(path)).digest())

    def test_layouts(self):
        size = 20000
        ct = (size // 16 + 1) * 16
        cases = [
            ([], 1),
            (["--packet-size", "8192"], 3),
            (["--packet-size", "1024", "--first-packet", "0"], 20),
            (["--packet-size", "1024", "--pad-last-packet"], 20),
            (["--packet-size", "1024", "--pad-last-packet", "--first-packet", "0"], 20),
            (["--packet-size", "1024", "--per-packet-encryption"], 20),
            (["--single-packet"], 1),
            (["--packet-size", "1000"], 21),
        ]
        for args, packets in cases:
            with self.subTest(args=args):
                fname = "l%d.bin" % len(self.peer.requests)
                path = self.setup_file(size, name=fname)
                n = len(self.peer.requests)
                self.run_ok(args)
                sent = [(c, s) for c, _, s in self.peer.requests[n:] if c == 828]
                self.assertEqual(len(sent), packets)
                sizes = [s - 267 for _, s in sent]
                if "--pad-last-packet" in args:
                    self.assertEqual(set(sizes), {1024})
                elif "--per-packet-encryption" in args:
                    self.assertEqual(sizes, [1040] * 19 + [560])
                else:
                    self.assertEqual(sum(sizes), ct)
                self.assert_stored(path)


if __name__ == "__main__":
    run_tests()

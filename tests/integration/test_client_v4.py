"""test_client_v4: the real bin/sealdrop-client speaking version 4 to the independent Python
version-4 peer server (tests/peer/sdpeer4.py Server4, in this process) and its fault
switches: the account flows (register, link a version-3 identity, register anew after
ERROR 3), pinning (trust on first use, a changed key, --server-key), the fallback to version 3
and its refusal for a pinned server, uploads byte-identical with resume after a dropped
connection and compression measured on the server side, list/get/rm and a resumed download."""

import hashlib
import json
import os
import re
import select
import socket
import stat
import threading
import time
import unittest

import harness
from harness import CLIENT_BIN, gen_bytes, make_file, run_tests, skip_unless_built, tmpdir
import sdpeer
import sdpeer4
from sdpeer4 import Identity, Server4

NAME = "V4 Tester"
MiB = 1 << 20

# Exit statuses documented in sealdrop-client --help.
OK, USAGE, TRANSFER_INFO, ME_INFO, FILE, CONNECT, CONNECTION, SERVER, CRC, REFUSED = range(10)
SERVER_KEY, NOT_FOUND = 10, 11

FP_RE = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def compressible(size):
    line = b"sealdrop version 4 deflates this line of text again and again and again\n"
    return (line * (size // len(line) + 1))[:size]


class CuttingProxy:
    """A TCP relay on 127.0.0.1 in front of the server that cuts its first `cuts`
    connections once `after` bytes have passed in one direction ("up": client to server,
    "down": server to client), closing both sides; later connections pass whole. TLS passes
    through untouched (the client pins the server's key)."""

    def __init__(self, target_port, after, direction="up", cuts=1):
        self.target_port, self.after, self.direction, self.cuts = \
            target_port, after, direction, cuts
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stop_event = threading.Event()
        self.cut_done = 0
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            cut = self.cut_done < self.cuts
            if cut:
                self.cut_done += 1
            t = threading.Thread(target=self._relay, args=(conn, cut), daemon=True)
            t.start()
            self.threads.append(t)

    def _relay(self, client, cut):
        server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        moved = 0
        try:
            while not self.stop_event.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for src in ready:
                    dst = server if src is client else client
                    data = src.recv(65536)
                    if not data:
                        return
                    counted = (src is client) == (self.direction == "up")
                    if cut and counted:
                        if moved + len(data) >= self.after:
                            dst.sendall(data[:self.after - moved])
                            return
                        moved += len(data)
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.stop_event.set()
        self.listener.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)


@skip_unless_built(CLIENT_BIN)
class V4Test(unittest.TestCase):
    """A fresh Server4 (with server_args) and a fresh client folder per test."""

    server_args = {}

    def setUp(self):
        self._tmp = tmpdir("sd-cv4-")
        self.dir = self._tmp.__enter__()
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.storage = os.path.join(self.dir, "storage")
        self.server = Server4(self.storage, **self.server_args)
        self.port = self.server.start()
        self.address = "127.0.0.1:%d" % self.port

    def tearDown(self):
        self.server.stop()
        self._tmp.__exit__(None, None, None)

    def transfer(self, file_name="upload.bin", name=NAME):
        harness.write_transfer_info(self.work, self.address, name, file_name)

    def put_file(self, data, file_name="upload.bin"):
        with open(os.path.join(self.work, file_name), "wb") as f:
            f.write(data)
        self.transfer(file_name)
        return data

    def client(self, args=(), status=OK, timeout=120):
        res = harness.run_client(self.work, list(args), timeout=timeout)
        self.assertEqual(res.returncode, status,
                         "exit %d, wanted %d\nstdout:\n%s\nstderr:\n%s\nevents: %s" % (
                             res.returncode, status, res.stdout, res.stderr,
                             self.server.events[-12:]))
        return res

    def events(self, kind):
        with self.server.events_lock:
            return [e for e in self.server.events if e.get("event") == kind]

    def v4_requests(self):
        with self.server.lock:
            return [r for r in self.server.requests if 840 <= r[0] <= 862]

    def v3_requests(self):
        with self.server.lock:
            return [r for r in self.server.requests if r[0] < 840 or r[0] >= 900]

    def me(self):
        lines = read(os.path.join(self.work, "me.info"), "r").split("\n")
        return lines[0], lines[1]

    def stored(self, name="upload.bin"):
        return read(os.path.join(self.storage, self.me()[1], name))

    def known_lines(self):
        path = os.path.join(self.work, "known_servers")
        if not os.path.exists(path):
            return []
        return [l for l in read(path, "r").split("\n") if l]


class Accounts(V4Test):
    def test_register_writes_me_info_me_key_and_pins_the_server(self):
        data = self.put_file(gen_bytes(100000, 7))
        res = self.client(["--verbose"])
        # me.info: the version-3 format (name, 32 hex digits, base64 key); me.key: 0600 PEM.
        name, hexid = self.me()
        self.assertEqual(name, NAME)
        self.assertRegex(hexid, r"^[0-9a-f]{32}$")
        for f in ("me.info", "priv.key", "me.key"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.work, f)).st_mode),
                             0o600, f)
        ident = Identity.load(os.path.join(self.work, "me.key"))
        welcome = self.events("welcome")
        self.assertEqual([w["flow"] for w in welcome], ["register"])
        self.assertEqual(welcome[0]["id"], hexid)
        self.assertEqual(welcome[0]["client_fingerprint"], ident.fingerprint())
        # The version-3 key in me.info is the one the server holds for the account.
        rsa = sdpeer.RSAKey.from_base64("".join(
            read(os.path.join(self.work, "me.info"), "r").split("\n")[2:]))
        with self.server.lock:
            self.assertEqual(self.server.clients[NAME]["public_key"][:160], rsa.spki())
        # Trust on first use: recorded, and shown.
        self.assertEqual(self.known_lines(),
                         ["%s %s" % (self.address, self.server.fingerprint())])
        self.assertIn(self.server.fingerprint(), res.stderr)
        self.assertIn("TLS1.3", res.stderr)
        self.assertIn(ident.fingerprint(), res.stderr)
        self.assertEqual(self.stored(), data)

    def test_second_run_is_welcomed_by_whoami(self):
        self.put_file(b"x" * 10)
        self.client()
        key_before = read(os.path.join(self.work, "me.key"))
        me_before = read(os.path.join(self.work, "me.info"))
        self.client()
        self.assertEqual([w["flow"] for w in self.events("welcome")], ["register", "whoami"])
        self.assertEqual(read(os.path.join(self.work, "me.key")), key_before)
        self.assertEqual(read(os.path.join(self.work, "me.info")), me_before)

    def test_link_a_version3_identity(self):
        self.put_file(b"v3 first")
        self.client(["--protocol", "3"])
        self.assertEqual(self.v4_requests(), [])
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.key")))
        me_before = read(os.path.join(self.work, "me.info"))
        data = self.put_file(gen_bytes(5000, 3), "second.bin")
        self.client()
        self.assertEqual([w["flow"] for w in self.events("welcome")], ["link"])
        self.assertEqual(self.events("welcome")[0]["id"], self.me()[1])
        self.assertEqual(read(os.path.join(self.work, "me.info")), me_before)
        ident = Identity.load(os.path.join(self.work, "me.key"))
        self.assertEqual(self.events("welcome")[0]["client_fingerprint"], ident.fingerprint())
        self.assertEqual(self.stored("second.bin"), data)
        # And the next run is a plain WHOAMI.
        self.client()
        self.assertEqual([w["flow"] for w in self.events("welcome")], ["link", "whoami"])

    def test_register_anew_after_error3(self):
        self.put_file(b"v3 first")
        self.client(["--protocol", "3"])
        _, old_id = self.me()
        self.server.forget = 1          # the LINK finds no account: ERROR 3
        data = self.put_file(b"after", "after.bin")
        res = self.client()
        self.assertEqual(len(self.events("forgot")), 1)
        self.assertEqual([w["flow"] for w in self.events("welcome")], ["register"])
        name, new_id = self.me()
        self.assertEqual(name, NAME)
        self.assertNotEqual(new_id, old_id)
        self.assertEqual(self.events("welcome")[0]["id"], new_id)
        self.assertIn("registering anew", res.stderr)
        self.assertEqual(self.stored("after.bin"), data)

    def registers(self):
        return [r for r in self.v4_requests() if r[0] == sdpeer4.REGISTER]

    def test_lost_register_reply_is_recovered_by_whoami(self):
        # The server registers the account but the reply never arrives: the reconnect asks
        # WHOAMI with the same key (me.key and priv.key were written before REGISTER) and
        # writes me.info, instead of a second REGISTER (ERROR 1) and a name lost for good.
        data = self.put_file(gen_bytes(5000, 8))
        self.server.faults = {sdpeer4.REGISTER: ["drop"]}
        self.client()
        welcome = self.events("welcome")
        self.assertEqual([w["flow"] for w in welcome], ["register", "whoami"])
        self.assertEqual(len(self.registers()), 1)
        self.assertEqual(self.me(), (NAME, welcome[0]["id"]))
        self.assertEqual(welcome[1]["client_fingerprint"], welcome[0]["client_fingerprint"])
        rsa = sdpeer.RSAKey.from_base64("".join(
            read(os.path.join(self.work, "me.info"), "r").split("\n")[2:]))
        with self.server.lock:
            self.assertEqual(self.server.clients[NAME]["public_key"][:160], rsa.spki())
        self.assertEqual(self.stored(), data)

    def test_lost_register_reply_is_recovered_by_the_next_run(self):
        data = self.put_file(gen_bytes(5000, 9))
        self.server.faults = {sdpeer4.REGISTER: ["drop"]}
        self.client(["--retries", "0"], status=CONNECTION)
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.info")))
        res = self.client()
        self.assertIn("asking it", res.stderr)
        welcome = self.events("welcome")
        self.assertEqual([w["flow"] for w in welcome], ["register", "whoami"])
        self.assertEqual(len(self.registers()), 1)
        self.assertEqual(self.me(), (NAME, welcome[0]["id"]))
        self.assertEqual(self.stored(), data)
        self.client()   # and from now on a plain WHOAMI
        self.assertEqual([w["flow"] for w in self.events("welcome")],
                         ["register", "whoami", "whoami"])

    def test_lost_reply_to_registering_anew_after_error3(self):
        self.put_file(b"v3 first")
        self.client(["--protocol", "3"])
        _, old_id = self.me()
        self.server.forget = 1
        self.server.faults = {sdpeer4.REGISTER: ["drop"]}
        data = self.put_file(b"after", "after.bin")
        self.client()
        welcome = self.events("welcome")
        self.assertEqual([w["flow"] for w in welcome], ["register", "whoami"])
        self.assertEqual(len(self.registers()), 1)
        name, new_id = self.me()
        self.assertNotEqual(new_id, old_id)
        self.assertEqual(new_id, welcome[0]["id"])
        self.assertEqual(self.stored("after.bin"), data)
        # priv.key holds me.info's key again.
        rsa = sdpeer.RSAKey.from_base64("".join(
            read(os.path.join(self.work, "me.info"), "r").split("\n")[2:]))
        priv = sdpeer.RSAKey.from_base64(read(os.path.join(self.work, "priv.key"), "r"))
        self.assertEqual(rsa.spki(), priv.spki())

    def test_me_key_of_another_account_is_refused(self):
        # B's folder with A's me.key: the server knows the key as A's account, me.info says
        # B. Acting as A would show and change A's files: exit 3, nothing done.
        self.put_file(b"a's file", "a.bin")
        self.client()
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        harness.write_transfer_info(other, self.address, "Other Tester", "b.bin")
        with open(os.path.join(other, "b.bin"), "wb") as f:
            f.write(b"b's file")
        res = harness.run_client(other, [], timeout=60)
        self.assertEqual(res.returncode, OK, res.stderr)
        with open(os.path.join(self.work, "me.key"), "rb") as src, \
                open(os.path.join(other, "me.key"), "wb") as dst:
            dst.write(src.read())
        res = harness.run_client(other, ["list"], timeout=60)
        self.assertEqual(res.returncode, ME_INFO, res.stderr)
        self.assertNotIn("a.bin", res.stdout)
        self.assertIn("belongs to the account", res.stderr)
        res = harness.run_client(other, ["rm", "b.bin"], timeout=60)
        self.assertEqual(res.returncode, ME_INFO, res.stderr)
        self.assertEqual(self.events("delete"), [])

    def test_verbose_escapes_the_name_in_welcome(self):
        # The name in WELCOME is the server's text: -v shows it escaped, never a raw escape
        # sequence for the terminal.
        self.put_file(b"x")
        self.client()
        hostile = "Evil\x1b]0;owned\x07\x1b[2J\u009b1m"
        with self.server.lock:
            acct = self.server.clients.pop(NAME)
            acct["name"] = hostile
            self.server.clients[hostile] = acct
        res = self.client(["-v", "list"])
        self.assertIn("welcome back", res.stderr)
        for raw in ("\x1b", "\x07", "\u009b"):
            self.assertNotIn(raw, res.stderr)
        self.assertIn("Evil\\x1b]0;owned", res.stderr)

    def test_name_taken_is_exit_9(self):
        self.put_file(b"a")
        self.client()
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        harness.write_transfer_info(other, self.address, NAME, "upload.bin")
        with open(os.path.join(other, "upload.bin"), "wb") as f:
            f.write(b"b")
        res = harness.run_client(other, [], timeout=60)
        self.assertEqual(res.returncode, REFUSED, res.stderr)
        self.assertFalse(os.path.exists(os.path.join(other, "me.info")))
        self.assertFalse(os.path.exists(os.path.join(other, "me.key")))
        self.assertFalse(os.path.exists(os.path.join(other, "priv.key")))


class Pinning(V4Test):
    def test_changed_key_exits_10_and_sends_nothing(self):
        self.put_file(b"secret")
        other = Identity.generate().fingerprint()
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write("# pinned earlier\nexample.org:1256 %s\n%s %s\n" % (
                self.server.fingerprint(), self.address, other))
        res = self.client(status=SERVER_KEY)
        self.assertIn(other, res.stderr)
        self.assertIn(self.server.fingerprint(), res.stderr)
        self.assertIn("line 3", res.stderr)
        self.assertIn("%s %s" % (self.address, other), res.stderr)
        self.assertEqual(self.v4_requests(), [])
        self.assertEqual(self.v3_requests(), [])
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.info")))
        # known_servers is never rewritten by a refusal.
        self.assertEqual(len(self.known_lines()), 3)

    def test_a_second_line_for_a_rotated_key_is_accepted(self):
        # The user added the server's new key below the old one: a match on any line wins,
        # as known_servers_parse says, and the file is left as it is.
        data = self.put_file(b"after the rotation")
        old = Identity.generate().fingerprint()
        text = "%s %s\n%s %s\n" % (self.address, old, self.address, self.server.fingerprint())
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write(text)
        self.client()
        self.assertEqual(self.stored(), data)
        self.assertEqual(read(os.path.join(self.work, "known_servers"), "r"), text)
        # Neither line matching is still exit 10.
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write("%s %s\n%s %s\n" % (self.address, old, self.address,
                                          Identity.generate().fingerprint()))
        self.client(status=SERVER_KEY)

    def test_man_in_the_middle_with_its_own_key_is_refused(self):
        # A relay with its own key where the pinned server was: known_servers names the
        # real server's key for that address.
        self.put_file(b"secret")
        self.client()
        mitm = Server4(os.path.join(self.dir, "mitm"), mitm=True)
        try:
            port = mitm.start()
            with open(os.path.join(self.work, "known_servers"), "a") as f:
                f.write("127.0.0.1:%d %s\n" % (port, self.server.fingerprint()))
            res = harness.run_client(self.work, ["--server", "127.0.0.1:%d" % port],
                                     timeout=60)
            self.assertEqual(res.returncode, SERVER_KEY, res.stderr)
            with mitm.lock:
                self.assertEqual(mitm.requests, [])
            self.assertIn(mitm.fingerprint(), res.stderr)
            self.assertIn(self.server.fingerprint(), res.stderr)
        finally:
            mitm.stop()

    def test_server_key_option(self):
        self.put_file(b"pinned by option")
        wrong = Identity.generate().fingerprint()
        res = self.client(["--server-key", wrong], status=SERVER_KEY)
        self.assertIn(wrong, res.stderr)
        self.assertEqual(self.v4_requests(), [])
        self.assertEqual(self.known_lines(), [])
        self.client(["--server-key", self.server.fingerprint()])
        self.assertEqual(self.known_lines(), [])   # an explicit pin skips TOFU
        self.assertEqual(self.stored(), b"pinned by option")

    def test_malformed_server_key_option_is_usage(self):
        self.put_file(b"x")
        self.client(["--server-key", "SHA256:short"], status=USAGE)

    def test_malformed_known_servers_is_exit_3(self):
        self.put_file(b"x")
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write("%s not-a-fingerprint\n" % self.address)
        res = self.client(status=ME_INFO)
        self.assertIn("known_servers", res.stderr)
        self.assertEqual(self.v4_requests(), [])


class SilentFirstProxy(CuttingProxy):
    """Its first connection takes every byte and answers nothing, never closing (a version-3
    server waiting for the rest of a request); later connections pass whole."""

    def __init__(self, target_port):
        super().__init__(target_port, 0, cuts=1)

    def _relay(self, client, cut):
        if not cut:
            return super()._relay(client, False)
        try:
            while not self.stop_event.is_set():
                ready, _, _ = select.select([client], [], [], 0.2)
                if ready and not client.recv(65536):
                    return
        except OSError:
            pass
        finally:
            client.close()


class PinnedSilence(V4Test):
    """A handshake that times out at a pinned server is a lost connection (retried, exit 6 in
    the end), not a refusal to speak TLS (exit 10): only the unpinned fallback probe may read
    silence as version 3."""

    def silent_proxy(self, silent_connections=1):
        proxy = SilentFirstProxy(self.port)
        proxy.cuts = silent_connections
        self.addCleanup(proxy.close)
        self.address = "127.0.0.1:%d" % proxy.port
        return proxy

    def test_server_key_and_protocol_4_retry_a_silent_handshake(self):
        self.silent_proxy()
        data = self.put_file(gen_bytes(3000, 51))
        res = self.client(["--protocol", "4", "--server-key", self.server.fingerprint(),
                           "--timeout", "3"])
        self.assertIn("reconnecting", res.stderr)
        self.assertNotIn("downgrade", res.stderr)
        self.assertEqual(self.stored(), data)

    def test_known_servers_pin_retries_a_silent_handshake(self):
        self.silent_proxy()
        data = self.put_file(gen_bytes(3000, 52))
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write("%s %s\n" % (self.address, self.server.fingerprint()))
        res = self.client(["--timeout", "3"])
        self.assertIn("reconnecting", res.stderr)
        self.assertEqual(self.stored(), data)
        self.assertEqual(self.v3_requests(), [])

    def test_a_pinned_server_that_stays_silent_is_exit_6(self):
        self.silent_proxy(silent_connections=100)
        self.put_file(b"x")
        res = self.client(["--server-key", self.server.fingerprint(), "--timeout", "1",
                           "--retries", "1"], status=CONNECTION)
        self.assertNotIn("downgrade", res.stderr)
        self.assertEqual(self.v3_requests(), [])


class V3OnlyServer(V4Test):
    server_args = {"v3_only": True}

    def test_silent_server_falls_back_after_the_probe_deadline(self):
        # The first TLS attempt meets silence: the fallback starts after 5 s, not --timeout.
        data = self.put_file(gen_bytes(3000, 6))
        proxy = SilentFirstProxy(self.port)
        try:
            harness.write_transfer_info(self.work, "127.0.0.1:%d" % proxy.port, NAME,
                                        "upload.bin")
            t0 = time.monotonic()
            self.client(["--timeout", "30"])
            elapsed = time.monotonic() - t0
        finally:
            proxy.close()
        self.assertGreaterEqual(elapsed, 4.5)
        self.assertLess(elapsed, 15)
        self.assertEqual(self.stored(), data)

    def test_fallback_to_version_3_when_not_pinned(self):
        data = self.put_file(gen_bytes(3000, 5))
        self.client()
        self.assertEqual(len(self.events("v3_only_refused")), 1)
        self.assertEqual([r[0] for r in self.v3_requests()][:2], [825, 826])
        self.assertEqual(self.known_lines(), [])
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.key")))
        self.assertEqual(self.stored(), data)

    def test_refuses_to_fall_back_for_a_pinned_server(self):
        self.put_file(b"x")
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write("%s %s\n" % (self.address, self.server.fingerprint()))
        res = self.client(status=SERVER_KEY)
        self.assertIn("downgrade", res.stderr)
        self.assertEqual(self.v3_requests(), [])
        self.assertFalse(os.path.exists(os.path.join(self.work, "me.info")))

    def test_refuses_to_fall_back_with_server_key(self):
        self.put_file(b"x")
        self.client(["--server-key", self.server.fingerprint()], status=SERVER_KEY)
        self.assertEqual(self.v3_requests(), [])

    def test_protocol_4_never_falls_back(self):
        self.put_file(b"x")
        self.client(["--protocol", "4"], status=SERVER)
        self.assertEqual(self.v3_requests(), [])

    def test_protocol_3_never_tries_tls(self):
        self.put_file(b"x")
        self.client(["--protocol", "3"])
        self.assertEqual(self.events("v3_only_refused"), [])

    def test_list_needs_version_4(self):
        self.transfer()
        self.client(["list"], status=SERVER)


class Uploads(V4Test):
    def test_sizes_byte_identical(self):
        for size in (0, 1, MiB):
            with self.subTest(size=size):
                data = self.put_file(gen_bytes(size, size + 1), "f%d.bin" % size)
                self.client()
                self.assertEqual(self.stored("f%d.bin" % size), data)
                done = self.events("put_done")[-1]
                self.assertEqual(done["size"], size)
                self.assertEqual(done["sha256"], hashlib.sha256(data).hexdigest())

    def test_compressible_data_travels_smaller(self):
        data = self.put_file(compressible(2 * MiB))
        self.client(["--compress", "yes"])
        done = self.events("put_done")[-1]
        self.assertEqual(done["plain_in"], len(data))
        self.assertGreater(done["compressed_chunks"], 0)
        self.assertLess(done["data_in"], len(data) // 4)
        self.assertEqual(self.stored(), data)

    def test_compress_no_and_random_data_under_auto_travel_plain(self):
        data = self.put_file(compressible(MiB))
        self.client(["--compress", "no"])
        done = self.events("put_done")[-1]
        self.assertEqual((done["compressed_chunks"], done["data_in"]), (0, len(data)))
        data = self.put_file(os.urandom(MiB), "random.bin")
        self.client(["--compress", "auto"])
        done = self.events("put_done")[-1]
        self.assertEqual((done["compressed_chunks"], done["data_in"]), (0, len(data)))
        self.assertEqual(self.stored("random.bin"), data)

    def test_wrong_sha_in_put_done_is_exit_8(self):
        self.put_file(b"checked")
        self.server.wrong_done_sha = 1
        res = self.client(status=CRC)
        self.assertIn("PUT_DONE does not match", res.stderr)

    def test_file_edited_in_place_while_sent_is_exit_4(self):
        # Same size, first bytes rewritten once the server holds the first chunk: the client,
        # held back by the socket buffers, read those bytes before. What the server holds is
        # torn: PUT_ABORT, exit 4, no file stored.
        data = self.put_file(os.urandom(24 * MiB))
        path = os.path.join(self.work, "upload.bin")
        edited = []

        def edit(offset):
            if not edited:
                edited.append(offset)
                with open(path, "r+b") as f:
                    f.write(bytes(b ^ 0xFF for b in data[:4096]))

        self.server.put_data_hook = edit
        res = self.client(["--compress", "no"], status=FILE)
        self.assertTrue(edited)
        self.assertIn("changed while it was being sent", res.stderr)
        self.assertEqual(self.events("put_done"), [])
        self.assertEqual(len(self.events("put_abort")), 1)
        self.assertFalse(os.path.exists(os.path.join(self.storage, self.me()[1],
                                                     "upload.bin")))

    def test_file_edited_before_a_reconnect_is_exit_4(self):
        # Edited in place once the server holds the first chunk; the connection is closed at
        # the third (ERROR 8, retried): the check after the reconnect finds the change. 24 MiB:
        # the client, held back by the socket buffers, cannot reach the end before that.
        data = self.put_file(os.urandom(24 * MiB))
        path = os.path.join(self.work, "upload.bin")

        def edit(offset):
            with open(path, "r+b") as f:
                f.seek(len(data) - 10)
                f.write(b"0123456789")
            self.server.put_data_hook = None

        self.server.put_data_hook = edit
        self.server.faults = {sdpeer4.PUT_DATA: [None, None, ("error_close", sdpeer4.BUSY)]}
        res = self.client(["--compress", "no"], status=FILE)
        self.assertIn("reconnecting", res.stderr)
        self.assertIn("changed while it was being sent", res.stderr)
        self.assertEqual(len(self.events("put_open")), 1)
        self.assertEqual(self.events("put_done"), [])

    def test_changed_file_is_sent_again_from_0(self):
        # A partial upload on the server whose prefix is not our file's: PUT_ABORT, from 0.
        self.server.drop_upload_after = 200000
        data = self.put_file(gen_bytes(600000, 1))
        self.client(["--retries", "0"], status=CONNECTION)
        changed = bytes([data[0] ^ 1]) + data[1:]
        self.put_file(changed)
        res = self.client()
        self.assertEqual(len(self.events("put_abort")), 1)
        self.assertIn("differ", res.stderr)
        self.assertEqual(self.stored(), changed)


class Resume(V4Test):
    server_args = {"max_chunk": 65536, "drop_upload_after": 300000}

    def test_reconnects_and_resumes_without_resending(self):
        data = self.put_file(gen_bytes(MiB, 11))
        res = self.client()
        self.assertEqual(len(self.events("dropped_upload")), 1)
        opens = self.events("put_open")
        self.assertEqual([o["offset"] for o in opens], [0, 300000])
        done = self.events("put_done")[-1]
        self.assertEqual(done["plain_in"], len(data))   # no byte arrived twice
        self.assertEqual(self.stored(), data)
        self.assertIn("resuming", res.stderr)

    def test_a_later_run_resumes(self):
        data = self.put_file(gen_bytes(MiB, 12))
        self.client(["--retries", "0"], status=CONNECTION)
        self.assertFalse(os.path.exists(os.path.join(self.storage, self.me()[1],
                                                     "upload.bin")))
        self.client()
        self.assertEqual([o["offset"] for o in self.events("put_open")], [0, 300000])
        self.assertEqual(self.events("put_done")[-1]["plain_in"], len(data))
        self.assertEqual(self.stored(), data)


class CutConnections(V4Test):
    """Connections cut by a relay at a byte count (not by the server): the client reconnects
    by itself and resumes."""

    server_args = {"max_chunk": 65536}

    def proxy(self, after, direction):
        p = CuttingProxy(self.port, after, direction)
        self.addCleanup(p.close)
        self.address = "127.0.0.1:%d" % p.port
        return p

    def test_upload_cut_midway_resumes(self):
        self.proxy(700000, "up")
        data = self.put_file(gen_bytes(2 * MiB, 21))
        res = self.client(["--compress", "no"])
        self.assertIn("reconnecting", res.stderr)
        opens = [o["offset"] for o in self.events("put_open")]
        self.assertEqual(len(opens), 2)
        self.assertEqual(opens[0], 0)
        self.assertGreater(opens[1], 0)
        self.assertEqual(self.events("put_done")[-1]["plain_in"], len(data))
        self.assertEqual(self.stored(), data)

    def test_download_cut_midway_resumes(self):
        data = self.put_file(gen_bytes(2 * MiB, 22), "dl.bin")
        self.client()
        self.proxy(900000, "down")
        self.transfer("dl.bin")  # through the relay
        res = self.client(["get", "dl.bin", "-o", "copy.bin"])
        self.assertIn("resuming the download", res.stderr)
        # The peer logs a GET once it has written it all (the cut one only if the relay
        # took every byte before cutting): the last is the resumed one.
        offsets = [g["offset"] for g in self.events("get")]
        self.assertIn(len(offsets), (1, 2))
        self.assertEqual(offsets[:-1], [0] * (len(offsets) - 1))
        self.assertTrue(0 < offsets[-1] < len(data), offsets)
        self.assertEqual(read(os.path.join(self.work, "copy.bin")), data)


@unittest.skipUnless(os.environ.get("SEALDROP_BIG") == "1", "SEALDROP_BIG=1: a 4 GiB + 1 file")
class BigFile(V4Test):
    server_args = {"max_chunk": 1 << 20}

    def test_over_4_gib(self):
        # Sparse on our side, deflated on the wire (zeros): the sizes are what is tested.
        size = (4 << 30) + 1
        path = os.path.join(self.work, "big.bin")
        with open(path, "wb") as f:
            f.seek(size - 1)
            f.write(b"\x01")
        self.transfer("big.bin")
        self.client(["--compress", "yes", "--quiet"], timeout=3600)
        h = hashlib.sha256()
        zeros = bytes(1 << 20)
        for _ in range((size - 1) >> 20):
            h.update(zeros)
        h.update(b"\x01")
        done = self.events("put_done")[-1]
        self.assertEqual((done["size"], done["sha256"]), (size, h.hexdigest()))
        self.assertEqual(os.path.getsize(os.path.join(self.storage, self.me()[1], "big.bin")),
                         size)


class Files(V4Test):
    def test_list_get_rm(self):
        a = self.put_file(gen_bytes(70000, 2), "a.bin")
        self.client()
        b = self.put_file(compressible(300000), "b.txt")
        self.client()
        res = self.client(["list"])
        lines = res.stdout.strip().split("\n")
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[1].startswith("a.bin"))
        self.assertIn(" 70000 ", lines[1])
        self.assertIn(hashlib.sha256(b).hexdigest(), lines[2])
        listing = json.loads(self.client(["list", "--json"]).stdout)
        self.assertEqual([(f["name"], f["size"], f["sha256"]) for f in listing],
                         [("a.bin", len(a), hashlib.sha256(a).hexdigest()),
                          ("b.txt", len(b), hashlib.sha256(b).hexdigest())])
        self.client(["get", "b.txt", "-o", "copy.txt"])
        self.assertEqual(read(os.path.join(self.work, "copy.txt")), b)
        self.assertFalse(os.path.exists(os.path.join(self.work, "copy.txt.part")))
        os.remove(os.path.join(self.work, "a.bin"))
        self.client(["get", "a.bin"])
        self.assertEqual(read(os.path.join(self.work, "a.bin")), a)
        self.client(["rm", "a.bin"])
        self.assertEqual([f["name"] for f in json.loads(
            self.client(["list", "--json"]).stdout)], ["b.txt"])
        self.client(["rm", "a.bin"], status=NOT_FOUND)
        self.client(["get", "a.bin", "-o", "x"], status=NOT_FOUND)
        self.assertFalse(os.path.exists(os.path.join(self.work, "x.part")))

    def test_rm_whose_reply_was_lost_is_done(self):
        # The server deletes, the reply is lost, the DELETE sent again after the reconnect
        # finds nothing: the file was deleted, exit 0 and a note saying so.
        self.put_file(b"to delete", "gone.bin")
        self.client()
        self.server.faults = {sdpeer4.DELETE: ["drop"]}
        res = self.client(["rm", "gone.bin"])
        self.assertIn("reply to the first DELETE was lost", res.stderr)
        self.assertEqual(len(self.events("delete")), 1)
        self.assertEqual(len([r for r in self.v4_requests() if r[0] == sdpeer4.DELETE]), 2)
        # A name never there is still exit 11.
        self.client(["rm", "never.bin"], status=NOT_FOUND)

    def test_get_refuses_more_than_the_listed_size(self):
        # A hostile server streams on past the file: the client stops at the size LIST gave
        # and never writes more (it took every byte before).
        data = self.put_file(gen_bytes(100000, 5), "f.bin")
        self.client()
        self.server.get_extra = 256 * MiB
        res = self.client(["get", "f.bin", "-o", "out.bin", "--retries", "0"],
                          status=SERVER)
        self.assertIn("more of f.bin than the 100000 bytes", res.stderr)
        self.assertLess(self.server.get_extra_sent, 64 * MiB)
        self.assertFalse(os.path.exists(os.path.join(self.work, "out.bin")))
        part = os.path.join(self.work, "out.bin.part")
        self.assertLessEqual(os.path.getsize(part) if os.path.exists(part) else 0, len(data))

    def test_get_resumes_from_the_part_file(self):
        data = self.put_file(gen_bytes(MiB, 4), "big.bin")
        self.client()
        with open(os.path.join(self.work, "out.bin.part"), "wb") as f:
            f.write(data[:400000])
        res = self.client(["get", "big.bin", "-o", "out.bin"])
        self.assertEqual([g["offset"] for g in self.events("get")], [400000])
        self.assertEqual(read(os.path.join(self.work, "out.bin")), data)
        self.assertIn("resuming", res.stderr)

    def test_get_with_a_wrong_part_file_starts_again(self):
        data = self.put_file(gen_bytes(200000, 4), "big.bin")
        self.client()
        with open(os.path.join(self.work, "out.bin.part"), "wb") as f:
            f.write(b"\0" * 1000)
        self.client(["get", "big.bin", "-o", "out.bin"])
        self.assertEqual([g["offset"] for g in self.events("get")], [1000, 0])
        self.assertEqual(read(os.path.join(self.work, "out.bin")), data)


class TransientErrors(V4Test):
    """ERROR 8 (busy) and 9 (storage failure, e.g. a database restart) are passing: the client
    reconnects and sends again within --retries, as after a dropped connection."""

    server_args = {"max_chunk": 65536}

    def test_every_request_is_retried_after_error_9(self):
        data = self.put_file(gen_bytes(300000, 41))
        self.server.faults = {sdpeer4.PUT_OPEN: [("error", sdpeer4.STORAGE)],
                              sdpeer4.PUT_FINISH: [("error", sdpeer4.STORAGE)]}
        res = self.client(["--compress", "no"])
        self.assertIn("reconnecting", res.stderr)
        self.assertEqual(len(self.events("fault")), 2)
        self.assertEqual(self.stored(), data)
        self.assertEqual(self.events("put_done")[-1]["plain_in"], len(data))
        for cmd, code in (("list", sdpeer4.LIST), ("get", sdpeer4.GET),
                          ("rm", sdpeer4.DELETE)):
            with self.subTest(cmd=cmd):
                self.server.faults = {code: [("error", sdpeer4.STORAGE)]}
                args = {"list": ["list"], "get": ["get", "upload.bin", "-o", "copy.bin"],
                        "rm": ["rm", "upload.bin"]}[cmd]
                res = self.client(args)
                self.assertIn("reconnecting", res.stderr)
                self.assertEqual(self.server.faults[code], [])
        self.assertEqual(read(os.path.join(self.work, "copy.bin")), data)
        self.assertEqual(len(self.events("delete")), 1)

    def test_error_8_on_put_data_is_retried(self):
        data = self.put_file(gen_bytes(600000, 42))
        self.server.faults = {sdpeer4.PUT_DATA: [None, None, ("error_close", sdpeer4.BUSY)]}
        res = self.client(["--compress", "no"])
        self.assertIn("reconnecting", res.stderr)
        opens = [o["offset"] for o in self.events("put_open")]
        self.assertEqual(opens, [0, 2 * 65536])
        self.assertEqual(self.stored(), data)

    def test_a_lasting_error_is_exit_7_after_the_retries(self):
        self.transfer()
        self.server.faults = {sdpeer4.LIST: [("error", sdpeer4.STORAGE)] * 3}
        res = self.client(["list", "--retries", "1"], status=SERVER)
        self.assertIn("giving up", res.stderr)
        self.assertEqual(len(self.server.faults[sdpeer4.LIST]), 1)


class ServerNames(V4Test):
    """Names from the server (LISTING, PUT_DONE) and NAME arguments of get are text from
    elsewhere: shown through the display sanitiser, written only by the file-name rule."""

    def rename_stored(self, old, new):
        """Renames a stored file in the peer server (its own uploads refuse C1 names, ours
        allows them: the file-name rule of text.h)."""
        with self.server.lock:
            c = self.server.clients[NAME]
            folder = self.server._folder(c)
            c["v4files"][new] = c["v4files"].pop(old)
            os.rename(os.path.join(folder, old), os.path.join(folder, new))

    def test_list_escapes_c1_controls(self):
        name = "x\u009b31mred\u0085.bin"
        data = self.put_file(gen_bytes(5000, 3), "a.bin")
        self.client()
        self.rename_stored("a.bin", name)
        res = harness.run_client(self.work, ["list"], timeout=120)
        self.assertEqual(res.returncode, OK, res.stderr)
        self.assertNotIn("\u009b", res.stdout)
        self.assertNotIn("\u0085", res.stdout)
        self.assertIn("x\\xc2\\x9b31mred\\xc2\\x85.bin", res.stdout)
        raw = self.client(["list", "--json"]).stdout
        self.assertNotIn("\u009b", raw)  # escaped as JSON allows
        self.assertEqual([f["name"] for f in json.loads(raw)], [name])
        self.client(["get", name])
        self.assertEqual(read(os.path.join(self.work, name)), data)

    def test_get_never_overwrites_the_clients_own_files(self):
        data = self.put_file(gen_bytes(3000, 3), "a.bin")
        self.client()
        own = ("me.info", "priv.key", "me.key", "known_servers", "transfer.info")
        for name in own:
            self.rename_stored("a.bin" if name == own[0] else own[own.index(name) - 1], name)
            before = read(os.path.join(self.work, name))
            with self.subTest(name=name):
                res = self.client(["get", name], status=USAGE)
                self.assertIn("use -o PATH", res.stderr)
                self.assertEqual(read(os.path.join(self.work, name)), before)
                self.assertFalse(os.path.exists(os.path.join(self.work, name + ".part")))
        self.assertEqual(self.events("get"), [])
        self.client(["get", "transfer.info", "-o", "copy.bin"])
        self.assertEqual(read(os.path.join(self.work, "copy.bin")), data)
        self.client(["get", "transfer.info", "-o", ""], status=USAGE)

    def test_get_refuses_names_that_are_no_file_name_here(self):
        self.put_file(gen_bytes(100, 3), "a.bin")
        self.client()
        for bad in ("dir/..", "a\x01b", ".sealdrop-part-1", "sub/", "x\\.."):
            with self.subTest(name=bad):
                res = self.client(["get", bad], status=USAGE)
                self.assertIn("no file name to write here; use -o PATH", res.stderr)
        self.assertEqual(self.events("get"), [])
        # The last component is what is written, by the server's rule ('\\' as well).
        self.client(["get", "dir\\a.bin"], status=NOT_FOUND)
        self.assertFalse(os.path.exists(os.path.join(self.work, "dir\\a.bin.part")))


if __name__ == "__main__":
    run_tests()

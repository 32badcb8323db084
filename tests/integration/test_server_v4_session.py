#!/usr/bin/env python3
"""test_server_v4_session: rules of one version-4 connection of bin/sealdrop-server, driven
by the independent Python peer (tests/peer/sdpeer4.py): the account WELCOME named stays the
connection's (REGISTER, LINK and PROVE after WELCOME get ERROR 1, even once the certificate
was unbound elsewhere, and an open upload is published for its own account only);
--max-registrations-per-minute counts REGISTER and LINK (ERROR 8, closed); requests
pipelined behind a GET are answered after its GET_END, in order; LIST of thousands of files
(beyond one output buffer) while other connections delete, its count always equal to its
entries."""

import hashlib
import os
import sqlite3
import struct
import subprocess
import threading
import time
import unittest

import harness
from harness import tmpdir
import sdpeer
import server_helpers as sh

try:
    import sdpeer4
    from sdpeer4 import Client4, Identity, RemoteError
except ImportError as e:  # pyOpenSSL missing: Debian python3-openssl (scripts/deps.sh)
    sdpeer4 = None
    IMPORT_ERROR = str(e)


@unittest.skipIf(sdpeer4 is None, "sdpeer4 needs pyOpenSSL")
@harness.skip_unless_built(harness.SERVER_BIN)
class Session(unittest.TestCase):
    server_args = ()

    def setUp(self):
        self._tmp = tmpdir("sealdrop-v4s-")
        self.dir = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.server = harness.Server(self.dir, args=list(self.server_args))
        self.server.start()
        self.addCleanup(self.server.stop)

    def tearDown(self):
        self.assertTrue(self.server.running(), "the server is still running")

    def connect(self, identity):
        c = Client4("127.0.0.1", self.server.port, identity=identity, timeout=20.0)
        self.addCleanup(c.close)
        c.connect()
        return c

    def client(self, identity):
        c = self.connect(identity)
        self.assertIsNotNone(c.whoami())
        return c

    def account(self, name):
        ident, rsa = Identity.generate(), sdpeer.RSAKey.generate()
        c = self.connect(ident)
        w = c.register(rsa, name)
        c.close()
        return {"identity": ident, "id": bytes.fromhex(w["id"]), "rsa": rsa, "name": name}

    def db_check(self):
        res = subprocess.run([harness.DB_BIN] + sh.db_tool_args(self.dir) + ["check"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def assert_error(self, c, reason):
        with self.assertRaises(RemoteError) as cm:
            c.expect(sdpeer4.WELCOME, sdpeer4.CHALLENGE, sdpeer4.UNKNOWN)
        self.assertEqual(cm.exception.reason, reason, cm.exception)


class Identity_(Session):
    def test_account_fixed_after_welcome(self):
        alice, bob = self.account("alice"), self.account("bob")
        old = b"alice's old file\n" * 100
        c = self.client(alice["identity"])
        self.assertTrue(c.upload("f.txt", old)["verified"])
        c.close()
        new = os.urandom(200000)
        c1 = self.client(alice["identity"])
        c1.put_open(len(new), "f.txt")
        c1.put_data(0, 0, 100000, new[:100000])
        # Another certificate proves alice (alice's certificate X is unbound) and bob's
        # certificate is replaced too: nothing in the database stops X any more.
        for who in (alice, bob):
            o = self.connect(Identity.generate())
            o.link_prove(who["name"], who["id"], who["rsa"])
            o.close()
        # conn 1 stays alice's: LINK and REGISTER get ERROR 1, PROVE finds no challenge
        # (ERROR 4), WHOAMI names alice.
        c1.request(sdpeer4.LINK, sdpeer4.pack_str("bob") + bob["id"])
        self.assert_error(c1, 1)
        c1.request(sdpeer4.PROVE, b"\0" * sdpeer4.NONCE_SIZE)
        self.assert_error(c1, 4)
        c1.request(sdpeer4.REGISTER, sdpeer.RSAKey.generate().spki() + sdpeer4.pack_str("carol"))
        self.assert_error(c1, 1)
        self.assertEqual(c1.whoami(), {"id": alice["id"].hex(), "name": "alice"})
        c1.put_data(100000, 0, 100000, new[100000:])
        done = c1.put_finish(hashlib.sha256(new).digest())
        self.assertEqual(done["size"], len(new))
        c1.close()
        files = os.path.join(self.dir, "files")
        with open(os.path.join(files, alice["id"].hex(), "f.txt"), "rb") as f:
            self.assertEqual(f.read(), new)
        self.assertFalse(os.path.exists(os.path.join(files, bob["id"].hex(), "f.txt")))
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM files WHERE ID = ?",
                                  (bob["id"],))[0][0], 0)
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM clients WHERE Name = ?",
                                  ("carol",))[0][0], 0)
        self.db_check()

    def test_challenge_spent_by_welcome(self):
        """LINK, then WHOAMI (WELCOME as alice), then PROVE of bob's nonce: ERROR 4, the
        connection stays alice's and bob's binding does not move."""
        alice, bob = self.account("alice"), self.account("bob")
        c = self.connect(alice["identity"])
        enc = c.link("bob", bob["id"])
        self.assertEqual(c.whoami()["name"], "alice")
        c.request(sdpeer4.PROVE, bob["rsa"].unwrap(enc))
        self.assert_error(c, 4)
        self.assertEqual(c.whoami()["name"], "alice")
        self.assertEqual(self.client(bob["identity"]).whoami()["name"], "bob")


def get_frame(name, offset=0):
    return sdpeer4.request4(sdpeer4.GET, struct.pack("<Q", offset) + sdpeer4.pack_str(name))


class Pipelining(Session):
    def read_download(self, c, name, size):
        """GET_DATA in order from 0, then GET_END of size: the bytes."""
        parts, at = [], 0
        while True:
            code, p = c.expect(sdpeer4.GET_DATA, sdpeer4.GET_END)
            off = struct.unpack("<Q", p[:8])[0]
            if code == sdpeer4.GET_END:
                self.assertEqual(off, size, "GET_END of %s" % name)
                self.assertEqual(at, size, "%s cut short" % name)
                return b"".join(parts)
            self.assertEqual(off, at, "GET_DATA of %s" % name)
            parts.append(p[8:])
            at += len(p) - 8

    def test_requests_behind_a_get_wait_for_its_end(self):
        alice = self.account("alice")
        c = self.client(alice["identity"])
        big, small = os.urandom(3 << 20), b"hello"
        self.assertTrue(c.upload("big.bin", big)["verified"])
        self.assertTrue(c.upload("small.bin", small)["verified"])
        # GET + LIST in one write: LISTING after GET_END, never inside the download.
        c.send_frame(get_frame("big.bin") + sdpeer4.request4(sdpeer4.LIST, b""))
        self.assertEqual(self.read_download(c, "big.bin", len(big)), big)
        self.assertEqual(c.expect(sdpeer4.LISTING)[0], sdpeer4.LISTING)
        # GET big + GET small + DELETE small + LIST: two whole downloads, then OK, LISTING.
        c.send_frame(get_frame("big.bin") + get_frame("small.bin") +
                     sdpeer4.request4(sdpeer4.DELETE, sdpeer4.pack_str("small.bin")) +
                     sdpeer4.request4(sdpeer4.LIST, b""))
        self.assertEqual(self.read_download(c, "big.bin", len(big)), big)
        self.assertEqual(self.read_download(c, "small.bin", len(small)), small)
        c.expect(sdpeer4.OK)
        r = sdpeer4.Reader(c.expect(sdpeer4.LISTING)[1])
        self.assertEqual(r.u32(), 1)
        # More requests behind a GET than one read takes (3,000 WHOAMI, 69 kB): all
        # answered, in order, after GET_END.
        n = 3000
        c.send_frame(get_frame("big.bin") + sdpeer4.request4(sdpeer4.WHOAMI, b"") * n)
        self.assertEqual(self.read_download(c, "big.bin", len(big)), big)
        for _ in range(n):
            c.expect(sdpeer4.WELCOME)
        self.assertEqual(c.whoami()["name"], "alice")


class Listing(Session):
    N = 6000  # ~360 kB of entries: more than the output buffer holds at once

    def test_thousands_of_files_while_others_delete(self):
        alice = self.account("alice")
        cid = alice["id"]
        if harness.TEST_DB == "pg":  # the same rows in one statement
            sh.execute(self.dir,
                       "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, "
                       "Uploaded) SELECT ?, 'file-' || lpad(i::text, 5, '0'), "
                       "? || '/file-' || lpad(i::text, 5, '0'), 1, i, 1, "
                       "'2026-01-01 00:00:00' FROM generate_series(0, %d) AS i" % (self.N - 1),
                       (cid, cid.hex()))
        else:
            con = sqlite3.connect(sh.db_path(self.dir), timeout=30)
            try:
                con.executemany(
                    "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, Uploaded) "
                    "VALUES (?, ?, ?, 1, ?, 1, '2026-01-01 00:00:00')",
                    [(cid, "file-%05d" % i, "%s/file-%05d" % (cid.hex(), i), i)
                     for i in range(self.N)])
                con.commit()
            finally:
                con.close()
        c = self.client(alice["identity"])
        files = c.list()
        self.assertEqual([f["name"] for f in files], ["file-%05d" % i for i in range(self.N)])
        self.assertEqual([f["size"] for f in files], list(range(self.N)))
        state = {"stop": False, "bad": [], "lists": 0}
        deleted = 300

        def deleter(lo, hi):
            d = self.client(alice["identity"])
            try:
                for i in range(lo, hi):
                    d.delete("file-%05d" % i)
            except Exception as e:  # noqa: BLE001 (reported by the test)
                state["bad"].append("deleter: %r" % e)

        def lister():
            L = self.client(alice["identity"])
            last = self.N
            try:
                while not state["stop"]:
                    got = L.list()  # the count must equal the entries (Reader.done())
                    names = [f["name"] for f in got]
                    if names != sorted(set(names)) or not self.N - deleted <= len(got) <= last:
                        state["bad"].append("listing of %d entries out of order or range"
                                            % len(got))
                        return
                    last = len(got)
                    state["lists"] += 1
            except Exception as e:  # noqa: BLE001
                state["bad"].append("lister: %r" % e)

        ds = [threading.Thread(target=deleter, args=(0, deleted // 2)),
              threading.Thread(target=deleter, args=(deleted // 2, deleted))]
        ls = [threading.Thread(target=lister) for _ in range(3)]
        for t in ls + ds:
            t.start()
        for t in ds:
            t.join(120)
        state["stop"] = True
        for t in ls:
            t.join(60)
        self.assertEqual(state["bad"], [])
        self.assertGreater(state["lists"], 3)
        c = self.client(alice["identity"])  # a fresh one: the first may have idled out
        self.assertEqual(len(c.list()), self.N - deleted)
        # A slow reader: LIST + WHOAMI in one write, nothing read for a while, then all of it
        # in order.
        c.send_frame(sdpeer4.request4(sdpeer4.LIST, b"") +
                     sdpeer4.request4(sdpeer4.WHOAMI, b""))
        time.sleep(0.5)
        r = sdpeer4.Reader(c.expect(sdpeer4.LISTING)[1])
        self.assertEqual(r.u32(), self.N - deleted)
        c.expect(sdpeer4.WELCOME)


class RegistrationLimit(Session):
    server_args = ("--max-registrations-per-minute", "3")

    def assert_refused_and_closed(self, c):
        with self.assertRaises(RemoteError) as cm:
            c.expect(sdpeer4.WELCOME, sdpeer4.CHALLENGE)
        self.assertEqual(cm.exception.reason, 8, cm.exception)
        c.sock.settimeout(10)
        with self.assertRaises(sdpeer.PeerError):  # PeerEOF is one
            c.recv()

    def test_register_and_link_take_tokens(self):
        a = self.account("a")
        self.account("b")
        # The third token goes to a LINK (CHALLENGE), the fourth request is refused.
        c = self.connect(Identity.generate())
        c.link(a["name"], a["id"])
        c.request(sdpeer4.REGISTER, sdpeer.RSAKey.generate().spki() + sdpeer4.pack_str("c"))
        self.assert_refused_and_closed(c)
        c = self.connect(Identity.generate())
        c.request(sdpeer4.LINK, sdpeer4.pack_str(a["name"]) + a["id"])
        self.assert_refused_and_closed(c)
        # WHOAMI is not limited; nothing was created.
        self.assertEqual(self.client(a["identity"]).whoami()["name"], "a")
        self.assertEqual(sh.query(self.dir, "SELECT count(*) FROM clients")[0][0], 2)
        with open(self.server.log_path) as f:
            self.assertIn("--max-registrations-per-minute): ERROR 8", f.read())


class ClientLimitLog(Session):
    server_args = ("--max-client-files", "1")

    def test_v4_refusal_logged_with_its_v4_code(self):
        alice = self.account("alice")
        c = self.client(alice["identity"])
        self.assertTrue(c.upload("a.txt", b"a")["verified"])
        with self.assertRaises(RemoteError) as cm:
            c.put_open(1, "b.txt")
        self.assertEqual(cm.exception.reason, 7)
        with open(self.server.log_path) as f:
            log = f.read()
        self.assertIn("(--max-client-files 1): ERROR 7", log)
        self.assertNotIn("(--max-client-files 1): 1607", log)


if __name__ == "__main__":
    harness.run_tests()

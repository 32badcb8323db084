"""test_server_v4: our server's version 4 (SPEC-v4.md 1-3, "Accounts") against the independent
Python peer (tests/peer/sdpeer4.py: Python's ssl client, python3-cryptography identities) and
the version-3 peer: accounts (register, link a version-3 identity, whoami, ERROR 3 before
WELCOME, PROVE with a wrong, a missing or a reused nonce), TLS refusals (1.2, no or another
ALPN, no client certificate), version-3 codes inside TLS and version-4 codes outside it,
first-byte detection (a version-3 ID starting with 0x16 issued before the rule), 1,000
stalled handshakes while others are served, garbage and bad frames after a good handshake,
the identity files and --fingerprint, and the memory of an idle TLS connection."""

import os
import random
import resource
import secrets
import socket
import ssl
import stat
import struct
import subprocess
import threading
import time
import unittest

import harness
import sdpeer
import server_helpers as sh

try:
    import sdpeer4
except ImportError as e:  # pyOpenSSL missing: Debian python3-openssl (scripts/deps.sh)
    sdpeer4 = None
    IMPORT_ERROR = str(e)

ZERO_ID = b"\0" * 16


def v4_frame(code, payload=b"", version=4):
    return struct.pack("<16sBHI", ZERO_ID, version, code, len(payload)) + payload


def v3_header(client_id, code, size, version=3):
    return struct.pack("<16sBHI", bytes(client_id), version, code, size)


def error_of(payload):
    r = sdpeer4.Reader(payload)
    reason, message = r.u16(), r.str()
    r.done()
    return reason, message


def assert_closed(test, sock, timeout=10.0):
    """The server ends the connection (EOF, reset or a TLS error) within timeout."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return
        except socket.timeout:
            break
        except (ConnectionError, ssl.SSLError, OSError):
            return
    test.fail("the server did not close the connection")


@unittest.skipIf(sdpeer4 is None, "sdpeer4 needs pyOpenSSL")
@harness.skip_unless_built(harness.SERVER_BIN)
class ServerV4(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._ctx = sh.server(["--idle-timeout", "5"], prefix="sealdrop-v4-")
        cls.srv, cls.dir = cls._ctx.__enter__()
        cls.port = cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls._ctx.__exit__(None, None, None)

    def tearDown(self):
        self.assertTrue(self.srv.running(), "the server is still running")

    def client(self, identity=None, **kw):
        c = sdpeer4.Client4("127.0.0.1", self.port,
                            identity=identity or sdpeer4.Identity.generate(), **kw)
        c.connect()
        self.addCleanup(c.close)
        return c

    def name(self, stem):
        return "%s-%s" % (stem, secrets.token_hex(3))

    def row(self, name):
        rows = sh.query(self.dir, "SELECT ID, Name, PublicKey, Fingerprint FROM clients "
                        "WHERE Name = ?", (name,))
        return rows[0] if rows else None

    # -- accounts ----------------------------------------------------------------------------

    def test_register_whoami_and_the_same_account_over_version_3(self):
        ident, rsa, name = sdpeer4.Identity.generate(), sdpeer.RSAKey.generate(), self.name("al")
        c = self.client(ident)
        self.assertEqual(c.info["tls_version"], "TLSv1.3")
        self.assertEqual(c.info["alpn"], "sealdrop/4")
        self.assertIsNone(c.whoami())
        w = c.register(rsa, name)
        self.assertEqual(w["name"], name)
        cid = bytes.fromhex(w["id"])
        self.assertNotEqual(cid[0], 0x16)
        row = self.row(name)
        self.assertEqual(row[0], cid)
        self.assertEqual(row[2], rsa.spki())
        self.assertEqual(row[3], ident.fingerprint())
        # After WELCOME the connection knows its account: WHOAMI again, no ERROR 3.
        self.assertEqual(c.whoami(), w)
        # (LIST, served since the transfers plugged in: its empty listing.)
        c.request(sdpeer4.LIST)
        code, payload = c.recv()
        self.assertEqual((code, payload), (sdpeer4.LISTING, b"\0\0\0\0"))
        # A new connection with the same certificate is the same account.
        self.assertEqual(self.client(ident).whoami(), w)
        # The version-3 key it carried makes it a version-3 account too (827 -> 1605).
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            self.assertEqual(pc.reconnect(name, cid, rsa)[0], sdpeer.RECONNECTED)
        self.assertIsNotNone(self.srv.wait_for_log(
            r'register ok: 1610 WELCOME, client key %s' % ident.fingerprint()[:17].replace(
                "+", r"\+"), 5))

    def test_register_refusals(self):
        ident, name = sdpeer4.Identity.generate(), self.name("bo")
        c = self.client(ident)
        c.register(sdpeer.RSAKey.generate(), name)
        # This certificate is bound already: ERROR 1 (even with a fresh name).
        with self.assertRaises(sdpeer4.RemoteError) as e:
            c.register(sdpeer.RSAKey.generate(), self.name("bo2"))
        self.assertEqual(e.exception.reason, sdpeer4.BAD_REQUEST)
        other = self.client()
        with self.assertRaises(sdpeer4.RemoteError) as e:
            other.register(sdpeer.RSAKey.generate(), name)
        self.assertEqual(e.exception.reason, sdpeer4.NAME_TAKEN)
        # Not an RSA SPKI, a bad name, trailing bytes: ERROR 1, the connection goes on.
        for payload in (b"\x30" * 160 + sdpeer4.pack_str(self.name("k")),
                        sdpeer.RSAKey.generate().spki() + sdpeer4.pack_str("bad\x01name"),
                        sdpeer.RSAKey.generate().spki() + sdpeer4.pack_str("x") + b"!"):
            other.request(sdpeer4.REGISTER, payload)
            code, p = other.recv()
            self.assertEqual((code, error_of(p)[0]), (sdpeer4.ERROR, sdpeer4.BAD_REQUEST))
        self.assertIsNone(other.whoami())
        self.assertIsNone(self.row("bad\x01name"))

    def v3_account(self, stem):
        name, rsa = self.name(stem), sdpeer.RSAKey.generate()
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED)
            code, _ = pc.send_public_key(name, rsa)
            self.assertEqual(code, sdpeer.AES_KEY)
        return name, bytes(cid), rsa

    def test_link_a_version_3_identity(self):
        name, cid, rsa = self.v3_account("v3user")
        self.assertNotEqual(cid[0], 0x16)
        ident = sdpeer4.Identity.generate()
        c = self.client(ident)
        self.assertIsNone(c.whoami())
        w = c.link_prove(name, cid, rsa)
        self.assertEqual(w, {"id": cid.hex(), "name": name})
        self.assertEqual(self.row(name)[3], ident.fingerprint())
        self.assertEqual(self.client(ident).whoami(), w)
        # A second certificate linked later replaces the binding (the v3 key proved it).
        ident2 = sdpeer4.Identity.generate()
        self.assertEqual(self.client(ident2).link_prove(name, cid, rsa), w)
        self.assertEqual(self.row(name)[3], ident2.fingerprint())
        self.assertIsNone(self.client(ident).whoami())
        # Version 3 still works for it.
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            self.assertEqual(pc.reconnect(name, cid, rsa)[0], sdpeer.RECONNECTED)

    def test_link_and_prove_refusals(self):
        name, cid, rsa = self.v3_account("v3ref")
        c = self.client()
        # LINK: unknown name, wrong ID: ERROR 3 (the server does not know that account).
        for n, i in ((self.name("nobody"), cid), (name, bytes(16)), (name, os.urandom(16))):
            with self.assertRaises(sdpeer4.RemoteError) as e:
                c.link(n, i)
            self.assertEqual(e.exception.reason, sdpeer4.NOT_REGISTERED)
        # PROVE without a CHALLENGE on this connection: ERROR 4.
        with self.assertRaises(sdpeer4.RemoteError) as e:
            c.prove(os.urandom(32))
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        # A wrong nonce: ERROR 4, and the right one afterwards is spent too (single use).
        nonce = rsa.unwrap(c.link(name, cid))
        with self.assertRaises(sdpeer4.RemoteError) as e:
            c.prove(bytes([nonce[0] ^ 1]) + nonce[1:])
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        with self.assertRaises(sdpeer4.RemoteError) as e:
            c.prove(nonce)
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        self.assertIsNone(c.whoami())
        self.assertIsNone(self.row(name)[3])
        # A nonce is good on its own connection only.
        a, b = self.client(), self.client()
        nonce = rsa.unwrap(a.link(name, cid))
        with self.assertRaises(sdpeer4.RemoteError) as e:
            b.prove(nonce)
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        # A reused nonce after a good PROVE: ERROR 4 (the account stays linked).
        w = a.prove(nonce)
        self.assertEqual(w["name"], name)
        with self.assertRaises(sdpeer4.RemoteError) as e:
            a.prove(nonce)
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        self.assertEqual(a.whoami(), w)
        # Through the peer's own command line as well.
        d = os.path.join(self.dir, "peer-%s" % secrets.token_hex(3))
        os.mkdir(d)
        sdpeer4.write_me_info(os.path.join(d, "me.info"), name, cid, rsa)
        for flag in ("--wrong-nonce", "--prove-twice"):
            out = subprocess.run([harness.PYTHON, harness.PEER4, "link", self.srv.address,
                                  flag, "--dir", d, "--no-known-servers"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                                 text=True)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn('"reason": 4', out.stdout)

    def test_error_3_before_welcome(self):
        c = self.client()
        for code, payload in ((sdpeer4.PUT_OPEN, struct.pack("<Q", 5) + sdpeer4.pack_str("f")),
                              (sdpeer4.PUT_FINISH, b"\0" * 32), (sdpeer4.PUT_ABORT, b""),
                              (sdpeer4.LIST, b""), (sdpeer4.GET, struct.pack("<Q", 0) +
                                                    sdpeer4.pack_str("f")),
                              (sdpeer4.DELETE, sdpeer4.pack_str("f"))):
            c.request(code, payload)
            rcode, p = c.recv()
            self.assertEqual((rcode, error_of(p)[0]), (sdpeer4.ERROR, sdpeer4.NOT_REGISTERED),
                             code)
        self.assertIsNone(c.whoami())  # the connection goes on
        # PUT_DATA carries data that cannot be skipped safely: ERROR 3, then the close.
        c.put_data(0, 0, 4, b"data")
        rcode, p = c.recv()
        self.assertEqual((rcode, error_of(p)[0]), (sdpeer4.ERROR, sdpeer4.NOT_REGISTERED))
        assert_closed(self, c.sock)

    # -- codes of the other version ----------------------------------------------------------

    def test_version_3_codes_inside_tls(self):
        for code, version in ((sdpeer.REGISTER, 3), (sdpeer.REGISTER, 4), (sdpeer4.WHOAMI, 3),
                              (999, 4)):
            c = self.client()
            c.send_frame(v4_frame(code, sdpeer.name_field("x") if code == sdpeer.REGISTER
                                  else b"", version))
            rcode, p = c.recv(strict=False)
            self.assertEqual((rcode, c.last_version), (sdpeer4.ERROR, 4), (code, version))
            self.assertEqual(error_of(p)[0], sdpeer4.BAD_REQUEST)
            assert_closed(self, c.sock)

    def test_version_4_codes_outside_tls(self):
        for code in (sdpeer4.REGISTER, sdpeer4.WHOAMI, sdpeer4.LIST):
            s = sh.raw_connect(self.port)
            s.sendall(v4_frame(code))
            head, _ = sdpeer.read_response(s)
            self.assertEqual(head["code"], sdpeer.ERROR)
            self.assertEqual(sh.recv_all_until_close(s), b"")
            s.close()
        sh.assert_serves(self, self.port)

    # -- TLS refusals ------------------------------------------------------------------------

    def refused_handshake(self, **kw):
        c = sdpeer4.Client4("127.0.0.1", self.port, identity=sdpeer4.Identity.generate(), **kw)
        try:
            with self.assertRaises((ssl.SSLError, OSError, sdpeer.PeerError)):
                c.connect()
                # TLS 1.3: a client learns of a refusal after its Finished, at its first read.
                c.whoami()
        finally:
            c.close()

    def test_tls_refusals(self):
        self.refused_handshake(tls12=True)
        self.refused_handshake(alpn=None)
        self.refused_handshake(alpn=["http/1.1"])
        self.refused_handshake(alpn=["sealdrop/3"])
        c = sdpeer4.Client4("127.0.0.1", self.port, identity=None)
        try:
            with self.assertRaises((ssl.SSLError, OSError, sdpeer.PeerError)):
                c.connect()
                c.whoami()
        finally:
            c.close()
        # Each refusal is logged with GnuTLS's reason.
        self.assertIsNotNone(self.srv.wait_for_log(r"tls handshake failed: Certificate is "
                                                   r"required; closing", 5))
        log = self.srv.log(since_start=True)
        self.assertGreaterEqual(len(harness.re.findall(
            r"tls handshake failed: No common application protocol could be negotiated; "
            r"closing", log)), 3)
        self.assertGreaterEqual(len(harness.re.findall(r"tls handshake failed: ", log)), 5)
        self.assertEqual(self.client().whoami(), None)
        sh.assert_serves(self, self.port)

    # -- detection ---------------------------------------------------------------------------

    def test_version_3_ids_starting_with_0x16_still_work(self):
        # IDs issued before the rule: one that is plainly not a ClientHello, one that looks
        # like one up to byte 5 (the server must wait for that byte, under its timeout).
        for prefix in (b"\x16\x00\x00", b"\x16\x03\x01\x00\x40\x02"):
            cid = prefix + os.urandom(16 - len(prefix))
            name, rsa = self.name("old16"), sdpeer.RSAKey.generate()
            sh.execute(self.dir, "INSERT INTO clients (ID, Name, PublicKey, LastSeen) "
                       "VALUES (?, ?, ?, datetime('now'))", (cid, name, rsa.spki()))
            payload = sdpeer.name_field(name)
            frame = v3_header(cid, sdpeer.RECONNECT, len(payload)) + payload
            s = sh.raw_connect(self.port)
            s.sendall(frame[:3])  # a partial start: not enough to tell yet
            time.sleep(0.3)
            s.sendall(frame[3:])
            head, body = sdpeer.read_response(s)
            self.assertEqual(head["code"], sdpeer.RECONNECTED, prefix.hex())
            self.assertEqual(body[:16], cid)
            s.close()

    def test_ids_the_server_makes_never_start_with_0x16(self):
        ids = [bytes.fromhex(self.client().register(sdpeer.RSAKey.generate(),
                                                    self.name("id"))["id"]) for _ in range(3)]
        for _ in range(40):
            with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
                ids.append(bytes(pc.register(self.name("id3"))[1]))
        self.assertTrue(all(i[0] != 0x16 and i != bytes(16) for i in ids))

    # -- hostile input after a good handshake ------------------------------------------------

    def test_garbage_after_a_good_handshake(self):
        rnd = random.Random(4)
        for i in range(12):
            c = self.client()
            c.sock.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.choice((23, 300, 5000)))))
            assert_closed(self, c.sock)
        self.assertIsNone(self.client().whoami())

    def test_oversized_and_truncated_frames_inside_tls(self):
        # Oversized: a WHOAMI claiming 5000 bytes, a PUT_DATA over the largest chunk.
        for frame in (struct.pack("<16sBHI", ZERO_ID, 4, sdpeer4.WHOAMI, 5000),
                      struct.pack("<16sBHI", ZERO_ID, 4, sdpeer4.REGISTER, 4097),
                      struct.pack("<16sBHI", ZERO_ID, 4, sdpeer4.PUT_DATA, 13 + (1 << 20) +
                                  1025)):
            c = self.client()
            c.send_frame(frame)
            code, p = c.recv()
            self.assertEqual((code, error_of(p)[0]), (sdpeer4.ERROR, sdpeer4.BAD_REQUEST))
            assert_closed(self, c.sock)
        # Truncated: a header cut short, a payload cut short; then the peer closes, or it
        # stops and the partial-message timeout (5 s here) ends it.
        for frame in (v4_frame(sdpeer4.WHOAMI)[:10],
                      v4_frame(sdpeer4.LINK, sdpeer4.pack_str("x") + bytes(16))[:30]):
            c = self.client()
            c.send_frame(frame)
            c.close()
            c = self.client()
            c.send_frame(frame)
            assert_closed(self, c.sock, timeout=15)
        self.assertIsNotNone(self.srv.wait_for_log(r"a message took longer than 5 s", 5))
        self.assertIsNone(self.client().whoami())

    def test_pipelined_requests_in_one_burst(self):
        # Many small requests in one TLS write: records GnuTLS holds decrypted are read on
        # without a new epoll event, and the replies come in order.
        c = self.client()
        n = 300
        c.sock.sendall(b"".join(v4_frame(sdpeer4.WHOAMI) for _ in range(n)))
        for _ in range(n):
            self.assertEqual(c.recv()[0], sdpeer4.UNKNOWN)

    def test_several_records_in_one_segment(self):
        # Five TLS records in one TCP segment: each answered, none left waiting in GnuTLS.
        for _ in range(5):
            c = self.client()
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for _ in range(5):
                c.sock.sendall(v4_frame(sdpeer4.WHOAMI))
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            for _ in range(5):
                self.assertEqual(c.recv()[0], sdpeer4.UNKNOWN)

    def test_backpressure_inside_tls(self):
        # A client that sends 12,000 requests before it reads a reply, through a small
        # receive buffer: the server stops reading while its output waits and goes on when
        # the client reads; every request is answered, in order. A server of its own with
        # the default idle timeout (60 s): on a loaded machine reading 12,000 replies in
        # Python can take longer than the 5 s of this class's server, whose partial-message
        # deadline runs while the server waits for the client to read.
        ctx = sh.server(prefix="sealdrop-v4-bp-")
        srv, _d = ctx.__enter__()
        self.addCleanup(ctx.__exit__, None, None, None)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(20)
        raw.connect(("127.0.0.1", srv.port))
        c = sdpeer4.Client4("127.0.0.1", srv.port, identity=sdpeer4.Identity.generate(),
                            timeout=20)
        c.sock = c._context().wrap_socket(raw, server_hostname=None)
        self.addCleanup(c.close)
        n = 12000  # 84 KiB of replies: more than the output limit of 64 KiB
        sender = threading.Thread(target=c.sock.sendall, args=(v4_frame(sdpeer4.WHOAMI) * n,))
        sender.start()
        time.sleep(1.0)
        got = 0
        while got < n and c.recv()[0] == sdpeer4.UNKNOWN:
            got += 1
        sender.join(20)
        self.assertEqual(got, n)


@unittest.skipIf(sdpeer4 is None, "sdpeer4 needs pyOpenSSL")
@harness.skip_unless_built(harness.SERVER_BIN)
class StalledHandshakes(unittest.TestCase):
    def test_thousand_stalled_handshakes_while_others_are_served(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 1200:
            self.skipTest("needs 1,200 descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        hello = bytes.fromhex("160301") + struct.pack(">H", 512) + b"\x01" + bytes(200)
        with sh.server(["--idle-timeout", "3"]) as (srv, d):
            socks = []
            try:
                for i in range(1000):
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                    # Half stop before the shape is clear, half inside the ClientHello.
                    s.sendall(hello[:3] if i % 2 else hello)
                    socks.append(s)
                start = time.monotonic()
                # Others are served meanwhile, in both versions.
                sh.assert_serves(self, srv.port)
                c = sdpeer4.Client4("127.0.0.1", srv.port,
                                    identity=sdpeer4.Identity.generate())
                c.connect()
                self.assertEqual(c.register(sdpeer.RSAKey.generate(), "during")["name"],
                                 "during")
                c.close()
                self.assertLess(time.monotonic() - start, 10)
                closed = 0
                deadline = time.monotonic() + 30
                for s in socks:
                    s.settimeout(max(0.1, deadline - time.monotonic()))
                    try:
                        if s.recv(100) == b"":
                            closed += 1
                    except ConnectionError:
                        closed += 1
                    except socket.timeout:
                        pass
                self.assertEqual(closed, 1000)
            finally:
                for s in socks:
                    s.close()
            self.assertTrue(srv.running())
            self.assertGreaterEqual(len(harness.re.findall(r"timed out: no progress for 3 s",
                                                           srv.log(since_start=True))), 1000)
            sh.assert_serves(self, srv.port)


@unittest.skipIf(sdpeer4 is None, "sdpeer4 needs pyOpenSSL")
@harness.skip_unless_built(harness.SERVER_BIN)
class IdentityFiles(unittest.TestCase):
    def test_made_once_0600_never_overwritten_and_fingerprint(self):
        with harness.tmpdir("sealdrop-id-") as d:
            fp = subprocess.run([harness.SERVER_BIN, "--fingerprint"], cwd=d, timeout=30,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(fp.returncode, 0, fp.stderr)
            fp = fp.stdout.strip()
            self.assertRegex(fp, r"^SHA256:[A-Za-z0-9+/]{43}$")
            key, crt = os.path.join(d, "server.key"), os.path.join(d, "server.crt")
            for p in (key, crt):
                self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, p)
            before = (open(key, "rb").read(), open(crt, "rb").read())
            srv = harness.Server(d)
            srv.start()
            try:
                self.assertIn("server key fingerprint %s" % fp, srv.log())
                c = sdpeer4.Client4("127.0.0.1", srv.port, identity=sdpeer4.Identity.generate(),
                                    expect_fp=fp)
                c.connect()
                self.assertEqual(c.info["server_fingerprint"], fp)
                c.close()
            finally:
                srv.stop()
            self.assertEqual((open(key, "rb").read(), open(crt, "rb").read()), before)
            self.assertEqual([f for f in os.listdir(d) if ".tmp-" in f], [])
            # The same from files elsewhere, and the paths of --tls-key / --tls-cert.
            other = os.path.join(d, "other")
            os.mkdir(other)
            k2, c2 = os.path.join(other, "k.pem"), os.path.join(other, "c.pem")
            fp2 = subprocess.run([harness.SERVER_BIN, "--fingerprint", "--tls-key", k2,
                                  "--tls-cert", c2], cwd=d, timeout=30, stdout=subprocess.PIPE,
                                 text=True).stdout.strip()
            self.assertNotEqual(fp2, fp)
            self.assertTrue(os.path.exists(k2) and os.path.exists(c2))
            # One file without the other: refused, nothing made over it.
            os.unlink(c2)
            r = subprocess.run([harness.SERVER_BIN, "--fingerprint", "--tls-key", k2,
                                "--tls-cert", c2], cwd=d, timeout=30, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("does not", r.stderr)
            self.assertFalse(os.path.exists(c2))
            # A key that does not match the certificate: refused.
            with open(c2, "wb") as f:
                f.write(before[1])
            r = subprocess.run([harness.SERVER_BIN, "--fingerprint", "--tls-key", k2,
                                "--tls-cert", c2], cwd=d, timeout=30, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            self.assertNotEqual(r.returncode, 0)

    def test_no_v4_serves_version_3_only(self):
        with sh.server(["--no-v4"]) as (srv, d):
            self.assertIn("version 3 only", srv.log())
            self.assertFalse(os.path.exists(os.path.join(d, "server.key")))
            c = sdpeer4.Client4("127.0.0.1", srv.port, identity=sdpeer4.Identity.generate())
            with self.assertRaises((ssl.SSLError, OSError)):
                c.connect()
            c.close()
            # The start of a ClientHello read as a version-3 header (client ID 16 03 01 ...,
            # code 0): an unknown request, answered 1607 as any bad input.
            s = sh.raw_connect(srv.port)
            s.sendall(bytes.fromhex("160301020001") + bytes(17))
            self.assertEqual(sdpeer.read_response(s)[0]["code"], sdpeer.ERROR)
            s.close()
            # Version-4 codes are unknown codes to version 3: 1607, and it goes on.
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                pc.request(sdpeer4.WHOAMI, b"")
                self.assertEqual(pc.recv()[0], sdpeer.ERROR)
                self.assertEqual(pc.register("after-%s" % secrets.token_hex(3))[0],
                                 sdpeer.REGISTERED)
            sh.assert_serves(self, srv.port)


@unittest.skipIf(sdpeer4 is None, "sdpeer4 needs pyOpenSSL")
@unittest.skipIf(os.environ.get("SEALDROP_SAN"), "sanitizer builds: ASan's allocator "
                 "quarantine and shadow memory make RSS no measure of what the server keeps")
@harness.skip_unless_built(harness.SERVER_BIN)
class Memory(unittest.TestCase):
    def test_memory_per_idle_tls_connection(self):
        ident = sdpeer4.Identity.generate()
        with sh.server(["--workers", "1"]) as (srv, d):
            conns = []

            def open_some(n):
                for _ in range(n):
                    c = sdpeer4.Client4("127.0.0.1", srv.port, identity=ident, timeout=20)
                    c.connect()
                    self.assertIsNone(c.whoami())  # the handshake is complete on both sides
                    conns.append(c)
            try:
                open_some(20)  # warm up the allocator and GnuTLS before measuring
                before = sh.proc_status(srv.pid, "VmRSS")
                n = 200
                open_some(n)
                per = (sh.proc_status(srv.pid, "VmRSS") - before) / n
                print("\nmemory per idle TLS connection: %.1f KiB (RSS over %d connections)"
                      % (per, n))
                self.assertLess(per, 64, "RSS grew %.1f KiB per idle TLS connection" % per)
            finally:
                for c in conns:
                    c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

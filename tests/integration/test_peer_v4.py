"""test_peer_v4: the version-4 Python peer (tests/peer/sdpeer4.py) against itself on
127.0.0.1: every account flow, uploads with resume and compression, listing, downloads,
deletion, confinement to the account, and every refusal, so that the C tests can trust it as
an independent second implementation. Also drives its CLI (JSON lines, exit statuses)."""

import base64
import hashlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import time
import unittest

import harness
from harness import PEER4, PEER4_SERVER, PYTHON, gen_bytes, run_tests, tmpdir
import sdpeer
import sdpeer4
from sdpeer4 import ALPN, Client4, Identity, RemoteError, Server4

MiB = 1 << 20


def compressible(size):
    line = b"sealdrop version 4 compresses this line again and again\n"
    return (line * (size // len(line) + 1))[:size]


class PeerTest(unittest.TestCase):
    """A Server4 per test class (fresh accounts), clients with fresh identities."""

    server_args = {}

    @classmethod
    def setUpClass(cls):
        cls._tmp = tmpdir("sdpeer4-")
        cls.dir = cls._tmp.__enter__()
        cls.server = Server4(os.path.join(cls.dir, "storage"), **cls.server_args)
        cls.port = cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls._tmp.__exit__(None, None, None)

    def client(self, identity="new", **kw):
        if identity == "new":
            identity = Identity.generate()
        kw.setdefault("timeout", 10.0)
        c = Client4("127.0.0.1", self.port, identity=identity, **kw)
        self.addCleanup(c.close)
        return c

    def account(self, name):
        """A connected client with a fresh account; returns (client, rsa key, welcome)."""
        c = self.client()
        c.connect()
        key = sdpeer.RSAKey.generate()
        w = c.register(key, name)
        return c, key, w

    def reconnect(self, c):
        """A new connection with the same identity, past WELCOME (WHOAMI)."""
        c2 = self.client(identity=c.identity)
        c2.connect()
        self.assertIsNotNone(c2.whoami())
        return c2


class Identities(unittest.TestCase):
    def test_fingerprint_is_sha256_of_spki_unpadded_base64(self):
        ident = Identity.generate()
        fp = ident.fingerprint()
        self.assertTrue(fp.startswith("SHA256:"))
        self.assertEqual(len(fp), 7 + 43)
        self.assertNotIn("=", fp)
        # Independently: pyOpenSSL's DER public key of the certificate.
        from OpenSSL import crypto
        pk = crypto.X509.from_cryptography(ident.cert).get_pubkey()
        der = crypto.dump_publickey(crypto.FILETYPE_ASN1, pk)
        self.assertEqual(len(der), 44)  # Ed25519 SPKI: 12-byte prefix + 32-byte key
        want = base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
        self.assertEqual(fp, "SHA256:" + want)
        self.assertEqual(sdpeer4.fingerprint_of_cert_der(
            crypto.dump_certificate(crypto.FILETYPE_ASN1,
                                    crypto.X509.from_cryptography(ident.cert))), fp)

    def test_me_key_is_pkcs8_then_certificate_mode_0600(self):
        with tmpdir() as d:
            p = os.path.join(d, "me.key")
            ident = Identity.generate()
            ident.save(p)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)
            with open(p) as f:
                text = f.read()
            self.assertTrue(text.startswith("-----BEGIN PRIVATE KEY-----\n"))
            self.assertLess(text.index("PRIVATE KEY"), text.index("BEGIN CERTIFICATE"))
            self.assertEqual(Identity.load(p).fingerprint(), ident.fingerprint())
            other = Identity.generate()
            self.assertNotEqual(other.fingerprint(), ident.fingerprint())


class Accounts(PeerTest):
    def test_register_then_whoami_on_a_new_connection(self):
        c, key, w = self.account("alice")
        self.assertEqual(w["name"], "alice")
        cid = bytes.fromhex(w["id"])
        self.assertEqual(len(cid), 16)
        self.assertNotEqual(cid[0], 0x16)
        self.assertEqual(c.info["tls_version"], "TLSv1.3")
        self.assertEqual(c.info["alpn"], "sealdrop/4")
        self.assertEqual(c.info["server_fingerprint"], self.server.fingerprint())
        self.assertEqual(self.reconnect(c).whoami(), {"id": w["id"], "name": "alice"})
        stranger = self.client()
        stranger.connect()
        self.assertIsNone(stranger.whoami())

    def test_name_taken_and_certificate_already_bound(self):
        c, key, _ = self.account("bob")
        other = self.client()
        other.connect()
        with self.assertRaises(RemoteError) as e:
            other.register(key, "bob")
        self.assertEqual(e.exception.reason, sdpeer4.NAME_TAKEN)
        c2 = self.reconnect(c)
        with self.assertRaises(RemoteError) as e:
            c2.register(sdpeer.RSAKey.generate(), "bob2")
        self.assertEqual(e.exception.reason, sdpeer4.BAD_REQUEST)

    def test_requests_before_welcome_get_error_3(self):
        c = self.client()
        c.connect()
        for call in (c.list, lambda: c.put_open(1, "x"), lambda: c.delete("x"),
                     lambda: c.get("x")):
            with self.assertRaises(RemoteError) as e:
                call()
            self.assertEqual(e.exception.reason, sdpeer4.NOT_REGISTERED)

    def test_link_a_version3_identity_keeps_id_and_files(self):
        data = gen_bytes(3000)
        with sdpeer.PeerClient("127.0.0.1", self.port) as v3:
            v3.connect()
            res = v3.full_session("carol", "old.txt", data)
        self.assertEqual(res["step"], "crc_ok")
        cid, key = res["client_id"], res["rsa_key"]
        self.assertNotEqual(cid[0], 0x16)
        c = self.client()
        c.connect()
        self.assertIsNone(c.whoami())
        w = c.link_prove("carol", cid, key)
        self.assertEqual(w, {"id": cid.hex(), "name": "carol"})
        files = {f["name"]: f for f in c.list()}
        self.assertEqual(files["old.txt"]["size"], len(data))
        self.assertEqual(files["old.txt"]["sha256"], "00" * 32)  # version 3 stored none
        g = c.get("old.txt")
        self.assertTrue(g["verified"])
        self.assertEqual(g["data"], data)
        self.assertEqual(self.reconnect(c).whoami()["id"], cid.hex())
        # A second certificate proving the same key replaces the binding.
        c3 = self.client()
        c3.connect()
        self.assertEqual(c3.link_prove("carol", cid, key)["id"], cid.hex())
        c4 = self.client(identity=c.identity)
        c4.connect()
        self.assertIsNone(c4.whoami())

    def test_prove_refusals(self):
        c, key, w = self.account("dave")
        cid = bytes.fromhex(w["id"])
        n = self.client()
        n.connect()
        with self.assertRaises(RemoteError) as e:
            n.prove(b"\0" * 32)  # no LINK before
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        with self.assertRaises(RemoteError) as e:
            n.link_prove("dave", cid, key, wrong_nonce=True)
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        # the right nonce after a wrong PROVE: it was single-use, gone
        enc = n.link("dave", cid)
        nonce = key.unwrap(enc)
        n.prove(nonce)
        with self.assertRaises(RemoteError) as e:
            n.prove(nonce)  # reused
        self.assertEqual(e.exception.reason, sdpeer4.NOT_PROVEN)
        # a stranger's RSA key cannot even unwrap the challenge
        m = self.client()
        m.connect()
        with self.assertRaises(ValueError):
            m.link_prove("dave", cid, sdpeer.RSAKey.generate())
        with self.assertRaises(RemoteError) as e:
            m2 = self.client()
            m2.connect()
            m2.link("dave", b"\x01" * 16)  # wrong ID
        self.assertEqual(e.exception.reason, sdpeer4.NOT_REGISTERED)


class Files(PeerTest):
    def test_uploads_0_1_and_1mib_then_list_get_delete(self):
        c, _, _ = self.account("erin")
        blobs = {"empty": b"", "one": b"\x7f", "mib": gen_bytes(MiB)}
        for name, data in blobs.items():
            res = c.upload(name, data)
            self.assertTrue(res["verified"], res)
            self.assertEqual(res["done"]["name"], name)
            self.assertEqual(res["data_sent"], len(data))
        self.assertEqual(c.upload("one", b"\x7f")["done"]["cksum"], sdpeer.cksum(b"\x7f"))
        files = {f["name"]: f for f in c.list()}
        self.assertEqual(set(files), set(blobs))
        for name, data in blobs.items():
            self.assertEqual(files[name]["size"], len(data))
            self.assertEqual(files[name]["sha256"], hashlib.sha256(data).hexdigest())
            self.assertLessEqual(abs(files[name]["uploaded"] - time.time()), 60)
            g = c.get(name)
            self.assertTrue(g["verified"])
            self.assertEqual(g["data"], data)
        # from an offset
        data = blobs["mib"]
        g = c.get("mib", offset=300000, prefix=data[:300000])
        self.assertTrue(g["verified"])
        self.assertEqual(g["received"], len(data) - 300000)
        g = c.get("mib", offset=300000, prefix=b"\0" * 300000)  # a wrong local prefix
        self.assertFalse(g["verified"])
        c.delete("mib")
        self.assertNotIn("mib", {f["name"] for f in c.list()})
        for call in (lambda: c.delete("mib"), lambda: c.get("mib")):
            with self.assertRaises(RemoteError) as e:
                call()
            self.assertEqual(e.exception.reason, sdpeer4.NOT_FOUND)

    def test_other_account_cannot_see_get_or_delete(self):
        a, _, _ = self.account("frank")
        a.upload("secret.txt", b"frank's secret")
        b, _, _ = self.account("grace")
        self.assertEqual(b.list(), [])
        with self.assertRaises(RemoteError) as e:
            b.get("secret.txt")
        self.assertEqual(e.exception.reason, sdpeer4.NOT_FOUND)
        with self.assertRaises(RemoteError) as e:
            b.delete("secret.txt")
        self.assertEqual(e.exception.reason, sdpeer4.NOT_FOUND)
        self.assertEqual(a.get("secret.txt")["data"], b"frank's secret")

    def test_resume_after_the_client_drops(self):
        c, _, _ = self.account("heidi")
        data = gen_bytes(MiB + 12345, seed=7)
        d = self.client(identity=c.identity, drop_after=400000)
        d.connect()
        d.whoami()
        with self.assertRaises(sdpeer4.Dropped):
            d.upload("big.bin", data, chunk=65536)
        c2 = self.reconnect(c)
        res = c2.upload("big.bin", data, chunk=65536)
        self.assertTrue(res["verified"])
        self.assertFalse(res["restarted"])
        # every whole frame that was sent is held: all but the cut chunk
        self.assertGreater(res["resumed_from"], 400000 - 2 * 65536)
        self.assertLessEqual(res["resumed_from"], 400000)
        self.assertEqual(res["data_sent"], len(data) - res["resumed_from"])
        self.assertEqual(c2.get("big.bin")["data"], data)

    def test_a_changed_source_is_sent_again_from_zero(self):
        c, _, _ = self.account("ivan")
        data = gen_bytes(300000, seed=9)
        d = self.client(identity=c.identity, drop_after=200000)
        d.connect()
        d.whoami()
        with self.assertRaises(sdpeer4.Dropped):
            d.upload("doc", data, chunk=65536)
        changed = b"X" + data[1:]
        res = self.reconnect(c).upload("doc", changed, chunk=65536)
        self.assertTrue(res["restarted"])
        self.assertEqual(res["resumed_from"], 0)
        self.assertEqual(res["data_sent"], len(changed))
        self.assertTrue(res["verified"])

    def test_takeover_by_a_newer_connection(self):
        c, _, _ = self.account("judy")
        data = gen_bytes(200000, seed=3)
        st = c.put_open(len(data), "t.bin")
        c.put_data(0, 0, 100000, data[:100000])
        c2 = self.reconnect(c)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the first chunk is written asynchronously
            st = c2.put_open(len(data), "t.bin")
            if st["offset"] == 100000:
                break
            time.sleep(0.05)
        self.assertEqual(st["offset"], 100000)
        with self.assertRaises(RemoteError) as e:
            c.expect(sdpeer4.OK)
        self.assertEqual(e.exception.reason, sdpeer4.BUSY)
        res = c2.upload("t.bin", data)
        self.assertEqual(res["resumed_from"], 100000)
        self.assertTrue(res["verified"])

    def test_compression_sends_fewer_bytes(self):
        c, _, _ = self.account("ken")
        text = compressible(MiB)
        plain = c.upload("plain.txt", text, compress="no")
        packed = c.upload("packed.txt", text, compress="yes")
        self.assertTrue(packed["verified"])
        self.assertEqual(packed["compressed_chunks"], packed["chunks"])
        self.assertLess(packed["data_sent"], plain["data_sent"] // 20)
        auto = c.upload("auto.txt", text, compress="auto")
        self.assertEqual(auto["compressed_chunks"], auto["chunks"])
        noise = os.urandom(MiB)
        rnd = c.upload("noise", noise, compress="auto")
        self.assertTrue(rnd["verified"])
        self.assertEqual(rnd["compressed_chunks"], 0)
        self.assertEqual(rnd["data_sent"], MiB)
        ev = [e for e in self.server.events if e.get("event") == "put_done"
              and e["name"] == "packed.txt"][-1]
        self.assertEqual(ev["data_in"], packed["data_sent"])
        self.assertEqual(ev["plain_in"], MiB)
        self.assertEqual(c.get("packed.txt")["data"], text)


class UploadRefusals(PeerTest):
    def refused(self, fault, reason, data=None):
        c, _, _ = self.account("u-%s" % fault)
        with self.assertRaises(RemoteError) as e:
            c.upload("f", data if data is not None else gen_bytes(5000), fault=fault)
        self.assertEqual(e.exception.reason, reason)
        with self.assertRaises(sdpeer.PeerError):  # and the connection is closed
            c.list()
        return c

    def test_wrong_offset(self):
        self.refused("wrong_offset", sdpeer4.MISMATCH)

    def test_deflate_bomb(self):
        self.refused("bomb", sdpeer4.BAD_REQUEST)
        self.assertTrue(any(e.get("event") == "refused_inflate" and e["got"] == 2
                            for e in self.server.events))

    def test_chunk_over_max_chunk(self):
        self.refused("oversize", sdpeer4.BAD_REQUEST, gen_bytes(2 * MiB))

    def test_short_inflate(self):
        self.refused("short_inflate", sdpeer4.BAD_REQUEST)

    def test_unknown_flag_bits(self):
        self.refused("bad_flags", sdpeer4.BAD_REQUEST)

    def test_wrong_sha_keeps_the_old_verified_file(self):
        c, _, _ = self.account("wrongsha")
        old = b"version one"
        c.upload("f", old)
        with self.assertRaises(RemoteError) as e:
            c.upload("f", b"version two!", fault="wrong_sha")
        self.assertEqual(e.exception.reason, sdpeer4.MISMATCH)
        files = c.list()
        self.assertEqual([(f["name"], f["sha256"]) for f in files],
                         [("f", hashlib.sha256(old).hexdigest())])
        self.assertEqual(c.get("f")["data"], old)
        self.assertEqual(c.put_open(12, "f")["offset"], 0)  # the partial was discarded


class TLSRefusals(PeerTest):
    def test_no_client_certificate(self):
        c = self.client(identity=None)
        c.connect()  # TLS 1.3: the client learns of the refusal on its first read
        with self.assertRaises((sdpeer.PeerError, ssl.SSLError, OSError)):
            c.whoami()

    def test_tls12_only(self):
        with self.assertRaises(ssl.SSLError):
            self.client(tls12=True).connect()

    def test_other_alpn(self):
        with self.assertRaises(ssl.SSLError) as e:
            self.client(alpn=["http/1.1"]).connect()
        self.assertIn("NO APPLICATION PROTOCOL", str(e.exception).upper().replace("_", " "))

    def test_no_alpn(self):
        c = self.client(alpn=None)
        try:
            c.connect()
            c.whoami()
        except (sdpeer.PeerError, ssl.SSLError, OSError):
            pass
        else:
            self.fail("a client without ALPN was served")

    def test_pinning(self):
        c = self.client(expect_fp="SHA256:" + "A" * 43)
        with self.assertRaises(sdpeer4.PinError) as e:
            c.connect()
        self.assertEqual(e.exception.got, self.server.fingerprint())
        self.assertIsNone(c.sock)
        with tmpdir() as d:
            ks = os.path.join(d, "known_servers")
            c = self.client(known_servers=ks)
            self.assertEqual(c.connect()["pin"], "recorded")
            with open(ks) as f:
                self.assertEqual(f.read(), "127.0.0.1:%d %s\n"
                                 % (self.port, self.server.fingerprint()))
            self.assertEqual(self.client(known_servers=ks).connect()["pin"], "matched")
            with open(ks, "w") as f:
                f.write("127.0.0.1:%d SHA256:%s\n" % (self.port, "B" * 43))
            with self.assertRaises(sdpeer4.PinError) as e:
                self.client(known_servers=ks).connect()
            self.assertEqual(e.exception.line, 1)

    def test_version3_code_inside_tls(self):
        c, _, _ = self.account("v3in4")
        c.request(sdpeer.REGISTER, sdpeer.name_field("x"), version=3)
        with self.assertRaises(RemoteError) as e:
            c.expect(sdpeer4.OK)
        self.assertEqual(e.exception.reason, sdpeer4.BAD_REQUEST)
        with self.assertRaises(sdpeer.PeerError):
            c.recv()

    def test_version4_code_outside_tls(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(sdpeer.encode_request(sdpeer.ZERO_ID, sdpeer4.WHOAMI, b"", 4))
            hdr, _ = sdpeer.read_response(s)
            self.assertEqual(hdr["code"], sdpeer.ERROR)
            self.assertEqual(s.recv(1), b"")  # closed


class Detection(PeerTest):
    def test_a_version3_id_starting_with_0x16_is_served_as_version3(self):
        # An ID issued before the 0x16 rule: not a ClientHello shape, so version 3.
        cid = bytes([0x16, 0x00, 0x00]) + os.urandom(13)
        with sdpeer.PeerClient("127.0.0.1", self.port) as v3:
            v3.connect()
            code, _, echoed = v3.reconnect("nobody-%s" % cid.hex()[:8], cid,
                                           sdpeer.RSAKey.generate())
        self.assertEqual(code, sdpeer.RECONNECT_DENIED)  # a version-3 answer
        self.assertNotEqual(echoed[0], 0x16)  # a new pending ID, never 0x16 first
        self.assertTrue(any(e.get("event") == "v3_request" and e["code"] == 827
                            for e in self.server.events))

    def test_ids_never_start_with_0x16(self):
        with self.server.lock:
            ids = [self.server._new_client("probe-%d" % i) for i in range(2000)]
            for i in range(2000):
                del self.server.clients["probe-%d" % i]
        self.assertNotIn(0x16, {i[0] for i in ids})
        self.assertGreater(len({i[0] for i in ids}), 200)  # otherwise random


class ServerFaults(unittest.TestCase):
    def serve(self, d, **kw):
        s = Server4(os.path.join(d, "storage"), **kw)
        s.start()
        self.addCleanup(s.stop)
        return s

    def test_drop_after_n_bytes_then_resume_exactly_there(self):
        with tmpdir() as d:
            s = self.serve(d, drop_upload_after=250000, max_chunk=65536)
            c = Client4("127.0.0.1", s.port, identity=Identity.generate())
            c.connect()
            c.register(sdpeer.RSAKey.generate(), "dropme")
            data = gen_bytes(600000, seed=5)
            with self.assertRaises((sdpeer.PeerError, OSError, RemoteError)):
                c.upload("d.bin", data)
            c.close()
            c2 = Client4("127.0.0.1", s.port, identity=c.identity)
            c2.connect()
            self.assertEqual(c2.whoami()["name"], "dropme")
            res = c2.upload("d.bin", data)
            c2.close()
            self.assertEqual(res["resumed_from"], 250000)
            self.assertEqual(res["max_chunk"], 65536)
            self.assertEqual(res["data_sent"], 350000)
            self.assertTrue(res["verified"])

    def test_forget_makes_link_fail_and_the_client_register_anew(self):
        with tmpdir() as d:
            s = self.serve(d, forget=1)
            me = os.path.join(d, "me")
            os.mkdir(me)
            key = sdpeer.RSAKey.generate()
            c = Client4("127.0.0.1", s.port)
            first = sdpeer4.ensure_account(c, me, "olga", new_rsa=key)
            c.close()
            self.assertEqual(first["flow"], "registered")
            c = Client4("127.0.0.1", s.port)
            again = sdpeer4.ensure_account(c, me)
            c.close()
            self.assertEqual(again["flow"], "reregistered")
            self.assertNotEqual(again["id"], first["id"])
            self.assertEqual(sdpeer4.read_me_info(os.path.join(me, "me.info"))[1].hex(),
                             again["id"])
            self.assertEqual([e["name"] for e in s.events if e["event"] == "forgot"],
                             ["olga"])
            c = Client4("127.0.0.1", s.port)
            self.assertEqual(sdpeer4.ensure_account(c, me)["flow"], "known")
            c.close()
            # me.info without me.key: a version-3 user's first version-4 contact links
            os.remove(os.path.join(me, "me.key"))
            c = Client4("127.0.0.1", s.port)
            linked = sdpeer4.ensure_account(c, me)
            c.close()
            self.assertEqual((linked["flow"], linked["id"]), ("linked", again["id"]))
            self.assertTrue(os.path.exists(os.path.join(me, "me.key")))

    def test_restart_keeps_accounts_files_and_resumes_at_the_recorded_offset(self):
        with tmpdir() as d:
            s = self.serve(d, drop_upload_after=150000, max_chunk=65536)
            c = Client4("127.0.0.1", s.port, identity=Identity.generate())
            c.connect()
            w = c.register(sdpeer.RSAKey.generate(), "rita")
            c.upload("kept", b"kept across restarts")
            data = gen_bytes(400000, seed=11)
            with self.assertRaises((sdpeer.PeerError, OSError, RemoteError)):
                c.upload("r.bin", data)
            c.close()
            s.stop()
            # as after a kill -9: bytes past the recorded offset are cut at start-up
            with open(os.path.join(d, "storage", "state.json")) as f:
                part = json.load(f)["partials"][0]
            self.assertEqual(part["offset"], 150000)
            with open(part["path"], "ab") as f:
                f.write(b"junk beyond the recorded offset")
            s2 = self.serve(d, port=s.port)
            self.assertEqual(s2.fingerprint(), s.fingerprint())
            c = Client4("127.0.0.1", s2.port, identity=c.identity)
            c.connect()
            self.assertEqual(c.whoami(), w)
            self.assertEqual([f["name"] for f in c.list()], ["kept"])
            res = c.upload("r.bin", data)
            self.assertEqual((res["resumed_from"], res["restarted"]), (150000, False))
            self.assertTrue(res["verified"])
            self.assertEqual(c.get("r.bin")["data"], data)
            c.close()
            s2.stop()
            s3 = self.serve(d, port=s.port, fresh=True)  # fresh: nothing known
            c = Client4("127.0.0.1", s3.port, identity=c.identity)
            c.connect()
            self.assertIsNone(c.whoami())
            c.close()

    def test_wrong_sha_in_put_done(self):
        with tmpdir() as d:
            s = self.serve(d, wrong_done_sha=1)
            c = Client4("127.0.0.1", s.port, identity=Identity.generate())
            c.connect()
            c.register(sdpeer.RSAKey.generate(), "liar")
            self.assertFalse(c.upload("a", b"abc")["verified"])
            self.assertTrue(c.upload("a", b"abc")["verified"])
            c.close()

    def test_mitm_key_and_v3_only(self):
        with tmpdir() as d:
            s = self.serve(d)
            ks = os.path.join(d, "known_servers")
            c = Client4("127.0.0.1", s.port, identity=Identity.generate(), known_servers=ks)
            c.connect()
            c.close()
            real = s.fingerprint()
            s.stop()
            m = self.serve(d, port=s.port, mitm=True)  # same port, same tls_key file, other key
            self.assertNotEqual(m.fingerprint(), real)
            c = Client4("127.0.0.1", m.port, identity=Identity.generate(), known_servers=ks)
            with self.assertRaises(sdpeer4.PinError) as e:
                c.connect()
            self.assertEqual((e.exception.expected, e.exception.got), (real, m.fingerprint()))
            m.stop()
            again = self.serve(d, port=s.port)  # restart: the key file persists
            self.assertEqual(again.fingerprint(), real)
            again.stop()
            old = self.serve(d, port=s.port, v3_only=True)
            c = Client4("127.0.0.1", old.port, identity=Identity.generate())
            with self.assertRaises((ssl.SSLError, OSError)):
                c.connect()
            # The server thread records the event after its reply: wait for it (bounded).
            deadline = time.monotonic() + 5
            while not any(e["event"] == "v3_only_refused" for e in old.events) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(any(e["event"] == "v3_only_refused" for e in old.events))
            old.stop()
            closer = self.serve(d, port=s.port, v3_only="close")
            c = Client4("127.0.0.1", closer.port, identity=Identity.generate())
            with self.assertRaises((ssl.SSLError, OSError)):
                c.connect()
            deadline = time.monotonic() + 5
            while not any(e["event"] == "v3_only_refused" for e in closer.events) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual([e["how"] for e in closer.events
                              if e["event"] == "v3_only_refused"], ["close"])
            # version 3 itself is still served there
            with sdpeer.PeerClient("127.0.0.1", closer.port) as v3:
                v3.connect()
                self.assertEqual(v3.full_session("oldie", "f", b"abc")["step"], "crc_ok")


GNUTLS_CLI, GNUTLS_SERV, CERTTOOL = (shutil.which(x) for x in
                                     ("gnutls-cli", "gnutls-serv", "certtool"))
TLS13_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.3"


@unittest.skipUnless(GNUTLS_CLI and GNUTLS_SERV and CERTTOOL, "gnutls-bin not installed")
class GnuTLSInterop(unittest.TestCase):
    """The peer's certificates, fingerprints and TLS settings against GnuTLS's own tools,
    the library our C sides use: a third implementation for what both peers must agree on."""

    def test_fingerprint_equals_gnutls_public_key_pin(self):
        with tmpdir() as d:
            p = os.path.join(d, "me.key")
            ident = Identity.generate()
            ident.save(p)
            out = subprocess.run([CERTTOOL, "--certificate-info", "--infile", p],
                                 stdout=subprocess.PIPE, text=True, timeout=30,
                                 check=True).stdout
            pin = re.search(r"pin-sha256:([A-Za-z0-9+/=]+)", out).group(1)
            self.assertEqual("SHA256:" + pin.rstrip("="), ident.fingerprint())

    def test_python_client_against_gnutls_serv(self):
        with tmpdir() as d:
            pem = os.path.join(d, "server.pem")
            server_id = Identity.generate()
            server_id.save(pem)
            port = harness.free_port()
            log = open(os.path.join(d, "serv.log"), "wb")
            srv = subprocess.Popen([GNUTLS_SERV, "--echo", "-p", str(port), "--priority",
                                    TLS13_ONLY, "--alpn", "sealdrop/4", "--alpn-fatal",
                                    "--require-client-cert", "--x509certfile", pem,
                                    "--x509keyfile", pem], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                c = Client4("127.0.0.1", port, identity=Identity.generate())
                info = c.connect()
                self.assertEqual((info["tls_version"], info["alpn"]), ("TLSv1.3", ALPN))
                self.assertEqual(info["server_fingerprint"], server_id.fingerprint())
                c.send_frame(b"sealdrop/4 over GnuTLS\n")  # the echo server returns lines
                self.assertEqual(sdpeer.recv_exact(c.sock, 23), b"sealdrop/4 over GnuTLS\n")
                c.close()
                with self.assertRaises(ssl.SSLError):
                    Client4("127.0.0.1", port, identity=Identity.generate(),
                            alpn=["other"]).connect()
                with self.assertRaises(ssl.SSLError):
                    Client4("127.0.0.1", port, identity=Identity.generate(),
                            tls12=True).connect()
            finally:
                srv.kill()
                srv.wait(10)
                log.close()

    def test_gnutls_cli_against_the_python_server(self):
        with tmpdir() as d:
            server = Server4(os.path.join(d, "storage"))
            server.start()
            try:
                me = os.path.join(d, "me.key")  # me.key as Python writes it, read by GnuTLS
                ident = Identity.generate()
                ident.save(me)
                cmd = [GNUTLS_CLI, "127.0.0.1", "-p", str(server.port), "--insecure",
                       "--priority", TLS13_ONLY, "--alpn", "sealdrop/4",
                       "--x509certfile", me, "--x509keyfile", me,
                       "--logfile", os.path.join(d, "cli.log")]
                p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
                try:
                    p.stdin.write(sdpeer4.request4(sdpeer4.WHOAMI, b""))
                    p.stdin.flush()
                    got = b""
                    deadline = time.monotonic() + 10
                    while len(got) < 7 and time.monotonic() < deadline:
                        r, _, _ = select.select([p.stdout], [], [], 0.2)
                        if r:
                            chunk = os.read(p.stdout.fileno(), 64)
                            if not chunk:
                                break
                            got += chunk
                finally:
                    p.kill()
                    p.wait(10)
                    p.stdin.close()
                    p.stdout.close()
                # UNKNOWN: version 4, code 1611 little-endian, empty payload
                self.assertEqual(got, bytes([4, 0x4B, 0x06, 0, 0, 0, 0]))
                self.assertEqual(struct.unpack("<BHI", got), (4, sdpeer4.UNKNOWN, 0))
                tls = [e for e in server.events if e["event"] == "tls"]
                self.assertEqual(tls[-1]["client_fingerprint"], ident.fingerprint())
                # GnuTLS offering another ALPN is refused in the handshake
                r = subprocess.run(cmd[:7] + ["--alpn", "h2", "--x509certfile", me,
                                              "--x509keyfile", me], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=30, text=True)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("No supported application protocol", r.stdout)
            finally:
                server.stop()


class CLI(unittest.TestCase):
    def run_peer(self, *args, timeout=60):
        p = subprocess.run([PYTHON, PEER4] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        self.assertTrue(lines, p.stderr)
        self.assertEqual(lines[-1]["event"], "result")
        self.assertEqual(lines[-1]["exit"], p.returncode)
        return p.returncode, lines[-1], lines

    def test_cli_flows(self):
        with tmpdir() as d:
            me = os.path.join(d, "me")
            os.mkdir(me)
            srv = harness.Server(d, binary=PEER4_SERVER, args=["--storage", "st",
                                                                          "--forget", "0"])
            with srv:
                addr = srv.address
                fp = srv.wait_for_log(r'"fingerprint": "(SHA256:[^"]+)"').group(1)
                rc, res, lines = self.run_peer("login", addr, "--dir", me, "--name", "zoe")
                self.assertEqual(rc, 0, res)
                self.assertEqual(res["account"]["flow"], "registered")
                tls = [x for x in lines if x["event"] == "tls"][0]
                self.assertEqual((tls["pin"], tls["server_fingerprint"]), ("recorded", fp))
                f = os.path.join(d, "data.txt")
                with open(f, "wb") as fh:
                    fh.write(compressible(300000))
                rc, res, _ = self.run_peer("put", addr, f, "--dir", me, "--compress", "yes")
                self.assertEqual(rc, 0, res)
                self.assertLess(res["data_sent"], 300000 // 10)
                self.assertEqual(res["account"]["flow"], "known")
                rc, res, _ = self.run_peer("list", addr, "--dir", me)
                self.assertEqual([x["name"] for x in res["files"]], ["data.txt"])
                out = os.path.join(d, "back.txt")
                rc, res, _ = self.run_peer("get", addr, "data.txt", "-o", out, "--dir", me)
                self.assertEqual(rc, 0, res)
                with open(out, "rb") as a, open(f, "rb") as b:
                    self.assertEqual(a.read(), b.read())
                rc, res, _ = self.run_peer("get", addr, "data.txt", "-o", out, "--dir", me,
                                           "--offset", "1000")
                self.assertEqual((rc, res["received"]), (0, 299000))
                rc, res, _ = self.run_peer("rm", addr, "data.txt", "--dir", me)
                self.assertEqual(rc, 0)
                rc, res, _ = self.run_peer("rm", addr, "data.txt", "--dir", me)
                self.assertEqual((rc, res["error"], res["reason"]), (1, "remote", 5))
                rc, res, _ = self.run_peer("list", addr, "--dir", me, "--no-login")
                self.assertEqual((rc, res["reason"]), (1, 3))
                rc, res, _ = self.run_peer("raw", addr, "825", "--version", "3",
                                           "--payload-hex", "00" * 255, "--dir", me)
                self.assertEqual((res["code"], res["error"]["reason"]), (1619, 1))
                rc, res, _ = self.run_peer("whoami", addr, "--dir", me,
                                           "--server-key", "SHA256:" + "C" * 43)
                self.assertEqual((rc, res["error"]), (10, "pin"))
                rc, res, _ = self.run_peer("whoami", addr, "--dir", me, "--tls12")
                self.assertEqual((rc, res["error"]), (2, "connection"))
                rc, res, _ = self.run_peer("link", addr, "--dir", me, "--wrong-nonce")
                self.assertEqual((rc, res["reason"]), (1, 4))
                rc, res, _ = self.run_peer("link", addr, "--dir", me, "--prove-twice")
                self.assertEqual((rc, res["reason"]), (1, 4))
                rc, res, _ = self.run_peer("link", addr, "--dir", me)
                self.assertEqual(rc, 0, res)
            # The server forgets the account: LINK gets ERROR 3, the client registers anew.
            with open(os.path.join(me, "me.info")) as fh:
                old_id = fh.read().split("\n")[1]
            srv = harness.Server(d, binary=PEER4_SERVER,
                                 args=["--storage", "st", "--forget", "1"])
            with srv:
                # a fresh port: a new known_servers line (same key file, so same key)
                rc, res, _ = self.run_peer("login", srv.address, "--dir", me)
                self.assertEqual(rc, 0, res)
                self.assertEqual(res["account"]["flow"], "reregistered")
                self.assertNotEqual(res["account"]["id"], old_id)
                with open(os.path.join(me, "me.info")) as fh:
                    self.assertEqual(fh.read().split("\n")[1], res["account"]["id"])
                self.assertIn('"event": "forgot"', srv.log(since_start=True))


if __name__ == "__main__":
    run_tests()

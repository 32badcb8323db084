"""test_peer_fixtures: checks the Python peer (tests/peer/sdpeer.py) against the recorded
clients and Crypto++ vectors of ../shared/fixtures, and against itself with every fault
switch, so that the C tests can trust it as an independent second implementation."""

import json
import os
import random
import socket
import struct
import subprocess
import unittest

import harness
from harness import FIXTURES, gen_bytes, gnu_cksum, run_tests, tmpdir
import sdpeer

CLIENTS = os.path.join(FIXTURES, "clients")
CRYPTOPP = os.path.join(FIXTURES, "cryptopp")

# Which sender layout each recorded client uses, with its packet size (fixtures README 1).
LAYOUTS = {
    "client-fixed1024-from1": ("padded", 1024),
    "client-fixed1024-from0": ("padded0", 1024),
    "client-var8192-from1": ("split", 8192),
    "client-perpacket-swapped": ("perpacket", 1024),
}


def load_json(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def read_bytes(*parts):
    with open(os.path.join(*parts), "rb") as f:
        return f.read()


def runs():
    return load_json(CLIENTS, "index.json")["runs"]


def parse_requests(data):
    """Every request of a c2s recording, with the offset of its header."""
    stream = sdpeer.ByteStream(data)
    out = []
    while not stream.at_eof():
        offset = stream.pos
        hdr, payload = sdpeer.read_request(stream)
        out.append((offset, hdr, payload))
    return out


def parse_responses(data):
    stream = sdpeer.ByteStream(data)
    out = []
    while not stream.at_eof():
        offset = stream.pos
        hdr, payload = sdpeer.read_response(stream)
        out.append((offset, hdr, payload))
    return out


def file_payloads(run_dir):
    return [p for _, h, p in parse_requests(read_bytes(run_dir, "c2s.bin"))
            if h["code"] == sdpeer.SEND_FILE]


class RecordedClients(unittest.TestCase):
    def test_fixtures_present(self):
        # A missing folder is a broken set-up (SEALDROP_FIXTURES), not a reason to skip.
        self.assertTrue(os.path.isdir(CLIENTS), CLIENTS)
        self.assertTrue(os.path.isdir(CRYPTOPP), CRYPTOPP)

    def test_index_has_16_runs(self):
        self.assertEqual(len(runs()), 16)
        self.assertEqual({r["client"] for r in runs()}, set(LAYOUTS))

    def test_request_parser_reads_every_c2s(self):
        for run in runs():
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                data = read_bytes(d, "c2s.bin")
                msgs = [m for m in load_json(d, "messages.json")["messages"]
                        if m["dir"] == "c2s"]
                got = parse_requests(data)
                self.assertEqual([h["code"] for _, h, _ in got], run["request_codes"])
                self.assertEqual([(o, h["payload_size"]) for o, h, _ in got],
                                 [(m["offset"], m["payload_size"]) for m in msgs])
                self.assertEqual([h["client_id"].hex() for _, h, _ in got],
                                 [m["header_client_id"] for m in msgs])
                swapped = run["client"] == "client-perpacket-swapped"
                for (_, h, p), m in zip(got, msgs):
                    if h["code"] != sdpeer.SEND_FILE:
                        continue
                    f = sdpeer.decode_file_packet(p, swapped=swapped)
                    for k in ("content_size", "orig_file_size", "packet_number",
                              "total_packets"):
                        self.assertEqual(f[k], m["fields"][k], k)
                    self.assertEqual(sdpeer.field_bytes(f["file_name_field"]).decode(),
                                     m["fields"]["file_name"])
                    self.assertEqual(len(f["content"]), m["fields"]["content_length"])

    def test_response_parser_reads_every_s2c(self):
        for run in runs():
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                got = parse_responses(read_bytes(d, "s2c.bin"))
                codes = [h["code"] for _, h, _ in got]
                # One 1604 per 900: the from0 client sends three.
                self.assertEqual([c for c in codes if c != sdpeer.ACK],
                                 [c for c in run["response_codes"] if c != sdpeer.ACK])
                for _, h, p in got:
                    if h["code"] == sdpeer.FILE_CRC:
                        crc = sdpeer.decode_file_crc(p)
                        self.assertEqual(crc["cksum"], run["upload_cksum"])
                        self.assertEqual(crc["client_id"].hex(), run["client_id"])
                        self.assertEqual(crc["file_name"], run["upload_file"])

    def test_parser_rejects_truncated_stream(self):
        d = os.path.join(CLIENTS, runs()[0]["dir"])
        data = read_bytes(d, "c2s.bin")
        with self.assertRaises(sdpeer.PeerError):
            parse_requests(data[:-1])
        with self.assertRaises(sdpeer.PeerError):
            parse_requests(data + b"\0" * 5)

    def test_reassembly_gives_upload_and_cksum(self):
        for run in runs():
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                keys = load_json(d, "keys.json")
                upload = read_bytes(d, run["upload_file"])
                res = sdpeer.reassemble(file_payloads(d), bytes.fromhex(run["aes_key"]))
                self.assertEqual(res["plaintext"], upload)
                self.assertEqual(sdpeer.cksum(res["plaintext"]), run["upload_cksum"])
                self.assertEqual(res["content_size"], keys["server_1603"]["content_size"])
                self.assertEqual(res["file_name"].decode(), run["upload_file"])
                self.assertEqual(res["layout"] == "perpacket",
                                 run["client"] == "client-perpacket-swapped")
                old = keys.get("previous_run_aes_key")
                if old:
                    try:
                        bad = sdpeer.reassemble(file_payloads(d), bytes.fromhex(old))
                    except sdpeer.UploadError:
                        pass
                    else:
                        self.assertNotEqual(bad["plaintext"], upload)

    def test_reassembly_rejects_inconsistent_uploads(self):
        run = next(r for r in runs() if r["dir"] == "client-var8192-from1/first-run-20000")
        d = os.path.join(CLIENTS, run["dir"])
        key = bytes.fromhex(run["aes_key"])
        pk = file_payloads(d)
        with self.assertRaises(sdpeer.UploadError):  # missing packet
            sdpeer.reassemble([pk[0], pk[2]], key)
        with self.assertRaises(sdpeer.UploadError):  # incomplete
            sdpeer.reassemble(pk[:2], key)
        renamed = bytearray(pk[1])
        renamed[12] ^= 1
        with self.assertRaises(sdpeer.UploadError):  # name change mid-upload
            sdpeer.reassemble([pk[0], bytes(renamed), pk[2]], key)
        for extra in (b"\0" * 16, b"\1"):  # more bytes than announced
            with self.assertRaises(sdpeer.UploadError):
                sdpeer.reassemble([pk[0], pk[1], pk[2] + extra], key)
        padded = sdpeer.packetize(read_bytes(d, run["upload_file"]), key, run["upload_file"],
                                  "padded", 8192)
        self.assertEqual(sdpeer.reassemble(padded, key)["plaintext"],
                         read_bytes(d, run["upload_file"]))
        with self.assertRaises(sdpeer.UploadError):  # non-zero fill
            sdpeer.reassemble(padded[:2] + [padded[2][:-1] + b"\1"], key)
        bad_orig = bytearray(pk[0])
        bad_orig[4:8] = struct.pack("<I", 19999)
        with self.assertRaises(sdpeer.UploadError):
            sdpeer.reassemble([bytes(bad_orig)] + [bytes(bad_orig[:12]) + p[12:]
                                                   for p in pk[1:]], key)

    def test_packetize_reproduces_recorded_828s(self):
        for run in runs():
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                variant, size = LAYOUTS[run["client"]]
                upload = read_bytes(d, run["upload_file"])
                made = sdpeer.packetize(upload, bytes.fromhex(run["aes_key"]),
                                        run["upload_file"], variant, size)
                self.assertEqual(made, file_payloads(d))

    def test_whole_828_requests_of_var8192_byte_identical(self):
        for run in runs():
            if run["client"] != "client-var8192-from1":
                continue
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                data = read_bytes(d, "c2s.bin")
                msgs = [m for m in load_json(d, "messages.json")["messages"]
                        if m["dir"] == "c2s" and m["code"] == sdpeer.SEND_FILE]
                recorded = b"".join(data[m["offset"]:m["payload_offset"] + m["payload_size"]]
                                    for m in msgs)
                cid = bytes.fromhex(run["client_id"])
                made = b"".join(sdpeer.encode_request(cid, sdpeer.SEND_FILE, p) for p in
                                sdpeer.packetize(read_bytes(d, run["upload_file"]),
                                                 bytes.fromhex(run["aes_key"]),
                                                 run["upload_file"], "split", 8192))
                self.assertEqual(made, recorded)

    def test_keys_load_and_unwrap(self):
        for run in runs():
            with self.subTest(run=run["dir"]):
                d = os.path.join(CLIENTS, run["dir"])
                keys = load_json(d, "keys.json")
                raw = read_bytes(d, "priv.key")
                if run["client"] == "client-perpacket-swapped":
                    from_priv = sdpeer.RSAKey.from_der(raw)
                else:
                    from_priv = sdpeer.RSAKey.from_base64(raw)
                lines = read_bytes(d, "me.info").split(b"\n", 2)
                self.assertEqual(lines[0].rstrip(b"\0").decode(), keys["client_name"])
                self.assertEqual(lines[1].decode(), run["client_id"])
                from_me = sdpeer.RSAKey.from_base64(lines[2])
                blob = bytes.fromhex(keys["encrypted_aes_key"])
                for k in (from_priv, from_me):
                    self.assertEqual(k.unwrap(blob).hex(), run["aes_key"])
                    self.assertEqual(k.spki().hex(), keys["public_key_spki"])
                    self.assertEqual(k.e, 17)
                    self.assertEqual(len(k.spki()), 160)
                pub = sdpeer.RSAKey.public_from_spki(bytes.fromhex(keys["public_key_spki"]))
                self.assertEqual(pub.n, from_priv.n)
                if run["run"] == "first-run":
                    msg = next(m for m in load_json(d, "messages.json")["messages"]
                               if m["code"] == sdpeer.PUBLIC_KEY)
                    self.assertEqual(msg["fields"]["public_key_spki"], keys["public_key_spki"])


class CryptoppVectors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.manifest = load_json(CRYPTOPP, "manifest.json")

    def test_keys(self):
        r = self.manifest["rsa"]
        spki = read_bytes(CRYPTOPP, "rsa-public-spki.der")
        pub = sdpeer.RSAKey.public_from_spki(spki)
        self.assertEqual(pub.n, int(r["n"], 16))
        self.assertEqual(pub.e, 17)
        self.assertEqual(pub.spki(), spki)
        pkcs8 = read_bytes(CRYPTOPP, "rsa-private-pkcs8.der")
        k1 = sdpeer.RSAKey.from_der(read_bytes(CRYPTOPP, "rsa-private-pkcs1.der"))
        k8 = sdpeer.RSAKey.from_der(pkcs8)
        for k in (k1, k8):
            nums = k.private.private_numbers()
            self.assertEqual(nums.d, int(r["d"], 16))
            self.assertEqual({nums.p, nums.q}, {int(r["p"], 16), int(r["q"], 16)})
            self.assertEqual(k.pkcs8_der(), pkcs8)
            self.assertEqual(k.spki(), spki)
        oneline = read_bytes(CRYPTOPP, "rsa-private-pkcs8.b64-oneline.txt")
        self.assertEqual(k8.pkcs8_base64().encode(), oneline)
        for txt in ("rsa-private-pkcs8.b64-oneline.txt", "rsa-private-pkcs8.b64-wrapped.txt"):
            self.assertEqual(sdpeer.RSAKey.from_base64(read_bytes(CRYPTOPP, txt)).pkcs8_der(),
                             pkcs8)
        aes = read_bytes(CRYPTOPP, "aes-key.bin")
        self.assertEqual(k8.unwrap(read_bytes(CRYPTOPP, "aes-key.oaep-sha1.bin")), aes)
        self.assertEqual(k1.unwrap(pub.wrap(aes)), aes)

    def test_aes_and_cksum(self):
        key = read_bytes(CRYPTOPP, "aes-key.bin")
        for n in (0, 1, 15, 16, 17, 1000, 3000):
            with self.subTest(n=n):
                plain = read_bytes(CRYPTOPP, "plain-%d.bin" % n)
                ct = read_bytes(CRYPTOPP, "aes-cbc-%d.bin" % n)
                self.assertEqual(plain, gen_bytes(n))
                self.assertEqual(sdpeer.aes_encrypt(key, plain), ct)
                self.assertEqual(sdpeer.aes_decrypt(key, ct), plain)
                entry = next(f for f in self.manifest["files"]
                             if f["file"] == "plain-%d.bin" % n)
                self.assertEqual(sdpeer.cksum(plain), entry["cksum"])
                self.assertEqual(sdpeer.cksum_bitwise(plain), entry["cksum"])
                self.assertEqual(gnu_cksum(os.path.join(CRYPTOPP, "plain-%d.bin" % n)),
                                 entry["cksum"])

    def test_aes_rejects_bad_input(self):
        key = read_bytes(CRYPTOPP, "aes-key.bin")
        ct = read_bytes(CRYPTOPP, "aes-cbc-1000.bin")
        for bad in (b"", ct[:-1], ct[:-16] + bytes(16)):
            with self.assertRaises(ValueError):
                sdpeer.aes_decrypt(key, bad)


class OwnPrimitives(unittest.TestCase):
    def test_generated_key_shape(self):
        k = sdpeer.RSAKey.generate()
        self.assertEqual(k.e, 17)
        self.assertEqual(k.n.bit_length(), 1024)
        self.assertEqual(len(k.spki()), 160)
        again = sdpeer.RSAKey.from_base64(k.pkcs8_base64())
        self.assertEqual(again.spki(), k.spki())
        blob = sdpeer.RSAKey.public_from_spki(k.spki()).wrap(bytes(range(32)))
        self.assertEqual(len(blob), 128)
        self.assertEqual(k.unwrap(blob), bytes(range(32)))

    def test_cksum_matches_gnu_on_random_sizes(self):
        rnd = random.Random(7)
        with tmpdir() as d:
            for size in (0, 1, 2, 255, 256, 257, 4095, 65536, 65537 + rnd.randrange(999)):
                data = bytes(rnd.getrandbits(8) for _ in range(size))
                p = os.path.join(d, "f")
                with open(p, "wb") as f:
                    f.write(data)
                self.assertEqual(sdpeer.cksum(data), gnu_cksum(p), size)

    def test_framing_helpers(self):
        req = sdpeer.encode_request(b"\1" * 16, 825, sdpeer.name_field("ab"))
        self.assertEqual(len(req), 23 + 255)
        self.assertEqual(req[16:23], bytes([3, 0x39, 0x03, 0xFF, 0, 0, 0]))
        self.assertEqual(sdpeer.encode_response(1607, b""), bytes([3, 0x47, 0x06, 0, 0, 0, 0]))
        with self.assertRaises(ValueError):
            sdpeer.name_field("x" * 255)
        self.assertEqual(len(sdpeer.name_field("x" * 254)), 255)
        with self.assertRaises(sdpeer.PeerError):  # 825 of the wrong size
            sdpeer.read_request(sdpeer.ByteStream(sdpeer.encode_request(bytes(16), 825, b"a")))
        with self.assertRaises(sdpeer.PeerError):  # 1600 of the wrong size
            sdpeer.read_response(sdpeer.ByteStream(sdpeer.encode_response(1600, bytes(15))))
        with self.assertRaises(sdpeer.PeerError):  # unknown code
            sdpeer.read_response(sdpeer.ByteStream(sdpeer.encode_response(1700, b"")))

    def test_packetize_layouts(self):
        key = bytes(range(32))
        data = gen_bytes(5000)
        for variant in sdpeer.VARIANTS:
            with self.subTest(variant=variant):
                pk = sdpeer.packetize(data, key, "f.bin", variant, 1000)
                res = sdpeer.reassemble(pk, key)
                self.assertEqual(res["plaintext"], data)
                if variant == "single":
                    self.assertEqual(len(pk), 1)
                elif variant == "perpacket":
                    self.assertEqual(len(pk), 5)
                else:
                    self.assertEqual(len(pk), 6)  # 5008 bytes of ciphertext
        empty = sdpeer.packetize(b"", key, "e", "split", 1000)
        self.assertEqual(len(empty), 1)
        self.assertEqual(sdpeer.reassemble(empty, key)["plaintext"], b"")


class PeerAgainstItself(unittest.TestCase):
    TIMEOUT = 10.0

    def session(self, name, variant="split", packet_size=1000, size=5000, **faults):
        with tmpdir() as d:
            data = gen_bytes(size, seed=len(name))
            with sdpeer.PeerServer(d, **faults) as srv:
                with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                    c.connect()
                    res = c.full_session(name, "file.bin", data, variant=variant,
                                         packet_size=packet_size)
                stored = srv.stored.get("file.bin")
                on_disk = None
                if res["client_id"]:
                    p = os.path.join(d, res["client_id"].hex(), "file.bin")
                    if os.path.exists(p):
                        with open(p, "rb") as f:
                            on_disk = f.read()
            self.assertFalse([t for t in srv.threads if t.is_alive()])
            return res, data, stored, on_disk, srv

    def test_every_variant(self):
        for variant in sdpeer.VARIANTS:
            with self.subTest(variant=variant):
                res, data, stored, on_disk, srv = self.session("v-" + variant, variant)
                self.assertEqual((res["step"], res["code"], res["attempts"]),
                                 ("crc_ok", sdpeer.ACK, 1))
                self.assertEqual(res["cksum"], sdpeer.cksum(data))
                self.assertEqual(stored, data)
                self.assertEqual(on_disk, data)
                self.assertTrue(srv.clients["v-" + variant]["files"][b"file.bin"]["verified"])

    def test_wrong_crc_once_then_success(self):
        res, data, stored, _, srv = self.session("w1", wrong_crc=1)
        self.assertEqual((res["step"], res["code"], res["attempts"]), ("crc_ok", sdpeer.ACK, 2))
        codes = [r[0] for r in srv.requests]
        self.assertEqual(codes.count(sdpeer.CRC_RETRY), 1)
        self.assertEqual(codes[-1], sdpeer.CRC_OK)

    def test_wrong_crc_always_gives_902(self):
        res, _, _, _, srv = self.session("w4", wrong_crc=4)
        self.assertEqual((res["step"], res["code"], res["attempts"]),
                         ("crc_fail", sdpeer.ACK, 4))
        codes = [r[0] for r in srv.requests]
        self.assertEqual(codes.count(sdpeer.CRC_RETRY), 3)
        self.assertEqual(codes[-1], sdpeer.CRC_FAIL)
        self.assertFalse(srv.clients["w4"]["files"][b"file.bin"]["verified"])

    def test_ack_901_is_skipped_by_client(self):
        res, data, stored, _, srv = self.session("a9", wrong_crc=2, ack_901=True)
        self.assertEqual((res["step"], res["code"], res["attempts"]), ("crc_ok", sdpeer.ACK, 3))
        self.assertEqual(stored, data)

    def test_name_taken_and_error_replies(self):
        res, _, _, _, _ = self.session("nt", name_taken=True)
        self.assertEqual((res["step"], res["code"]), ("register", sdpeer.REGISTER_FAILED))
        res, _, _, _, _ = self.session("er", error_replies={sdpeer.PUBLIC_KEY: 1})
        self.assertEqual((res["step"], res["code"]), ("key", sdpeer.ERROR))

    def test_register_rules_and_reconnect(self):
        with tmpdir() as d, sdpeer.PeerServer(d) as srv:
            key = sdpeer.RSAKey.generate()
            with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                c.connect()
                code, cid = c.register("alice")
                self.assertEqual(code, sdpeer.REGISTERED)
                code, aes1 = c.send_public_key("alice", key)
                self.assertEqual(code, sdpeer.AES_KEY)
                # A key is never replaced; the name is now taken.
                self.assertEqual(c.send_public_key("alice", sdpeer.RSAKey.generate())[0],
                                 sdpeer.ERROR)
                self.assertEqual(c.register("alice")[0], sdpeer.REGISTER_FAILED)
                self.assertEqual(c.register("bad\nname")[0], sdpeer.REGISTER_FAILED)
            with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                c.connect()
                code, aes2, _ = c.reconnect("alice", cid, key)
                self.assertEqual(code, sdpeer.RECONNECTED)
                self.assertNotEqual(aes2, aes1)
                self.assertEqual(srv.clients["alice"]["aes_key"], aes2)
                r = c.upload("x.bin", b"hello", aes2)
                self.assertEqual((r["code"], r["cksum"]), (sdpeer.FILE_CRC, sdpeer.cksum(b"hello")))
                # Wrong ID for a known name: 1606 echoing the ID, nothing changes.
                code, _, echoed = c.reconnect("alice", b"\7" * 16, key)
                self.assertEqual((code, echoed), (sdpeer.RECONNECT_DENIED, b"\7" * 16))
                self.assertEqual(srv.clients["alice"]["id"], cid)
                # Unknown name: pending registration with a new ID, usable by 826.
                code, _, new_id = c.reconnect("bob", b"\7" * 16, key)
                self.assertEqual(code, sdpeer.RECONNECT_DENIED)
                self.assertEqual(srv.clients["bob"]["id"], new_id)
                self.assertEqual(c.send_public_key("bob", key)[0], sdpeer.AES_KEY)

    def test_deny_reconnect_then_826_under_pending_id(self):
        with tmpdir() as d, sdpeer.PeerServer(d, deny_reconnect=True, name_taken=True) as srv:
            key = sdpeer.RSAKey.generate()
            with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                c.connect()
                code, _, new_id = c.reconnect("carol", b"\1" * 16, key)
                self.assertEqual(code, sdpeer.RECONNECT_DENIED)
                self.assertNotEqual(new_id, sdpeer.ZERO_ID)
                self.assertEqual(c.register("carol")[0], sdpeer.REGISTER_FAILED)
                self.assertEqual(c.client_id, new_id)
                code, aes = c.send_public_key("carol", key)
                self.assertEqual(code, sdpeer.AES_KEY)
                self.assertEqual(srv.clients["carol"]["aes_key"], aes)

    def test_invalid_requests_get_1607_and_connection_survives(self):
        with tmpdir() as d, sdpeer.PeerServer(d) as srv:
            with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                c.connect()
                c.request(999, b"xyz")
                self.assertEqual(c.recv()[0], sdpeer.ERROR)
                c.request(sdpeer.REGISTER, b"short")
                self.assertEqual(c.recv()[0], sdpeer.ERROR)
                c.request(sdpeer.SEND_FILE, bytes(300))  # unknown client
                self.assertEqual(c.recv()[0], sdpeer.ERROR)
                self.assertEqual(c.register("dave")[0], sdpeer.REGISTERED)

    def test_stored_names_stay_in_the_client_folder(self):
        with tmpdir() as top:
            d = os.path.join(top, "st")
            with sdpeer.PeerServer(d) as srv:
                with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                    c.connect()
                    c.register("gina")
                    _, aes = c.send_public_key("gina", sdpeer.RSAKey.generate())
                    for name in ("../up.bin", ".."):
                        r = c.upload(name, b"data", aes)
                        self.assertEqual((r["code"], r["file_name"]), (sdpeer.FILE_CRC, name))
                    folder = os.path.join(d, c.client_id.hex())
            self.assertEqual(sorted(os.listdir(d)), [c.client_id.hex()])
            self.assertEqual(sorted(os.listdir(folder)), ["unnamed", "up.bin"])
            self.assertEqual(sorted(os.listdir(top)), ["st"])

    def test_drop_and_stall(self):
        with tmpdir() as d, sdpeer.PeerServer(d, drop_on=sdpeer.PUBLIC_KEY) as srv:
            with sdpeer.PeerClient("127.0.0.1", srv.port, self.TIMEOUT) as c:
                c.connect()
                self.assertEqual(c.register("eve")[0], sdpeer.REGISTERED)
                with self.assertRaises(sdpeer.PeerError):
                    c.send_public_key("eve", sdpeer.RSAKey.generate())
        with tmpdir() as d, sdpeer.PeerServer(d, stall_on=sdpeer.REGISTER) as srv:
            with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=1.0) as c:
                c.connect()
                with self.assertRaises(sdpeer.PeerError):
                    c.register("frank")
            self.assertEqual([r[0] for r in srv.requests], [sdpeer.REGISTER])

    def test_oversized_frame_closes_connection(self):
        with tmpdir() as d, sdpeer.PeerServer(d) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=self.TIMEOUT) as s:
                s.sendall(bytes(16) + struct.pack("<BHI", 3, 825, 1 << 20))
                self.assertEqual(s.recv(16), b"")

    def test_cli_serve_and_upload(self):
        peer = os.path.join(os.path.dirname(sdpeer.__file__), "sdpeer.py")
        with tmpdir() as d:
            f = os.path.join(d, "up.bin")
            with open(f, "wb") as out:
                out.write(gen_bytes(3000))
            srv = subprocess.Popen(["/usr/bin/python3", peer, "serve", "--storage",
                                    os.path.join(d, "st"), "--wrong-crc", "1"],
                                   stdout=subprocess.PIPE, text=True)
            try:
                line = srv.stdout.readline()
                self.assertRegex(line, r"^listening on 127\.0\.0\.1:\d+$")
                port = line.strip().rsplit(":", 1)[1]
                up = subprocess.run(["/usr/bin/python3", peer, "upload", "127.0.0.1:" + port,
                                     "cli user", f, "--variant", "padded", "--packet-size",
                                     "1024"], stdout=subprocess.PIPE, text=True, timeout=60)
                self.assertEqual(up.returncode, 0, up.stdout)
            finally:
                srv.terminate()
                try:
                    self.assertEqual(srv.wait(timeout=15), 0)
                except subprocess.TimeoutExpired:
                    srv.kill()
                    srv.wait(timeout=5)
                    raise
                srv.stdout.close()
            stored = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(d, "st"))
                      for n in ns]
            self.assertEqual(len(stored), 1)
            with open(stored[0], "rb") as fh:
                self.assertEqual(fh.read(), gen_bytes(3000))


class Harness(unittest.TestCase):
    """The harness itself, with the Python server standing in for bin/sealdrop-server."""

    def test_server_start_session_stop(self):
        with tmpdir() as d:
            srv = harness.Server(d, ["--storage", "st", "--wrong-crc", "1"],
                                 binary=harness.PEER_SERVER)
            with srv:
                self.assertTrue(srv.running())
                self.assertEqual(srv.address, "127.0.0.1:%d" % srv.port)
                with sdpeer.PeerClient("127.0.0.1", srv.port, 10.0) as c:
                    c.connect()
                    res = c.full_session("h", "h.bin", b"harness", variant="single")
                self.assertEqual((res["code"], res["attempts"]), (sdpeer.ACK, 2))
                self.assertEqual(srv.stop(), 0)
            self.assertFalse(srv.running())
            # A restart in the same folder must find its own new port line, not the old one.
            srv2 = harness.Server(d, ["--storage", "st"], binary=harness.PEER_SERVER).start()
            try:
                self.assertIn("listening on", srv2.log(since_start=True))
                self.assertEqual(srv2.log(since_start=True).count("listening on"), 1)
                self.assertEqual(srv2.log().count("listening on"), 2)
                with socket.create_connection(("127.0.0.1", srv2.port), timeout=10):
                    pass
            finally:
                self.assertEqual(srv2.kill9(), -9)

    def test_server_that_never_listens_fails_fast(self):
        with tmpdir() as d:
            srv = harness.Server(d, binary=["/bin/sh", "-c", "echo boom >&2; exit 3", "sh"])
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn("boom", str(cm.exception))
            self.assertEqual(srv.proc.returncode, 3)

    def test_run_client_and_files(self):
        with tmpdir() as d:
            p = harness.write_transfer_info(d, "127.0.0.1:1234", "Some One", "/x/y.bin")
            with open(p) as f:
                self.assertEqual(f.read().split("\n"), ["127.0.0.1:1234", "Some One",
                                                        "/x/y.bin", ""])
            r = harness.run_client(d, ["-c", "cat transfer.info; echo err >&2; exit 4"],
                                   binary=["/bin/sh"], timeout=10)
            self.assertEqual((r.returncode, r.stderr), (4, "err\n"))
            self.assertTrue(r.stdout.startswith("127.0.0.1:1234\n"))
            f = harness.make_file(os.path.join(d, "g"), 20000)
            up = os.path.join(CLIENTS, "client-var8192-from1", "first-run-20000",
                              "upload-20000.bin")
            self.assertEqual(read_bytes(f), read_bytes(up))
            self.assertEqual(gnu_cksum(f), 1512812613)
            # make_file packs many generator steps into big integers: compare it with the
            # definition, one step at a time, across several of its row boundaries.
            size = 3 * (1 << 16) + 5
            x, expect = 5, bytearray(size)
            for i in range(size):
                x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
                expect[i] = x >> 24
            harness.make_file(f, size, seed=5)
            self.assertEqual(read_bytes(f), bytes(expect))
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    run_tests()

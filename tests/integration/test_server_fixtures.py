"""The recordings of four independently written clients (../shared/fixtures/clients) replayed
live against the real sealdrop-server: each recorded request stream is sent as recorded, with
only the client ID our server issued put into the headers and the 828 contents re-encrypted
under the AES key our server issued (unwrapped with the fixture client's own private key).
The responses must follow the recorded codes, the 1603 must carry the recorded cksum and
content_size, and the stored file must equal the upload."""

import json
import os
import struct
import unittest

import harness
import sdpeer
import server_helpers as sh

CLIENTS = os.path.join(harness.FIXTURES, "clients")
# Requests that the server answers (828 only on its last packet, 901 never).
ANSWERED = (sdpeer.REGISTER, sdpeer.PUBLIC_KEY, sdpeer.RECONNECT, sdpeer.CRC_OK,
            sdpeer.CRC_FAIL)


def load_private_key(run_dir):
    with open(os.path.join(run_dir, "priv.key"), "rb") as f:
        raw = f.read()
    try:
        return sdpeer.RSAKey.from_base64(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError, sdpeer.PeerError):
        return sdpeer.RSAKey.from_der(raw)


class Replay:
    """One recorded run sent to our server."""

    def __init__(self, test, port, run_dir, id_map):
        self.test, self.port, self.dir, self.id_map = test, port, run_dir, id_map
        with open(os.path.join(run_dir, "messages.json")) as f:
            self.messages = json.load(f)
        with open(os.path.join(run_dir, "keys.json")) as f:
            self.keys = json.load(f)
        with open(os.path.join(run_dir, "c2s.bin"), "rb") as f:
            self.c2s = f.read()
        upload = self.keys["upload"]
        with open(os.path.join(run_dir, upload["file"]), "rb") as f:
            self.upload = f.read()
        self.rsa = load_private_key(run_dir)
        self.aes = None
        self.stream_ct = None
        self.stream_off = 0

    def requests(self):
        return [m for m in self.messages["messages"] if m["dir"] == "c2s"]

    def content(self, m):
        """The 828 content re-encrypted under our key, same length and layout."""
        f = m["fields"]
        old = self.c2s[f["content_offset"]:f["content_offset"] + f["content_length"]]
        if "swapped" in f.get("fields_order", ""):
            plain = sdpeer.aes_decrypt(bytes.fromhex(self.keys["aes_key"]), old)
            return sdpeer.aes_encrypt(self.aes, plain)
        if self.stream_ct is None:
            self.stream_ct = sdpeer.aes_encrypt(self.aes, self.upload)
        piece = self.stream_ct[self.stream_off:self.stream_off + f["content_length"]]
        self.stream_off += len(piece)
        return piece + b"\0" * (f["content_length"] - len(piece))

    def run(self):
        t = self.test
        got = []
        reqs = self.requests()
        last_828 = max((i for i, m in enumerate(reqs) if m["code"] == sdpeer.SEND_FILE),
                       default=-1)
        crc = None
        with sdpeer.PeerClient("127.0.0.1", self.port, timeout=20) as pc:
            pc.connect()
            for i, m in enumerate(reqs):
                raw = self.c2s[m["offset"]:m["payload_offset"] + m["payload_size"]]
                hid = bytes.fromhex(m["header_client_id"])
                if m["code"] != sdpeer.REGISTER:  # 825's header ID is ignored: keep it
                    hid = self.id_map.get(hid, hid)
                head = hid + raw[16:23]
                payload = raw[23:]
                if m["code"] == sdpeer.SEND_FILE:
                    payload = payload[:267] + self.content(m)
                    t.assertEqual(len(payload), m["payload_size"])
                pc.send_raw(head + payload)
                if m["code"] in ANSWERED or i == last_828:
                    code, body = pc.recv()
                    got.append(code)
                    if code == sdpeer.REGISTERED:
                        self.id_map[bytes.fromhex(self.keys["client_id"])] = bytes(body)
                        pc.client_id = bytes(body)
                    elif code in (sdpeer.AES_KEY, sdpeer.RECONNECTED):
                        self.aes = self.rsa.unwrap(body[16:])
                        pc.client_id = bytes(body[:16])
                    elif code == sdpeer.FILE_CRC:
                        crc = sdpeer.decode_file_crc(body)
        return got, crc, pc.client_id


@harness.skip_unless_built(harness.SERVER_BIN)
class Fixtures(unittest.TestCase):
    def test_every_recorded_client_live(self):
        clients = sorted(d for d in os.listdir(CLIENTS)
                         if os.path.isdir(os.path.join(CLIENTS, d)))
        self.assertEqual(len(clients), 4, "four recorded clients")
        runs = 0
        for client in clients:
            for size in (3000, 20000):
                with self.subTest(client=client, size=size), sh.server() as (srv, d):
                    id_map = {}
                    for run in ("first-run", "second-run"):
                        run_dir = os.path.join(CLIENTS, client, "%s-%d" % (run, size))
                        rp = Replay(self, srv.port, run_dir, id_map)
                        got, crc, cid = rp.run()
                        runs += 1
                        want = rp.messages["summary"]["response_codes"]
                        self.assertEqual(got, want, run_dir)
                        self.assertEqual(crc["cksum"], rp.keys["server_1603"]["cksum"])
                        self.assertEqual(crc["cksum"], rp.keys["upload"]["cksum"])
                        self.assertEqual(crc["content_size"],
                                         rp.keys["server_1603"]["content_size"])
                        self.assertEqual(crc["file_name"], "upload-%d.bin" % size)
                        stored = os.path.join(d, "files", cid.hex(), "upload-%d.bin" % size)
                        with open(stored, "rb") as f:
                            self.assertEqual(f.read(), rp.upload)
                        self.assertEqual(sh.file_row(d, cid, "upload-%d.bin" % size)[3], 1)
                    rows = sh.query(d, "SELECT Name, PublicKey FROM clients")
                    self.assertEqual(len(rows), 1)
                    self.assertEqual(rows[0][0], "Fixture Tester")
                    self.assertEqual(bytes(rows[0][1]).hex(), rp.keys["public_key_spki"])
        self.assertEqual(runs, 16)

    def test_recorded_826_replayed_twice_is_refused(self):
        run_dir = os.path.join(CLIENTS, "client-var8192-from1", "first-run-3000")
        with sh.server() as (srv, d):
            rp = Replay(self, srv.port, run_dir, {})
            got, _, cid = rp.run()
            self.assertEqual(got[:2], [sdpeer.REGISTERED, sdpeer.AES_KEY])
            m = [x for x in rp.requests() if x["code"] == sdpeer.PUBLIC_KEY][0]
            raw = rp.c2s[m["offset"]:m["payload_offset"] + m["payload_size"]]
            other = sdpeer.RSAKey.generate().spki()
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                pc.send_raw(cid + raw[16:23] + raw[23:23 + 255] + other)
                self.assertEqual(pc.recv()[0], sdpeer.ERROR)
            self.assertEqual(bytes(sh.client_row(d, cid)[2]).hex(), rp.keys["public_key_spki"])


if __name__ == "__main__":
    harness.run_tests()

#!/usr/bin/env python3
"""test_server_v4_transfers: bin/sealdrop-server's version-4 transfers (SPEC-v4.md 3) driven
by the independent Python peer (tests/peer/sdpeer4.py, Client4) over TLS on 127.0.0.1:
uploads of 0 B, 1 B, 1 MiB and 100 MiB stored byte-identical and read back; connections cut
at random offsets, then resumed without resending the durable prefix; kill -9 of the server
mid-upload, then resumed at the last durable offset; a source changed in between detected
by the prefix hash and sent again from 0; compression on the wire; every refusal (wrong
offset, deflate bomb, chunk over max_chunk, plain_len mismatch, bad flags, wrong SHA-256 with
the old file intact, too large, another account's files); sealdrop-db on partial uploads.
SEALDROP_BIG=1 also uploads a file over 4 GiB (sparse source, compressed chunks)."""

import glob
import hashlib
import json
import os
import random
import subprocess
import threading
import time
import unittest

import harness
from harness import run_tests, tmpdir
import sdpeer
import sdpeer4
import server_helpers as sh
from sdpeer4 import Client4, Dropped, Identity, RemoteError

MiB = 1 << 20
SYNC_INTERVAL = 64 * MiB  # server/put.h PUT_SYNC_INTERVAL


def compressible(size):
    line = b"sealdrop version 4 compresses this line again and again\n"
    return (line * (size // len(line) + 1))[:size]


@harness.skip_unless_built(harness.SERVER_BIN)
class Transfers(unittest.TestCase):
    server_args = ()

    def setUp(self):
        self._tmp = tmpdir("sealdrop-v4x-")
        self.dir = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.server = harness.Server(self.dir, args=list(self.server_args))
        self.server.start()
        self.addCleanup(self.server.stop)
        self.alice = self.account("alice")
        self.storage = os.path.join(self.dir, "files")

    def client(self, identity, **kw):
        kw.setdefault("timeout", 20.0)
        c = Client4("127.0.0.1", self.server.port, identity=identity, **kw)
        self.addCleanup(c.close)
        c.connect()
        w = c.whoami()
        self.assertIsNotNone(w)
        return c

    def account(self, name):
        """A fresh account: its identity and ID."""
        ident = Identity.generate()
        c = Client4("127.0.0.1", self.server.port, identity=ident, timeout=20.0)
        try:
            c.connect()
            w = c.register(sdpeer.RSAKey.generate(), name)
        finally:
            c.close()
        return {"identity": ident, "id": bytes.fromhex(w["id"]) if isinstance(w["id"], str)
                else bytes(w["id"])}

    def stored(self, who, name):
        path = os.path.join(self.storage, who["id"].hex(), name)
        with open(path, "rb") as f:
            return f.read()

    def partial_files(self, who):
        return glob.glob(os.path.join(self.storage, who["id"].hex(),
                                      ".sealdrop-part-resume-*"))

    def upload(self, who, name, data, **kw):
        c = self.client(who["identity"])
        res = c.upload(name, data, **kw)
        c.close()
        self.assertTrue(res["verified"], res)
        return res

    def test_sizes_byte_identical(self):
        for size in (0, 1, MiB, 100 * MiB):
            data = harness.gen_bytes(size, seed=size + 7) if size < 2 * MiB else \
                random.Random(size).randbytes(size)
            name = "f%d.bin" % size
            res = self.upload(self.alice, name, data)
            self.assertEqual(res["resumed_from"], 0)
            self.assertEqual(res["done"]["size"], size)
            self.assertEqual(res["done"]["name"], name)
            self.assertEqual(hashlib.sha256(self.stored(self.alice, name)).digest(),
                             hashlib.sha256(data).digest())
            c = self.client(self.alice["identity"])
            g = c.get(name)
            c.close()
            self.assertTrue(g["verified"])
            self.assertEqual(g["data"], data)
        c = self.client(self.alice["identity"])
        listed = {f["name"]: f for f in c.list()}
        self.assertEqual(set(listed), {"f0.bin", "f1.bin", "f%d.bin" % MiB,
                                       "f%d.bin" % (100 * MiB)})
        self.assertEqual(listed["f1.bin"]["size"], 1)
        # A download resumed from an offset.
        data = random.Random(100 * MiB).randbytes(100 * MiB)
        g = c.get("f%d.bin" % (100 * MiB), 77 * MiB + 5, data[:77 * MiB + 5])
        self.assertTrue(g["verified"])
        self.assertEqual(g["data"], data)
        self.assertEqual(self.partial_files(self.alice), [])

    def test_drops_at_random_offsets_then_resume(self):
        size = 24 * MiB
        data = random.Random(5).randbytes(size)
        rnd = random.Random(11)
        last = 0
        for _ in range(3):
            cut = rnd.randrange(2 * MiB, 7 * MiB)  # bytes this connection sends
            c = Client4("127.0.0.1", self.server.port, identity=self.alice["identity"],
                        timeout=20.0, drop_after=cut)
            self.addCleanup(c.close)
            with self.assertRaises((Dropped, OSError)):
                c.connect()
                c.whoami()
                c.upload("cut.bin", data, chunk=256 * 1024)
            c.close()
            # The server keeps what it received: the next PUT_OPEN resumes there (the
            # connection resumed at last and sent at most cut bytes of frames), and only
            # the rest travels.
            c = self.client(self.alice["identity"])
            st = c.put_open(size, "cut.bin")
            self.assertLessEqual(st["offset"], last + cut)
            self.assertGreater(st["offset"], last + cut - 2 * MiB)
            self.assertEqual(st["prefix_sha256"], hashlib.sha256(data[:st["offset"]]).digest())
            last = st["offset"]
            c.close()
        res = self.upload(self.alice, "cut.bin", data)
        self.assertEqual(res["resumed_from"], last)
        self.assertFalse(res["restarted"])
        self.assertEqual(res["data_sent"], size - last)
        self.assertEqual(self.stored(self.alice, "cut.bin"), data)
        self.assertEqual(self.partial_files(self.alice), [])

    def test_changed_source_starts_over(self):
        size = 6 * MiB
        data = random.Random(6).randbytes(size)
        c = Client4("127.0.0.1", self.server.port, identity=self.alice["identity"],
                    timeout=20.0, drop_after=3 * MiB)
        self.addCleanup(c.close)
        with self.assertRaises((Dropped, OSError)):
            c.connect()
            c.whoami()
            c.upload("doc.bin", data)
        c.close()
        changed = b"X" + data[1:]
        res = self.upload(self.alice, "doc.bin", changed)
        self.assertTrue(res["restarted"])
        self.assertEqual(res["resumed_from"], 0)
        self.assertEqual(res["data_sent"], size)
        self.assertEqual(self.stored(self.alice, "doc.bin"), changed)

    def test_kill9_then_resume(self):
        size = 160 * MiB
        data = random.Random(9).randbytes(size)
        errors = []

        def send():
            c = Client4("127.0.0.1", self.server.port, identity=self.alice["identity"],
                        timeout=30.0)
            try:
                c.connect()
                c.whoami()
                c.upload("big.bin", data, chunk=64 * 1024)
                errors.append("upload finished before the kill")
            except Exception:  # noqa: BLE001  (the kill cuts it somewhere)
                pass
            finally:
                c.close()

        t = threading.Thread(target=send, daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        grown = False
        while time.monotonic() < deadline and not grown:
            for p in self.partial_files(self.alice):
                try:
                    grown = os.path.getsize(p) >= SYNC_INTERVAL + 8 * MiB
                except OSError:
                    pass
            time.sleep(0.005)
        self.assertTrue(grown, "the upload never got past the first durability point")
        self.server.kill9()
        t.join(30)
        self.assertEqual(errors, [])
        self.server.start()
        self.assertTrue(self.server.wait_for_log(r"partial uploads: 1 kept"))
        # Exactly the durable prefix is left; a longer temporary file was cut back to it.
        (tmp,) = self.partial_files(self.alice)
        self.assertEqual(os.path.getsize(tmp), SYNC_INTERVAL)
        res = self.upload(self.alice, "big.bin", data)
        self.assertEqual(res["resumed_from"], SYNC_INTERVAL)
        self.assertEqual(res["data_sent"], size - SYNC_INTERVAL)
        self.assertEqual(hashlib.sha256(self.stored(self.alice, "big.bin")).digest(),
                         hashlib.sha256(data).digest())

    def test_compression(self):
        text = compressible(8 * MiB)
        res = self.upload(self.alice, "text.log", text, compress="yes")
        self.assertEqual(res["compressed_chunks"], res["chunks"])
        self.assertLess(res["data_sent"], len(text) // 20)
        self.assertEqual(self.stored(self.alice, "text.log"), text)
        noise = random.Random(3).randbytes(4 * MiB)
        res = self.upload(self.alice, "noise.bin", noise, compress="auto", chunk=256 * 1024)
        self.assertLessEqual(res["compressed_chunks"], 1)
        self.assertGreaterEqual(res["data_sent"], len(noise))
        self.assertEqual(self.stored(self.alice, "noise.bin"), noise)

    def test_refusals(self):
        data = random.Random(1).randbytes(300000)
        for fault, reason, why in (
                ("wrong_offset", sdpeer4.MISMATCH, "PUT_DATA at the wrong offset"),
                ("bomb", sdpeer4.BAD_REQUEST, "deflate data longer than plain_len"),
                ("oversize", sdpeer4.BAD_REQUEST, "malformed PUT_DATA"),
                ("short_inflate", sdpeer4.BAD_REQUEST, "chunk shorter than plain_len"),
                ("bad_flags", sdpeer4.BAD_REQUEST, "malformed PUT_DATA")):
            line = "ERROR %d (%s): %s; closing" % (reason, "mismatch" if reason == 6 else
                                                   "bad request", why)
            before = self.server.log().count(line)
            c = self.client(self.alice["identity"])
            try:
                c.upload("refused.bin", data, fault=fault)
                self.fail("%s accepted" % fault)
            except RemoteError as e:
                self.assertEqual(e.reason, reason, fault)
            except OSError:
                # The server refuses from the chunk's head and closes while the peer still
                # sends the rest of it: the reset may overtake the ERROR. The log says it.
                pass
            c.close()
            deadline = time.monotonic() + 10
            while self.server.log().count(line) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.server.log().count(line), before + 1, fault)
        # The refused chunks left a partial upload (counted against the account's limits
        # below): discarded.
        c = self.client(self.alice["identity"])
        c.put_open(len(data), "refused.bin")
        c.put_abort()
        c.close()
        # A wrong SHA-256 at PUT_FINISH: nothing stored, the old verified file intact.
        self.upload(self.alice, "keep.bin", data)
        other = random.Random(2).randbytes(300000)
        c = self.client(self.alice["identity"])
        with self.assertRaises(RemoteError) as cm:
            c.upload("keep.bin", other, fault="wrong_sha")
        self.assertEqual(cm.exception.reason, sdpeer4.MISMATCH)
        self.assertEqual(c.get("keep.bin")["data"], data)
        listed = {f["name"]: f for f in c.list()}
        self.assertEqual(listed["keep.bin"]["sha256"], hashlib.sha256(data).hexdigest())
        c.close()
        self.assertEqual(self.stored(self.alice, "keep.bin"), data)
        # Another account sees, fetches and deletes nothing of alice's.
        bob = self.account("bob")
        b = self.client(bob["identity"])
        self.assertEqual(b.list(), [])
        with self.assertRaises(RemoteError) as cm:
            b.get("keep.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.NOT_FOUND)
        with self.assertRaises(RemoteError) as cm:
            b.delete("keep.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.NOT_FOUND)
        b.close()
        self.assertEqual(self.stored(self.alice, "keep.bin"), data)
        # The owner deletes it: gone from LIST and disk.
        c = self.client(self.alice["identity"])
        c.delete("keep.bin")
        self.assertNotIn("keep.bin", [f["name"] for f in c.list()])
        c.close()
        self.assertFalse(os.path.exists(os.path.join(self.storage, self.alice["id"].hex(),
                                                     "keep.bin")))
        # Over --max-file-size: ERROR 7 at PUT_OPEN (same database and accounts).
        self.server.stop()
        self.server = harness.Server(self.dir, args=["--max-file-size", "100000"])
        self.server.start()
        self.addCleanup(self.server.stop)
        c = self.client(self.alice["identity"])
        with self.assertRaises(RemoteError) as cm:
            c.put_open(100001, "big.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.TOO_LARGE)
        self.assertEqual(c.put_open(100000, "big.bin")["offset"], 0)
        c.put_abort()
        c.close()
        # The per-client limits of version 3 hold for version 4 too, at PUT_OPEN.
        self.server.stop()
        self.server = harness.Server(self.dir, args=["--max-client-files", "1",
                                                     "--max-client-storage", "1000000"])
        self.server.start()
        self.addCleanup(self.server.stop)
        c = self.client(self.alice["identity"])
        c.upload("one.bin", b"x" * 1000)
        with self.assertRaises(RemoteError) as cm:
            c.put_open(10, "two.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.TOO_LARGE)
        with self.assertRaises(RemoteError) as cm:
            c.put_open(1000001, "one.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.TOO_LARGE)
        self.assertEqual(c.put_open(2000, "one.bin")["offset"], 0, "a replacement fits")
        c.close()

    def restart(self, args):
        self.server.stop()
        self.server = harness.Server(self.dir, args=args)
        self.server.start()
        self.addCleanup(self.server.stop)

    def send_part(self, c, data, upto):
        pos = 0
        while pos < upto:
            n = min(65536, upto - pos)
            c.put_data(pos, 0, n, data[pos:pos + n])
            pos += n

    def account_bytes(self, who):
        folder = os.path.join(self.storage, who["id"].hex())
        return sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "*")) +
                   glob.glob(os.path.join(folder, ".*")))

    def test_taken_over_told_at_once(self):
        # A second connection of the account opens the same upload: the first one, which
        # sends nothing more, gets ERROR 8 from the server's timer (it was written only at
        # the first connection's next event, or never when the peer just waited).
        data = os.urandom(300000)
        a = self.client(self.alice["identity"])
        self.assertEqual(a.put_open(len(data), "same.bin")["offset"], 0)
        self.send_part(a, data, 100000)
        b = self.client(self.alice["identity"])
        b.put_open(len(data), "same.bin")
        with self.assertRaises(RemoteError) as cm:
            a.expect(sdpeer4.PUT_STATE, sdpeer4.PUT_DONE)
        self.assertEqual(cm.exception.reason, sdpeer4.BUSY)
        self.assertIsNotNone(self.server.wait_for_log("upload taken over", 10))
        b.put_abort()

    def test_per_client_limits(self):
        # --max-uploads-per-client and the storage limit hold for version 4: a second
        # connection of the account cannot open another upload while the first holds one,
        # and a partial upload counts at its declared size (review: two connections each
        # stored 900,000 bytes under a 1 MB limit).
        self.restart(["--max-client-storage", "1000000", "--max-uploads-per-client", "1"])
        data = os.urandom(900000)
        a = self.client(self.alice["identity"])
        b = self.client(self.alice["identity"])
        self.assertEqual(a.put_open(len(data), "a.bin")["offset"], 0)
        with self.assertRaises(RemoteError) as cm:
            b.put_open(10, "b.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.BUSY)
        self.send_part(a, data, 500000)
        a.close()
        # The storage limit is checked before the upload count, so wait until the server has
        # seen a's connection end and recorded its durable offset.
        self.assertIsNotNone(self.server.wait_for_log(r"partial upload kept at 500000 ",
                                                      timeout=20), self.server.log())
        # Once a's connection is gone its upload slot is free, but its partial upload still
        # counts: b.bin does not fit; resuming a.bin does, and completes it.
        deadline = time.monotonic() + 10
        while True:
            with self.assertRaises(RemoteError) as cm:
                b.put_open(len(data), "b.bin")
            if cm.exception.reason != sdpeer4.BUSY or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(cm.exception.reason, sdpeer4.TOO_LARGE)
        self.assertGreater(b.put_open(len(data), "a.bin")["offset"], 0)
        b.put_abort()
        b.upload("a.bin", data)
        with self.assertRaises(RemoteError) as cm:
            b.put_open(200000, "c.bin")
        self.assertEqual(cm.exception.reason, sdpeer4.TOO_LARGE)
        b.close()
        self.assertLessEqual(self.account_bytes(self.alice), 1000000)

        # One connection opening partial uploads one after another (review: 8 partial files
        # of ~1 MB under limits of 1 MB and 2 files).
        bob = self.account("bob")
        self.restart(["--max-client-storage", "1000000", "--max-client-files", "2"])
        c = self.client(bob["identity"])
        part = os.urandom(999999)
        refused = 0
        for i in range(8):
            try:
                c.put_open(len(part), "p%d.bin" % i)
                self.send_part(c, part, len(part) - 1)
            except RemoteError as e:
                self.assertEqual(e.reason, sdpeer4.TOO_LARGE)
                refused += 1
        c.close()
        self.assertEqual(refused, 7)
        self.assertLessEqual(len(self.partial_files(bob)), 1)
        self.assertLessEqual(self.account_bytes(bob), 1000000)

    def test_db_tool_shows_partial_upload(self):
        data = random.Random(4).randbytes(3 * MiB)
        c = Client4("127.0.0.1", self.server.port, identity=self.alice["identity"],
                    timeout=20.0, drop_after=2 * MiB)
        self.addCleanup(c.close)
        with self.assertRaises((Dropped, OSError)):
            c.connect()
            c.whoami()
            c.upload("part.bin", data)
        c.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res = subprocess.run([harness.DB_BIN] + sh.db_tool_args(self.dir) +
                                 ["uploads", "--json"], capture_output=True, timeout=30)
            ups = json.loads(res.stdout)["uploads"]
            if ups and ups[0]["offset"] > 0:
                break
            time.sleep(0.1)
        self.assertEqual([(u["owner"], u["file_name"], u["size"]) for u in ups],
                         [("alice", "part.bin", 3 * MiB)])
        self.assertGreater(ups[0]["offset"], MiB)
        res = subprocess.run([harness.DB_BIN] + sh.db_tool_args(self.dir) +
                             ["check", "--json"], capture_output=True, timeout=30)
        doc = json.loads(res.stdout)
        self.assertIs(doc["ok"], True, doc)
        self.assertEqual(doc["orphans"], [])

    @unittest.skipUnless(os.environ.get("SEALDROP_BIG") == "1", "SEALDROP_BIG=1: over 4 GiB")
    def test_over_4gib(self):
        """4 GiB + 1 MiB of a sparse source (zeros but one marked MiB), in compressed chunks:
        the wire carries little, the server stores and hashes every byte."""
        size = 4 * 1024 * MiB + MiB
        marker = random.Random(8).randbytes(MiB)
        c = self.client(self.alice["identity"], timeout=120.0)
        st = c.put_open(size, "huge.img")
        self.assertEqual(st["offset"], 0)
        chunk = st["max_chunk"]
        self.assertEqual(size % chunk, 0)
        plain_zero = b"\0" * chunk
        zero = sdpeer4.deflate_raw(plain_zero)
        h = hashlib.sha256()
        pos = 0
        while pos < size:  # size is a whole number of chunks
            piece = marker if pos == 2 * 1024 * MiB else plain_zero
            body = sdpeer4.deflate_raw(piece) if piece is marker else zero
            c.put_data(pos, sdpeer4.FLAG_DEFLATE, chunk, body)
            h.update(piece)
            pos += chunk
        done = c.put_finish(h.digest())
        self.assertEqual(done["size"], size)
        self.assertEqual(done["sha256"], h.hexdigest())
        self.assertLess(c.data_sent, 64 * MiB)
        path = os.path.join(self.storage, self.alice["id"].hex(), "huge.img")
        self.assertEqual(os.path.getsize(path), size)
        with open(path, "rb") as f:
            f.seek(2 * 1024 * MiB)
            self.assertEqual(f.read(MiB), marker)
        os.unlink(path)


if __name__ == "__main__":
    run_tests()

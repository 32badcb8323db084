"""The real sealdrop-server driven by the independent Python peer (tests/peer/sdpeer.py):
register, key, upload, CRC loop, reconnect (SPEC.md sections 3-6), stored files and database
rows (SPEC.md 8)."""

import filecmp
import os
import re
import signal
import sqlite3
import subprocess
import time
import unittest

import harness
import sdpeer
import server_helpers as sh

NAME_FIELD = sdpeer.NAME_SIZE


def ct_size(n):
    return (n // 16 + 1) * 16


@harness.skip_unless_built(harness.SERVER_BIN)
class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = sh.server()
        cls.srv, cls.dir = cls.ctx.__enter__()
        cls.port = cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def uname(self, base):
        return "%s-%s" % (base, os.urandom(3).hex())

    def stored(self, client_id, name):
        return os.path.join(self.dir, "files", bytes(client_id).hex(), name)

    def test_full_flow_and_database_rows(self):
        name = self.uname("Full Flow")
        data = harness.gen_bytes(5000)
        pc = sh.registered(self.port, name)
        with pc:
            r = pc.upload("report.pdf", data, pc.aes_key)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertEqual(r["client_id"], pc.client_id)
            self.assertEqual(r["content_size"], ct_size(len(data)))
            self.assertEqual(r["file_name"], "report.pdf")
            path = self.stored(pc.client_id, "report.pdf")
            # Until 900 the file waits under a temporary name and no row exists (issue 9).
            self.assertFalse(os.path.exists(path))
            self.assertIsNone(sh.file_row(self.dir, pc.client_id, "report.pdf"))
            self.assertEqual(pc.crc_ok("report.pdf"), sdpeer.ACK)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(r["cksum"], harness.gnu_cksum(path))
            self.assertEqual(r["cksum"], sdpeer.cksum(data))
        cid, cname, pub, last_seen, aes = sh.client_row(self.dir, pc.client_id)
        self.assertEqual(cname, name)
        self.assertEqual(bytes(pub), pc.rsa_key.spki())
        self.assertEqual(bytes(aes), pc.aes_key)
        self.assertIsNotNone(last_seen)
        row = sh.file_row(self.dir, pc.client_id, "report.pdf")
        self.assertEqual(row[1], "report.pdf")
        self.assertEqual(row[2], "%s/report.pdf" % bytes(pc.client_id).hex())
        self.assertEqual(row[3], 1)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "files", row[2])))
        self.assertNotEqual(bytes(pc.client_id), sdpeer.ZERO_ID)

    def test_duplicate_name_refused(self):
        name = self.uname("dup")
        with sh.registered(self.port, name):
            pass
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTER_FAILED)
            self.assertIsNone(cid)
        self.assertEqual(len(sh.query(self.dir, "SELECT ID FROM clients WHERE Name = ?",
                                      (name,))), 1)

    def test_pending_name_registers_again(self):
        # SPEC.md 6 (issue 9 item 3): a pending name registers again only on the connection
        # that created it (827 -> 1606 -> 825); another connection gets 1601.
        name = self.uname("pending")
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, first = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED)
            with sdpeer.PeerClient("127.0.0.1", self.port) as other:
                code, _ = other.register(name)
                self.assertEqual(code, sdpeer.REGISTER_FAILED)
            # The 825 header ID is ignored: one recorded client sends 16 'a' bytes.
            code, second = pc.register(name, header_id=b"a" * 16)
            self.assertEqual(code, sdpeer.REGISTERED)
            self.assertNotEqual(first, second)
            code, aes = pc.send_public_key(name, sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.AES_KEY)
        rows = sh.query(self.dir, "SELECT ID FROM clients WHERE Name = ?", (name,))
        self.assertEqual([bytes(r[0]) for r in rows], [bytes(second)])

    def test_pending_after_1606_registers_on_its_connection(self):
        # A client that follows the text: 827 for an unknown name -> 1606 (pending), then 825
        # for that name on the same connection -> 1600; on another connection -> 1601.
        name = self.uname("pend1606")
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, _, pending = pc.reconnect(name, b"\x07" * 16, sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.RECONNECT_DENIED)
            with sdpeer.PeerClient("127.0.0.1", self.port) as other:
                self.assertEqual(other.register(name)[0], sdpeer.REGISTER_FAILED)
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED)
        rows = sh.query(self.dir, "SELECT ID FROM clients WHERE Name = ?", (name,))
        self.assertEqual([bytes(r[0]) for r in rows], [bytes(cid)])

    def test_invalid_names_refused(self):
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            for bad in (b"tab\there", b"bell\x07", b"\xff\xfe", b"\xc0\xaf", b"del\x7f"):
                pc.request(sdpeer.REGISTER, bad + b"\0" * (NAME_FIELD - len(bad)))
                self.assertEqual(pc.recv()[0], sdpeer.REGISTER_FAILED, bad)
            code, _ = pc.register("\u00e9l\u00e8ve \u05e9\u05dc\u05d5\u05dd " + os.urandom(3).hex())
            self.assertEqual(code, sdpeer.REGISTERED, "printable UTF-8 is a valid name")

    def test_second_public_key_refused_and_key_kept(self):
        name = self.uname("keyonce")
        pc = sh.registered(self.port, name)
        with pc:
            before = sh.client_row(self.dir, pc.client_id)
            other = sdpeer.RSAKey.generate()
            code, aes = pc.send_public_key(name, other)
            self.assertEqual(code, sdpeer.ERROR)
            self.assertIsNone(aes)
        after = sh.client_row(self.dir, pc.client_id)
        self.assertEqual(bytes(after[2]), bytes(before[2]))
        self.assertEqual(bytes(after[2]), pc.rsa_key.spki())
        self.assertEqual(bytes(after[4]), bytes(before[4]))

    def test_public_key_for_unknown_id_or_wrong_name(self):
        name = self.uname("kw")
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED)
            code, _ = pc.send_public_key(name + "x", sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.ERROR)
            pc.client_id = os.urandom(16)
            code, _ = pc.send_public_key(name, sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.ERROR)
            pc.client_id = cid
            code, _ = pc.send_public_key(name, sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.AES_KEY, "nothing was spoiled by the refusals")

    def test_reconnect_known_gives_new_key_that_decrypts(self):
        name = self.uname("recon")
        pc = sh.registered(self.port, name)
        first_key, cid, rsa = pc.aes_key, pc.client_id, pc.rsa_key
        pc.close()
        data = harness.gen_bytes(3000)
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc2:
            code, key, _ = pc2.reconnect(name, cid, rsa)
            self.assertEqual(code, sdpeer.RECONNECTED)
            self.assertNotEqual(key, first_key)
            self.assertEqual(bytes(sh.client_row(self.dir, cid)[4]), key)
            r = pc2.upload("again.bin", data, key)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertEqual(r["cksum"], sdpeer.cksum(data))
            self.assertEqual(pc2.crc_ok("again.bin"), sdpeer.ACK)
        with open(self.stored(cid, "again.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_upload_under_old_key_fails(self):
        name = self.uname("oldkey")
        pc = sh.registered(self.port, name)
        old, cid, rsa = pc.aes_key, pc.client_id, pc.rsa_key
        pc.close()
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc2:
            code, key, _ = pc2.reconnect(name, cid, rsa)
            self.assertEqual(code, sdpeer.RECONNECTED)
            r = pc2.upload("old.bin", harness.gen_bytes(1000), old)
            # Wrong key: the padding check fails (1607), or, by a 1-in-256 chance of valid
            # padding, the size does not match: never a 1603 with the right CRC.
            self.assertEqual(r["code"], sdpeer.ERROR)
        self.assertIsNone(sh.file_row(self.dir, cid, "old.bin"))
        self.assertFalse(os.path.exists(self.stored(cid, "old.bin")))

    def test_reconnect_unknown_name_pending_then_826(self):
        name = self.uname("newcomer")
        asked = os.urandom(16)
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, key, new_id = pc.reconnect(name, asked, None)
            self.assertEqual(code, sdpeer.RECONNECT_DENIED)
            self.assertNotEqual(new_id, sdpeer.ZERO_ID)
            self.assertNotEqual(new_id, asked)
            row = sh.client_row(self.dir, new_id)
            self.assertEqual(row[1], name)
            self.assertIsNone(row[2], "pending: no public key")
            code, aes = pc.send_public_key(name, sdpeer.RSAKey.generate())
            self.assertEqual(code, sdpeer.AES_KEY)
            data = harness.gen_bytes(100)
            r = pc.upload("n.bin", data, aes)
            self.assertEqual(r["cksum"], sdpeer.cksum(data))
            self.assertEqual(pc.crc_ok("n.bin"), sdpeer.ACK)

    def test_reconnect_unknown_name_then_825(self):
        name = self.uname("textclient")
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, _, new_id = pc.reconnect(name, os.urandom(16), None)
            self.assertEqual(code, sdpeer.RECONNECT_DENIED)
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED, "a pending name registers afresh")
            self.assertNotEqual(cid, new_id)

    def test_reconnect_wrong_id_echoes_and_changes_nothing(self):
        name = self.uname("victim")
        pc = sh.registered(self.port, name)
        pc.close()
        before = sh.client_row(self.dir, pc.client_id)
        wrong = os.urandom(16)
        with sdpeer.PeerClient("127.0.0.1", self.port) as thief:
            code, key, echoed = thief.reconnect(name, wrong, None)
            self.assertEqual(code, sdpeer.RECONNECT_DENIED)
            self.assertEqual(echoed, wrong)
        after = sh.client_row(self.dir, pc.client_id)
        self.assertEqual(before[:3], after[:3])
        self.assertEqual(bytes(before[4]), bytes(after[4]), "AES key unchanged")
        self.assertEqual(len(sh.query(self.dir, "SELECT 1 FROM clients WHERE ID = ?",
                                      (wrong,))), 0)

    def test_reconnect_pending_client_echoes(self):
        name = self.uname("nokey")
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, cid = pc.register(name)
            self.assertEqual(code, sdpeer.REGISTERED)
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc:
            code, _, echoed = pc.reconnect(name, cid, None)
            self.assertEqual(code, sdpeer.RECONNECT_DENIED)
            self.assertEqual(echoed, cid)
        self.assertEqual(bytes(sh.client_row(self.dir, cid)[0]), cid)

    def test_repeated_900_each_acknowledged(self):
        name = self.uname("thrice")
        data = harness.gen_bytes(3000)
        pc = sh.registered(self.port, name)
        with pc:
            r = pc.upload("t.bin", data, pc.aes_key, variant="padded0", packet_size=1024)
            self.assertEqual(r["cksum"], sdpeer.cksum(data))
            for _ in range(3):
                self.assertEqual(pc.crc_ok("t.bin"), sdpeer.ACK)
        self.assertEqual(sh.file_row(self.dir, pc.client_id, "t.bin")[3], 1)

    def test_verdicts_without_upload_or_unknown_file(self):
        name = self.uname("verdict")
        pc = sh.registered(self.port, name)
        with pc:
            self.assertEqual(pc.crc_ok("never.bin"), sdpeer.ERROR, "900 before any upload")
            self.assertEqual(pc.crc_fail("never.bin"), sdpeer.ERROR)
            data = harness.gen_bytes(10)
            r = pc.upload("real.bin", data, pc.aes_key)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertEqual(pc.crc_ok("other.bin"), sdpeer.ERROR, "900 for an unknown file")
            self.assertEqual(pc.crc_ok("real.bin"), sdpeer.ACK)

    def test_sizes(self):
        name = self.uname("sizes")
        pc = sh.registered(self.port, name)
        with pc:
            for size in (0, 1, 15, 16, 17, 1 << 20):
                data = harness.gen_bytes(size, seed=size + 1)
                fname = "size-%d.bin" % size
                r = pc.upload(fname, data, pc.aes_key, packet_size=4096)
                self.assertEqual(r["code"], sdpeer.FILE_CRC, size)
                self.assertEqual(r["content_size"], ct_size(size))
                self.assertEqual(r["cksum"], sdpeer.cksum(data), size)
                self.assertEqual(pc.crc_ok(fname), sdpeer.ACK)
                path = self.stored(pc.client_id, fname)
                self.assertEqual(r["cksum"], harness.gnu_cksum(path))
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), data)
        self.assertEqual(harness.gnu_cksum(self.stored(pc.client_id, "size-0.bin")),
                         4294967295)

    def test_100_mib_in_many_packets(self):
        name = self.uname("big")
        with harness.tmpdir() as d:
            src = harness.make_file(os.path.join(d, "big.bin"), 100 << 20)
            pc = sh.registered(self.port, name, timeout=120)
            with pc:
                r = sh.stream_upload(pc, "big.bin", src, packet_size=64 << 10)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(r["content_size"], ct_size(100 << 20))
                self.assertEqual(pc.crc_ok("big.bin"), sdpeer.ACK)
                stored = self.stored(pc.client_id, "big.bin")
                self.assertEqual(r["cksum"], harness.gnu_cksum(src))
                self.assertEqual(r["cksum"], harness.gnu_cksum(stored))
                self.assertTrue(filecmp.cmp(src, stored, shallow=False))

    @unittest.skipUnless(os.environ.get("SEALDROP_BIG") == "1",
                         "1 GiB upload: set SEALDROP_BIG=1 (needs 2 GiB of disk)")
    def test_1_gib_memory_stays_flat(self):
        name = self.uname("gig")
        with harness.tmpdir() as d:
            src = os.path.join(d, "gig.bin")
            with open(src, "wb") as f:
                block = os.urandom(1 << 20)
                for i in range(1024):
                    f.write(block[i:] + block[:i])
            pc = sh.registered(self.port, name, timeout=300)
            with pc:
                hwm_before = sh.proc_status(self.srv.pid, "VmHWM")
                r = sh.stream_upload(pc, "gig.bin", src, packet_size=1 << 20)
                hwm_after = sh.proc_status(self.srv.pid, "VmHWM")
                print("\nserver VmHWM before %d kB, after a 1 GiB upload %d kB"
                      % (hwm_before, hwm_after))
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(r["cksum"], harness.gnu_cksum(src))
                self.assertLess(hwm_after - hwm_before, 32 * 1024)
                self.assertEqual(pc.crc_ok("gig.bin"), sdpeer.ACK)
                os.unlink(self.stored(pc.client_id, "gig.bin"))

    def test_every_sender_variant(self):
        data = harness.gen_bytes(20000)
        for variant in sdpeer.VARIANTS:
            with self.subTest(variant=variant):
                pc = sh.registered(self.port, self.uname("v-" + variant))
                with pc:
                    r = pc.upload("var.bin", data, pc.aes_key, variant=variant,
                                  packet_size=1024)
                    self.assertEqual(r["code"], sdpeer.FILE_CRC)
                    self.assertEqual(r["cksum"], sdpeer.cksum(data))
                    expect = (19 * 1040 + 560) if variant == "perpacket" else ct_size(20000)
                    self.assertEqual(r["content_size"], expect)
                    self.assertEqual(pc.crc_ok("var.bin"), sdpeer.ACK)
                    with open(self.stored(pc.client_id, "var.bin"), "rb") as f:
                        self.assertEqual(f.read(), data)

    def test_several_uploads_on_one_connection_replace(self):
        pc = sh.registered(self.port, self.uname("replace"))
        with pc:
            for size in (5000, 300):
                data = harness.gen_bytes(size)
                r = pc.upload("same.bin", data, pc.aes_key)
                self.assertEqual(r["cksum"], sdpeer.cksum(data))
                self.assertEqual(pc.crc_ok("same.bin"), sdpeer.ACK)
                with open(self.stored(pc.client_id, "same.bin"), "rb") as f:
                    self.assertEqual(f.read(), data)
        self.assertEqual(len(sh.query(self.dir, "SELECT 1 FROM files WHERE ID = ?",
                                      (pc.client_id,))), 1)

    def test_abandoned_attempt_replaced_by_a_new_first_packet(self):
        # A sender gives up mid-file and starts another file from packet 1: the abandoned
        # upload gets 1607 (SPEC.md 5), the new one goes through, and the half-written file
        # leaves nothing behind. A restart of the same file is a silent resend.
        pc = sh.registered(self.port, self.uname("restart"))
        with pc:
            for payload in sdpeer.packetize(harness.gen_bytes(40000), pc.aes_key, "draft.bin",
                                            "split", 8192)[:2]:
                pc.request(sdpeer.SEND_FILE, payload)
            data = harness.gen_bytes(20000)
            pc.send_packets("final.bin", data, pc.aes_key, "split", 8192)
            self.assertEqual(pc.recv()[0], sdpeer.ERROR)
            code, payload = pc.recv()
            self.assertEqual(code, sdpeer.FILE_CRC)
            self.assertEqual(sdpeer.decode_file_crc(payload)["cksum"], sdpeer.cksum(data))
            self.assertEqual(pc.crc_ok("final.bin"), sdpeer.ACK)
            folder = os.path.dirname(self.stored(pc.client_id, "final.bin"))
            self.assertEqual(sorted(os.listdir(folder)), ["final.bin"])
            with open(os.path.join(folder, "final.bin"), "rb") as f:
                self.assertEqual(f.read(), data)
            # the same file restarted mid-way: no 1607, just the 1603 of the new attempt
            first = sdpeer.packetize(data, pc.aes_key, "final.bin", "split", 8192)
            pc.request(sdpeer.SEND_FILE, first[0])
            r = pc.upload("final.bin", data, pc.aes_key, "split", 8192)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertEqual(r["cksum"], sdpeer.cksum(data))

    def test_wire_names_sharing_a_stored_path_keep_one_row(self):
        # "a/x" and "b/x" are both stored as x: the row of the file on disk is the only one.
        pc = sh.registered(self.port, self.uname("samepath"))
        with pc:
            r = pc.upload("a/x", harness.gen_bytes(1000), pc.aes_key)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertEqual(pc.crc_ok("a/x"), sdpeer.ACK)
            data = harness.gen_bytes(500)
            r = pc.upload("b/x", data, pc.aes_key)
            self.assertEqual(r["cksum"], sdpeer.cksum(data))
            self.assertEqual(pc.crc_ok("b/x"), sdpeer.ACK)
        rows = sh.query(self.dir, "SELECT FileName, PathName, Verified, Size FROM files "
                        "WHERE ID = ?", (pc.client_id,))
        self.assertEqual([tuple(x) for x in rows],
                         [("b/x", "%s/x" % bytes(pc.client_id).hex(), 1, 500)])
        with open(self.stored(pc.client_id, "x"), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_verdict_must_name_the_last_file(self):
        pc = sh.registered(self.port, self.uname("verdict"))
        with pc:
            pc.upload("f1.bin", harness.gen_bytes(300), pc.aes_key)
            self.assertEqual(pc.crc_fail("f1.bin"), sdpeer.ACK)
            pc.upload("f2.bin", harness.gen_bytes(400), pc.aes_key)
            self.assertEqual(pc.crc_ok("f1.bin"), sdpeer.ERROR)
            self.assertEqual(pc.crc_ok("f2.bin"), sdpeer.ACK)
        self.assertEqual(sh.file_row(self.dir, pc.client_id, "f1.bin")[3], 0)
        self.assertEqual(sh.file_row(self.dir, pc.client_id, "f2.bin")[3], 1)

    def test_last_seen_updated(self):
        name = self.uname("seen")
        pc = sh.registered(self.port, name)
        cid, rsa = pc.client_id, pc.rsa_key
        old = "2000-01-01 00:00:00"

        def aged():
            sh.execute(self.dir, "UPDATE clients SET LastSeen = ? WHERE ID = ?", (old, cid))

        def seen():
            return sh.client_row(self.dir, cid)[3]

        with pc:
            aged()
            r = pc.upload("s.bin", b"hello", pc.aes_key)
            self.assertEqual(r["code"], sdpeer.FILE_CRC)
            self.assertNotEqual(seen(), old, "828 updates LastSeen")
            aged()
            self.assertEqual(pc.crc_ok("s.bin"), sdpeer.ACK)
            self.assertNotEqual(seen(), old, "900 updates LastSeen")
        aged()
        with sdpeer.PeerClient("127.0.0.1", self.port) as pc2:
            code, _, _ = pc2.reconnect(name, cid, rsa)
            self.assertEqual(code, sdpeer.RECONNECTED)
        self.assertNotEqual(seen(), old, "827 updates LastSeen")


@harness.skip_unless_built(harness.SERVER_BIN)
class CrcLoop(unittest.TestCase):
    def test_901_then_resend_then_900(self):
        data = harness.gen_bytes(9000)
        with sh.server(["--test-corrupt-crc", "1"]) as (srv, d):
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                r = pc.full_session("retry-once", "r.bin", data, packet_size=2048)
            self.assertEqual(r["attempts"], 2)
            self.assertEqual(r["step"], "crc_ok")
            self.assertEqual(r["code"], sdpeer.ACK)
            self.assertEqual(sh.file_row(d, r["client_id"], "r.bin")[3], 1)
            path = os.path.join(d, "files", bytes(r["client_id"]).hex(), "r.bin")
            with open(path, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(sh.files_under(os.path.join(d, "files")),
                             ["%s/r.bin" % bytes(r["client_id"]).hex()])

    def test_four_failures_end_in_902(self):
        data = harness.gen_bytes(4000)
        with sh.server(["--test-corrupt-crc", "4"]) as (srv, d):
            with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                r = pc.full_session("gives-up", "g.bin", data, variant="perpacket",
                                    packet_size=1024)
            self.assertEqual(r["attempts"], 4)
            self.assertEqual(r["step"], "crc_fail")
            self.assertEqual(r["code"], sdpeer.ACK, "902 gets 1604")
            row = sh.file_row(d, r["client_id"], "g.bin")
            self.assertEqual(row[3], 0, "the file stays unverified")


@harness.skip_unless_built(harness.SERVER_BIN)
class StartUp(unittest.TestCase):
    """Options and port.info (the harness always passes --port 0, so these run the binary
    directly)."""

    def start(self, folder, args):
        log = open(os.path.join(folder, "server.log"), "wb")
        proc = subprocess.Popen([harness.SERVER_BIN, "--bind", "127.0.0.1"] + args,
                                cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        return proc

    def wait_log(self, folder, proc, pattern):
        rx = re.compile(pattern)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            with open(os.path.join(folder, "server.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            m = rx.search(text)
            if m or proc.poll() is not None:
                return m, text
            time.sleep(0.05)
        return None, text

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return None

    def test_port_from_port_info_and_override(self):
        with harness.tmpdir() as d:
            port = harness.free_port()
            with open(os.path.join(d, "port.info"), "w") as f:
                f.write("%d\n" % port)
            proc = self.start(d, [])
            try:
                m, text = self.wait_log(d, proc, r"listening on 127\.0\.0\.1:(\d+)")
                self.assertIsNotNone(m, text)
                self.assertEqual(int(m.group(1)), port)
                self.assertNotIn("warning", text)
                sh.assert_serves(self, port)
            finally:
                self.assertEqual(self.stop(proc), 0)
            other = harness.free_port()
            proc = self.start(d, ["--port", str(other)])
            try:
                m, text = self.wait_log(d, proc, r"listening on 127\.0\.0\.1:%d" % other)
                self.assertIsNotNone(m, text)
            finally:
                self.assertEqual(self.stop(proc), 0)

    def test_missing_or_invalid_port_info_means_1256(self):
        for content in (None, "abc\n", "70000", ""):
            with self.subTest(content=content), harness.tmpdir() as d:
                if content is not None:
                    with open(os.path.join(d, "port.info"), "w") as f:
                        f.write(content)
                proc = self.start(d, [])
                try:
                    m, text = self.wait_log(d, proc, r"(listening on|cannot listen on) "
                                            r"127\.0\.0\.1:1256")
                    self.assertIsNotNone(m, text)
                    self.assertRegex(text, r"warning: port\.info (not found|does not hold a "
                                     r"valid port); using port 1256")
                finally:
                    self.stop(proc)

    def test_help_version_and_bad_options(self):
        r = subprocess.run([harness.SERVER_BIN, "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10, text=True)
        self.assertEqual(r.returncode, 0)
        for opt in ("--port", "--bind", "--db", "--storage", "--workers", "--max-connections",
                    "--idle-timeout", "--max-file-size", "--grace", "--test-corrupt-crc",
                    "--version"):
            self.assertIn(opt, r.stdout)
        with open(os.path.join(harness.TOP, "VERSION")) as f:
            version = f.read().strip()
        r = subprocess.run([harness.SERVER_BIN, "--version"], stdout=subprocess.PIPE,
                           timeout=10, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.strip(), "sealdrop-server %s" % version)
        for bad in (["--workers", "0"], ["--port", "65536"], ["--idle-timeout", "x"],
                    ["--no-such-option"], ["extra-argument"], ["--max-file-size", "-1"]):
            r = subprocess.run([harness.SERVER_BIN] + bad, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(r.returncode, 2, bad)

    def test_custom_db_and_storage_paths(self):
        with harness.tmpdir() as d:
            with sh.server(["--db", os.path.join(d, "other.db"), "--storage",
                            os.path.join(d, "store")]) as (srv, sd):
                pc = sh.registered(srv.port, "paths")
                with pc:
                    r = pc.upload("p.bin", b"x" * 33, pc.aes_key)
                    self.assertEqual(r["code"], sdpeer.FILE_CRC)
                    self.assertEqual(pc.crc_ok("p.bin"), sdpeer.ACK)
                self.assertTrue(os.path.isfile(os.path.join(d, "store", pc.client_id.hex(),
                                                            "p.bin")))
                self.assertFalse(os.path.exists(os.path.join(sd, "defensive.db")))
            con = sqlite3.connect(os.path.join(d, "other.db"))
            try:
                self.assertEqual(con.execute("SELECT Name FROM clients").fetchall(),
                                 [("paths",)])
            finally:
                con.close()


if __name__ == "__main__":
    harness.run_tests()

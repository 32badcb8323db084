#!/usr/bin/env python3
"""test_db_tool.py: bin/sealdrop-db on databases filled through the db API (the mkdb test
tool) and on one written by the real server for uploads of the Python peer: every command as
text and JSON (values checked against what was put in: IDs, names, key fingerprints, sizes,
GNU cksum, verified flags), `check` finding missing and orphan files (exit 1) but not partial
uploads, reading while the server writes, and the exit statuses of bad databases and usage."""

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (also puts tests/peer on the path)
import sdpeer  # noqa: E402

MKDB = os.path.join(harness.TOOLS, "mkdb")
TOOL_TIMEOUT = 30


def run_db(args, cwd):
    return subprocess.run([harness.DB_BIN] + list(args), cwd=cwd, capture_output=True,
                          timeout=TOOL_TIMEOUT)


def run_json(test, args, cwd, status=0):
    res = run_db(list(args) + ["--json"], cwd)
    test.assertEqual(res.returncode, status, res.stderr.decode(errors="replace"))
    # JSON text must be valid UTF-8 whatever bytes the names hold.
    return json.loads(res.stdout.decode("utf-8"))


def escape_field(raw):
    """mkdb's field escaping: every byte that is not plain printable ASCII as \\xNN."""
    out = []
    for b in raw:
        if 0x21 <= b < 0x7f and b != 0x5c:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def mkdb(db_path, lines):
    res = subprocess.run([MKDB, db_path], input="\n".join(lines) + "\n", text=True,
                         capture_output=True, timeout=TOOL_TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError("mkdb failed: " + res.stderr)


def fingerprint(spki):
    return hashlib.sha256(spki).hexdigest()[:16]


ALICE = bytes(range(1, 17))
BOB = bytes(range(0xa0, 0xb0))
ODD = bytes([0xee] * 16)
# Control characters, a byte that is not UTF-8, and valid non-ASCII (e-acute).
ODD_NAME = b"odd\x01name\xff\xc3\xa9"


class MkdbDatabase(unittest.TestCase):
    """A database and storage folder made through the db API, no server involved."""

    def setUp(self):
        self._tmp = harness.tmpdir("sealdrop-dbtool-")
        self.dir = self._tmp.__enter__()
        self.db = os.path.join(self.dir, "defensive.db")
        self.storage = os.path.join(self.dir, "files")
        self.alice_key = bytes(random.Random(1).randrange(256) for _ in range(160))
        self.files = {}  # file name -> (relative path, size, cksum, verified)
        lines = ["client\talice\t%s\t%s\t%s" % (ALICE.hex(), self.alice_key.hex(), "cd" * 32),
                 "client\tbob\t%s" % BOB.hex(),
                 "client\t%s\t%s" % (escape_field(ODD_NAME), ODD.hex())]
        for name, size, verified in (("report.pdf", 100000, 1), ("notes.txt", 0, 0),
                                     ("big.bin", 1234567, 1)):
            rel = "%s/%s" % (ALICE.hex(), name)
            path = os.path.join(self.storage, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            harness.make_file(path, size)
            crc = harness.gnu_cksum(path)
            self.files[name] = (rel, size, crc, bool(verified))
            lines.append("file\t%s\t%s\t%s\t%d\t%d\t%d" % (ALICE.hex(), name, rel, size, crc,
                                                          verified))
        mkdb(self.db, lines)

    def tearDown(self):
        self._tmp.__exit__(None, None, None)

    def test_clients_json(self):
        doc = run_json(self, ["clients"], self.dir)
        by_id = {c["id"]: c for c in doc["clients"]}
        self.assertEqual(set(by_id), {ALICE.hex(), BOB.hex(), ODD.hex()})
        a = by_id[ALICE.hex()]
        self.assertEqual(a["name"], "alice")
        self.assertEqual(a["public_key_sha256"], fingerprint(self.alice_key))
        self.assertIs(a["aes_key"], True)
        self.assertEqual(a["files"], 3)
        self.assertIsInstance(a["last_seen"], int)
        self.assertGreater(a["last_seen"], 1600000000)
        b = by_id[BOB.hex()]
        self.assertEqual(b["name"], "bob")
        self.assertIsNone(b["public_key_sha256"])
        self.assertIs(b["aes_key"], False)
        self.assertEqual(b["files"], 0)
        # The byte 0xff is not UTF-8: it comes out as \u00ff, the rest as characters.
        self.assertEqual(by_id[ODD.hex()]["name"], "odd\x01name\xff\u00e9")
        # The AES key itself is never shown.
        raw = run_db(["clients", "--json"], self.dir).stdout
        self.assertNotIn(b"cdcdcdcd", raw)
        self.assertIn(b"\\u0001", raw)

    def test_clients_text_aligned(self):
        res = run_db(["clients"], self.dir)
        self.assertEqual(res.returncode, 0)
        text = res.stdout.decode("utf-8")
        lines = text.splitlines()
        self.assertEqual(len(lines), 4)
        head = lines[0]
        for col in ("ID", "NAME", "KEY SHA-256", "AES KEY", "LAST SEEN", "FILES"):
            self.assertIn(col, head)
        alice = next(l for l in lines if l.startswith(ALICE.hex()))
        # Columns line up under their headings (alice's row is plain ASCII).
        self.assertEqual(alice.index(fingerprint(self.alice_key)), head.index("KEY SHA-256"))
        self.assertEqual(alice.index("yes"), head.index("AES KEY"))
        self.assertTrue(alice.rstrip().endswith("3"))
        self.assertEqual(len(alice), len(head))
        # Control characters never reach the terminal.
        self.assertNotIn("\x01", text)
        self.assertIn("odd\\x01name\\xff\u00e9", text)
        self.assertNotIn("cdcdcdcd", text)

    def test_files_json_and_filters(self):
        doc = run_json(self, ["files"], self.dir)
        rows = {f["file_name"]: f for f in doc["files"]}
        self.assertEqual(set(rows), set(self.files))
        for name, (rel, size, crc, verified) in self.files.items():
            self.assertEqual(rows[name]["owner"], "alice")
            self.assertEqual(rows[name]["owner_id"], ALICE.hex())
            self.assertEqual(rows[name]["path"], rel)
            self.assertEqual(rows[name]["size"], size)
            self.assertEqual(rows[name]["crc"], crc)
            self.assertIs(rows[name]["verified"], verified)
            self.assertIsInstance(rows[name]["uploaded"], int)
        doc = run_json(self, ["files", "--unverified"], self.dir)
        self.assertEqual([f["file_name"] for f in doc["files"]], ["notes.txt"])
        # Options may come before the command; the client by name or by ID in any case.
        for who in ("alice", ALICE.hex(), ALICE.hex().upper()):
            doc = run_json(self, ["--client", who, "files"], self.dir)
            self.assertEqual(len(doc["files"]), 3)
        self.assertEqual(run_json(self, ["files", "--client=bob"], self.dir)["files"], [])
        res = run_db(["files", "--client", "nobody"], self.dir)
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"nobody", res.stderr)

    def test_files_text(self):
        res = run_db(["files"], self.dir)
        self.assertEqual(res.returncode, 0)
        lines = res.stdout.decode().splitlines()
        self.assertEqual(len(lines), 4)
        head = lines[0]
        row = next(l for l in lines if "big.bin" in l)
        rel, size, crc, _ = self.files["big.bin"]
        self.assertIn(rel, row)
        # Numbers are right-aligned: they end where their heading ends.
        self.assertEqual(row.index(str(size)) + len(str(size)), head.index("SIZE") + 4)
        self.assertEqual(row.index(str(crc)) + len(str(crc)), head.index("CRC") + 3)
        self.assertEqual(row.index("yes"), head.index("VERIFIED"))

    def test_show(self):
        doc = run_json(self, ["show", "alice"], self.dir)
        self.assertEqual(doc["client"]["id"], ALICE.hex())
        self.assertEqual(doc["client"]["files"], 3)
        self.assertEqual(sorted(f["file_name"] for f in doc["files"]), sorted(self.files))
        doc = run_json(self, ["--json", "show", BOB.hex()], self.dir)
        self.assertEqual(doc["client"]["name"], "bob")
        self.assertEqual(doc["files"], [])
        res = run_db(["show", "alice"], self.dir)
        self.assertEqual(res.returncode, 0)
        text = res.stdout.decode()
        self.assertIn(ALICE.hex(), text)
        self.assertIn(fingerprint(self.alice_key), text)
        self.assertIn("report.pdf", text)
        res = run_db(["show", "carol"], self.dir)
        self.assertEqual(res.returncode, 1)

    def test_check(self):
        doc = run_json(self, ["check"], self.dir)
        self.assertIs(doc["ok"], True)
        self.assertEqual(doc["rows"], 3)
        self.assertEqual(doc["stored"], 3)
        res = run_db(["check"], self.dir)
        self.assertEqual(res.returncode, 0)
        self.assertIn(b"check: OK", res.stdout)

        # An upload in progress is listed, not counted as a problem.
        part = os.path.join(self.storage, ALICE.hex(), ".sealdrop-part-123456")
        with open(part, "wb") as f:
            f.write(b"half")
        doc = run_json(self, ["check"], self.dir)
        self.assertIs(doc["ok"], True)
        self.assertEqual(doc["partial"], ["%s/.sealdrop-part-123456" % ALICE.hex()])

        # A stored file deleted, and a file nobody recorded.
        os.unlink(os.path.join(self.storage, self.files["report.pdf"][0]))
        os.makedirs(os.path.join(self.storage, BOB.hex()))
        with open(os.path.join(self.storage, BOB.hex(), "stray.bin"), "wb") as f:
            f.write(b"x" * 10)
        doc = run_json(self, ["check"], self.dir, status=1)
        self.assertIs(doc["ok"], False)
        self.assertEqual(doc["missing"], [self.files["report.pdf"][0]])
        self.assertEqual(doc["orphans"], ["%s/stray.bin" % BOB.hex()])
        self.assertEqual(doc["problems"], 2)
        res = run_db(["check"], self.dir)
        self.assertEqual(res.returncode, 1)
        out = res.stdout.decode()
        self.assertIn(self.files["report.pdf"][0], out)
        self.assertIn("stray.bin", out)
        self.assertIn("2 problems", out)

        # A stored file whose size is not the recorded one.
        with open(os.path.join(self.storage, self.files["notes.txt"][0]), "ab") as f:
            f.write(b"more")
        doc = run_json(self, ["check"], self.dir, status=1)
        self.assertEqual([m["path"] for m in doc["size_mismatch"]], [self.files["notes.txt"][0]])
        self.assertEqual(doc["size_mismatch"][0]["disk_size"], 4)

    def test_version4_hashes_and_partial_uploads(self):
        """Files' SHA-256 (none for a version-3 upload), the partial version-4 uploads, and
        check comparing them with their temporary files."""
        digest = hashlib.sha256(b"v4 file").hexdigest()
        rel = "%s/v4.bin" % ALICE.hex()
        path = os.path.join(self.storage, rel)
        with open(path, "wb") as f:
            f.write(b"v4 file")
        crc = harness.gnu_cksum(path)
        resume = ".sealdrop-part-resume-0011223344556677"
        tmp_rel = "%s/%s" % (ALICE.hex(), resume)
        with open(os.path.join(self.storage, tmp_rel), "wb") as f:
            f.write(b"p" * 700)
        gone_rel = "%s/.sealdrop-part-resume-8899aabbccddeeff" % ALICE.hex()
        mkdb(self.db, ["file\t%s\tv4.bin\t%s\t7\t%d\t1\t1700000000\t%s"
                       % (ALICE.hex(), rel, crc, digest),
                       "upload\t%s\tmovie.mkv\t5000000000\t512\t%s\t4102444800"
                       % (ALICE.hex(), tmp_rel)])
        rows = {f["file_name"]: f for f in run_json(self, ["files"], self.dir)["files"]}
        self.assertEqual(rows["v4.bin"]["sha256"], digest)
        self.assertIsNone(rows["report.pdf"]["sha256"])
        text = run_db(["files"], self.dir).stdout.decode()
        self.assertIn("SHA-256", text.splitlines()[0])
        self.assertIn(digest[:16], text)

        doc = run_json(self, ["uploads"], self.dir)
        self.assertEqual(len(doc["uploads"]), 1)
        u = doc["uploads"][0]
        self.assertEqual((u["owner"], u["owner_id"], u["file_name"], u["size"], u["offset"],
                          u["expires"], u["temp_path"]),
                         ("alice", ALICE.hex(), "movie.mkv", 5000000000, 512, 4102444800,
                          tmp_rel))
        self.assertEqual(run_json(self, ["uploads", "--client", "bob"], self.dir)["uploads"], [])
        text = run_db(["uploads"], self.dir).stdout.decode()
        for col in ("OWNER", "FILE", "SIZE", "DURABLE", "EXPIRES", "TEMP PATH"):
            self.assertIn(col, text.splitlines()[0])
        self.assertIn("5000000000", text)

        # The temporary file holds at least the durable offset: fine, and not an orphan.
        doc = run_json(self, ["check"], self.dir)
        self.assertIs(doc["ok"], True, doc)
        self.assertEqual(doc["orphans"], [])
        self.assertEqual(doc["partial_upload_problems"], [])
        # Shorter than the durable offset, then missing: problems.
        with open(os.path.join(self.storage, tmp_rel), "r+b") as f:
            f.truncate(100)
        doc = run_json(self, ["check"], self.dir, status=1)
        self.assertEqual([(p["temp_path"], p["problem"]) for p in doc["partial_upload_problems"]],
                         [(tmp_rel, "temporary file shorter than the durable offset")])
        os.unlink(os.path.join(self.storage, tmp_rel))
        mkdb(self.db, ["upload\t%s\tother\t10\t0\t%s\t4102444800" % (ALICE.hex(), gone_rel)])
        doc = run_json(self, ["check"], self.dir, status=1)
        self.assertEqual(sorted(p["temp_path"] for p in doc["partial_upload_problems"]),
                         sorted([tmp_rel, gone_rel]))
        self.assertEqual(doc["problems"], 2)
        res = run_db(["check"], self.dir)
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"temporary file missing", res.stdout)

    def test_check_crc_of_verified_files(self):
        # Issue 9 item 1: a verified file whose bytes changed but not its size is a problem
        # (check compares the CRC by default; --no-crc compares sizes only).
        rel = self.files["report.pdf"][0]
        path = os.path.join(self.storage, rel)
        with open(path, "r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xff]))
        doc = run_json(self, ["check"], self.dir, status=1)
        self.assertIs(doc["crc_checked"], True)
        self.assertEqual([m["path"] for m in doc["crc_mismatch"]], [rel])
        self.assertEqual(doc["crc_mismatch"][0]["db_crc"], self.files["report.pdf"][2])
        self.assertEqual(doc["crc_mismatch"][0]["disk_crc"], harness.gnu_cksum(path))
        self.assertEqual(doc["problems"], 1)
        res = run_db(["check", "--crc"], self.dir)
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"CRC differs on a verified file: " + rel.encode(), res.stdout)
        doc = run_json(self, ["check", "--no-crc"], self.dir)
        self.assertIs(doc["ok"], True)
        self.assertIs(doc["crc_checked"], False)

    def test_check_row_being_committed(self):
        # A commit intent on the path: the server renamed (or is about to rename) the new
        # version and has not published its row yet; the next start rolls it forward. The row
        # and the file are listed as being committed, not as a problem.
        rel = self.files["big.bin"][0]
        with open(os.path.join(self.storage, rel), "wb") as f:
            f.write(b"new version")
        new_rel = "%s/fresh.bin" % ALICE.hex()
        with open(os.path.join(self.storage, new_rel), "wb") as f:
            f.write(b"renamed, row not yet written")
        mkdb(self.db, ["commit\t%s\tbig.bin\t%s/.sealdrop-part-1\t%s\t11\t1\t1"
                       % (ALICE.hex(), ALICE.hex(), rel),
                       "commit\t%s\tfresh.bin\t%s/.sealdrop-part-2\t%s\t28\t1\t1"
                       % (ALICE.hex(), ALICE.hex(), new_rel)])
        doc = run_json(self, ["check"], self.dir)
        self.assertIs(doc["ok"], True)
        self.assertEqual(doc["committing"], sorted([rel, new_rel]))
        self.assertEqual(doc["size_mismatch"], [])
        self.assertEqual(doc["orphans"], [])
        res = run_db(["check"], self.dir)
        self.assertEqual(res.returncode, 0)
        self.assertIn(b"being committed", res.stdout)

    def test_storage_option_and_db_elsewhere(self):
        # From another folder: the storage folder defaults to "files" beside the database.
        other = os.path.join(self.dir, "elsewhere")
        os.mkdir(other)
        doc = run_json(self, ["--db", self.db, "check"], other)
        self.assertIs(doc["ok"], True)
        # An explicit empty storage folder: every row is missing.
        empty = os.path.join(self.dir, "empty")
        os.mkdir(empty)
        doc = run_json(self, ["check", "--db", self.db, "--storage", empty], other, status=1)
        self.assertEqual(len(doc["missing"]), 3)

    def test_schema_names_for_sqlite3_users(self):
        # The names of SPEC.md 8, and a LastSeen that reads as a time in the sqlite3 shell.
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        con.text_factory = lambda b: b.decode("utf-8", "replace")  # odd names hold 0xff
        try:
            rows = con.execute("SELECT Name, LastSeen, typeof(ID), length(ID) FROM clients "
                               "WHERE Name = 'alice'").fetchall()
            self.assertEqual(len(rows), 1)
            self.assertRegex(rows[0][1], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
            self.assertEqual(rows[0][2:], ("blob", 16))
            n = con.execute("SELECT count(*) FROM files WHERE Verified = 1").fetchone()[0]
            self.assertEqual(n, 2)
            con.execute("SELECT ID, FileName, PathName, Verified, Size, CRC, Uploaded "
                        "FROM files").fetchall()
            con.execute("SELECT ID, Name, PublicKey, LastSeen, AESKey FROM clients").fetchall()
        finally:
            con.close()


class BadInput(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.tmpdir("sealdrop-dbtool-")
        self.dir = self._tmp.__enter__()

    def tearDown(self):
        self._tmp.__exit__(None, None, None)

    def expect_no_db(self, name, reason):
        for cmd in (["clients"], ["files"], ["check"], ["show", "x"]):
            res = run_db(["--db", name] + cmd, self.dir)
            self.assertEqual(res.returncode, 3, (cmd, res.stderr))
            self.assertEqual(res.stdout, b"")
            err = res.stderr.decode()
            self.assertIn("sealdrop-db: %s: " % name, err)
            self.assertIn(reason, err)

    def test_missing_database(self):
        self.expect_no_db("defensive.db", "no such database")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "defensive.db")))

    def test_not_a_database(self):
        with open(os.path.join(self.dir, "random.db"), "wb") as f:
            f.write(random.Random(5).randbytes(8192))
        self.expect_no_db("random.db", "not a sealdrop database")
        with open(os.path.join(self.dir, "text.db"), "w") as f:
            f.write("hello\n")
        self.expect_no_db("text.db", "not a sealdrop database")
        con = sqlite3.connect(os.path.join(self.dir, "other.db"))
        con.execute("CREATE TABLE notes (body TEXT)")
        con.commit()
        con.close()
        self.expect_no_db("other.db", "not a sealdrop database")
        os.mkdir(os.path.join(self.dir, "dir.db"))
        self.expect_no_db("dir.db", "directory")

    def test_corrupt_database(self):
        db = os.path.join(self.dir, "defensive.db")
        mkdb(db, ["client\talice\t%s" % ALICE.hex()])
        with open(db, "r+b") as f:
            f.write(b"\x00" * 100)  # the header: no longer an SQLite file
        self.expect_no_db("defensive.db", "not a sealdrop database")

    def test_damaged_pages(self):
        # A database whose header is intact but whose tables are garbage: check reports the
        # damage (1), the listings cannot read it (3); nothing crashes.
        db = os.path.join(self.dir, "defensive.db")
        mkdb(db, ["client\tc%d\t%032x" % (i, i) for i in range(1, 200)])
        size = os.path.getsize(db)
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(bytes((i * 7 + 3) & 255 for i in range(size - 4096)))
        res = run_db(["check"], self.dir)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertNotIn(b"integrity: ok", res.stdout)
        res = run_db(["clients"], self.dir)
        self.assertEqual(res.returncode, 3, res.stderr)
        self.assertIn(b"defensive.db", res.stderr)

    def test_usage(self):
        for args in (["frobnicate"], [], ["clients", "extra"], ["show"], ["--nope", "clients"],
                     ["check", "--client", "x"], ["--db"]):
            res = run_db(args, self.dir)
            self.assertEqual(res.returncode, 2, args)
            self.assertIn(b"sealdrop-db", res.stderr)
        res = run_db(["--help"], self.dir)
        self.assertEqual(res.returncode, 0)
        self.assertIn(b"clients", res.stdout)
        res = run_db(["--version"], self.dir)
        self.assertEqual(res.returncode, 0)
        with open(os.path.join(harness.TOP, "VERSION")) as f:
            self.assertIn(f.read().strip().encode(), res.stdout)


@unittest.skipUnless(os.access(harness.SERVER_BIN, os.X_OK), "no bin/sealdrop-server")
class RealServer(unittest.TestCase):
    """A database written by bin/sealdrop-server for uploads of the Python peer."""

    def test_server_database(self):
        with harness.tmpdir("sealdrop-dbtool-srv-") as work:
            sessions = {}
            with harness.Server(work) as srv:
                for name, size in (("amy", 70000), ("ben", 1), ("cat", 0)):
                    data = harness.gen_bytes(size)
                    with sdpeer.PeerClient("127.0.0.1", srv.port) as c:
                        res = c.full_session(name, "%s.dat" % name, data)
                    self.assertEqual(res["code"], sdpeer.ACK, res)
                    sessions[name] = (res, data)
                # While the server runs, the tool reads.
                self.check_listing(work, sessions)
                self.assertEqual(run_db(["check"], work).returncode, 0)
                self.read_while_writing(work, srv, sessions)
            self.assertEqual(srv.stop(), 0)

            # A server that corrupts every CRC it reports: the file stays unverified (902).
            with harness.Server(work, args=["--test-corrupt-crc", "4"]) as srv:
                with sdpeer.PeerClient("127.0.0.1", srv.port) as c:
                    res = c.full_session("dan", "dan.dat", harness.gen_bytes(5000))
                self.assertEqual(res["step"], "crc_fail", res)
            doc = run_json(self, ["files", "--unverified"], work)
            self.assertEqual([(f["owner"], f["file_name"]) for f in doc["files"]],
                             [("dan", "dan.dat")])
            self.assertEqual(doc["files"][0]["owner_id"], res["client_id"].hex())
            self.assertEqual(doc["files"][0]["size"], 5000)

            # check after the server stopped: clean; then with a file gone and a stray one.
            self.assertEqual(run_db(["check"], work).returncode, 0)
            amy = sessions["amy"][0]["client_id"].hex()
            os.unlink(os.path.join(work, "files", amy, "amy.dat"))
            with open(os.path.join(work, "files", amy, "extra.bin"), "wb") as f:
                f.write(b"?")
            doc = run_json(self, ["check"], work, status=1)
            self.assertEqual(doc["missing"], ["%s/amy.dat" % amy])
            self.assertEqual(doc["orphans"], ["%s/extra.bin" % amy])

    def check_listing(self, work, sessions):
        doc = run_json(self, ["clients"], work)
        by_name = {c["name"]: c for c in doc["clients"]}
        self.assertEqual(set(by_name), set(sessions))
        for name, (res, _) in sessions.items():
            c = by_name[name]
            self.assertEqual(c["id"], res["client_id"].hex())
            self.assertEqual(c["public_key_sha256"], fingerprint(res["rsa_key"].spki()))
            self.assertIs(c["aes_key"], True)
            self.assertEqual(c["files"], 1)
        doc = run_json(self, ["files"], work)
        self.assertEqual(len(doc["files"]), len(sessions))
        for f in doc["files"]:
            res, data = sessions[f["owner"]]
            stored = os.path.join(work, "files", f["path"])
            self.assertEqual(f["path"], "%s/%s.dat" % (res["client_id"].hex(), f["owner"]))
            self.assertEqual(f["size"], len(data))
            self.assertEqual(f["crc"], harness.gnu_cksum(stored))
            self.assertEqual(f["crc"], res["cksum"])
            self.assertIs(f["verified"], True)
        for name, (res, data) in sessions.items():
            doc = run_json(self, ["show", res["client_id"].hex()], work)
            self.assertEqual(doc["client"]["name"], name)
            self.assertEqual([f["size"] for f in doc["files"]], [len(data)])
        res = run_db(["clients"], work)
        self.assertEqual(res.returncode, 0)
        for name in sessions:
            self.assertIn(name.encode(), res.stdout)

    def read_while_writing(self, work, srv, sessions):
        """Uploads go on in a thread while the tool lists again and again: every listing
        succeeds, parses, and never shows fewer clients than the one before."""
        errors = []
        done = threading.Event()

        def writer():
            try:
                for i in range(6):
                    with sdpeer.PeerClient("127.0.0.1", srv.port) as c:
                        res = c.full_session("w%d" % i, "w.dat", harness.gen_bytes(300000, i))
                    if res["code"] != sdpeer.ACK:
                        errors.append(res)
            except Exception as e:  # reported below, never left hanging
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=writer)
        t.start()
        seen = 0
        runs = 0
        try:
            while runs < 200 and (not done.is_set() or runs < 3):
                doc = run_json(self, ["clients"], work)
                self.assertGreaterEqual(len(doc["clients"]), seen)
                seen = len(doc["clients"])
                run_json(self, ["files"], work)
                runs += 1
        finally:
            t.join(timeout=120)
        self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        self.assertEqual(len(run_json(self, ["clients"], work)["clients"]), len(sessions) + 6)
        self.assertEqual(run_db(["check"], work).returncode, 0)


if __name__ == "__main__":
    harness.run_tests()

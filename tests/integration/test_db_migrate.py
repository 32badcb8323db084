"""sealdrop-db against PostgreSQL, and `sealdrop-db migrate`: a SQLite database written by a
real server (plus a commit intent and a partial upload) copied into PostgreSQL twice with the
same result and a passing check; the listing reads the same from both; a server on the copy
serves the migrated client. Needs the cluster of tests/run.sh (SEALDROP_TEST_PG), else SKIPPED."""

import hashlib
import os
import sqlite3
import subprocess
import unittest

import harness
import sdpeer

OK, WHY = harness.pg_available()


def tool(*args):
    return subprocess.run([harness.DB_BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN)
class Migrate(unittest.TestCase):
    def test_migrate_twice_and_serve(self):
        with harness.tmpdir() as d:
            key = sdpeer.RSAKey.generate()
            data = harness.gen_bytes(7000, seed=3)
            srv = harness.Server(d, args=["--db", os.path.join(d, "defensive.db")])
            srv.start()
            try:
                ids = []
                for i in range(3):
                    with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                        r = pc.full_session("mig-%d" % i, "f%d.bin" % i, data, rsa_key=key)
                        self.assertEqual(r["step"], "crc_ok")
                        ids.append(bytes(r["client_id"]))
                with sdpeer.PeerClient("127.0.0.1", srv.port) as pc:
                    pc.connect()
                    self.assertEqual(pc.register("pending")[0], sdpeer.REGISTERED)
            finally:
                self.assertEqual(srv.stop(), 0)
            con = sqlite3.connect(os.path.join(d, "defensive.db"))
            with con:
                con.execute("INSERT INTO commits (ID, FileName, TempPath, PathName, Size, CRC, "
                            "Verified, Created) VALUES (?, 'c.bin', 'x/.t1', 'x/c.bin', 5, 9, 1, "
                            "'2026-01-02 03:04:05')", (ids[0],))
                con.execute("INSERT INTO uploads (ID, FileName, Size, \"Offset\", TempPath, "
                            "Expires, Created) VALUES (?, 'u.bin', 100, 40, 'x/.t2', "
                            "'2030-01-01 00:00:00', '2026-01-01 00:00:00')", (ids[1],))
            con.close()

            conninfo = harness.pg_create_db("sd_migrate_%d" % os.getpid(), fresh=True)
            src = os.path.join(d, "defensive.db")
            outs = []
            for _ in range(2):
                p = tool("migrate", "--from", src, "--to", conninfo)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("copied: 4 clients, 3 files, 1 commit intents, 1 partial uploads",
                              p.stdout)
                self.assertIn("every source row is in the destination, equal", p.stdout)
                outs.append(p.stdout)
            self.assertEqual(outs[0], outs[1])
            self.assertEqual(harness.pg_psql(conninfo, "SELECT count(*) FROM clients").strip(),
                             "4")
            # The listings read the same from both backends.
            for cmd in (["clients"], ["files"], ["show", "mig-1"]):
                a = tool("--db", src, "--json", *cmd)
                b = tool("--db", conninfo, "--json", *cmd)
                self.assertEqual(a.returncode, 0, a.stderr)
                self.assertEqual((b.returncode, b.stdout), (0, a.stdout), b.stderr)
            chk = tool("--db", conninfo, "--storage", os.path.join(d, "files"), "check")
            self.assertNotEqual(chk.returncode, 3, chk.stderr)  # the check ran on PostgreSQL
            self.assertEqual(tool("--db", conninfo, "clients").returncode, 0)
            # A server on the copy knows the client: it reconnects and uploads there.
            with harness.tmpdir() as w:
                s2 = harness.Server(w, args=["--db", conninfo, "--storage",
                                             os.path.join(d, "files")])
                s2.start()
                try:
                    with sdpeer.PeerClient("127.0.0.1", s2.port) as pc:
                        pc.connect()
                        code, aes, _ = pc.reconnect("mig-2", ids[2], key)
                        self.assertEqual(code, sdpeer.RECONNECTED)
                        r = pc.upload("g.bin", data, aes)
                        self.assertEqual(r["cksum"], sdpeer.cksum(data))
                        self.assertEqual(pc.crc_ok("g.bin"), sdpeer.ACK)
                finally:
                    s2.stop()
            bad = tool("migrate", "--from", os.path.join(d, "missing.db"), "--to", conninfo)
            self.assertEqual(bad.returncode, 3)
            bad = tool("--db", conninfo + " port=1", "clients")
            self.assertEqual(bad.returncode, 3)
            # Where the database is and why it failed, not the whole string.
            self.assertIn("PostgreSQL host=", bad.stderr)
            self.assertIn("cannot connect: ", bad.stderr)


SECRET = "TopSecret99"
MKDB = os.path.join(harness.TOOLS, "mkdb")


def mkdb(target, lines):
    p = subprocess.run([MKDB, target], input="\n".join(lines) + "\n", text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("mkdb: " + p.stderr)


TABLES = ("clients", "files", "commits", "uploads")


def pg_snapshot(conninfo):
    return [harness.pg_psql(conninfo, "SELECT t::text FROM %s t ORDER BY t::text" % t)
            for t in TABLES]


def sqlite_snapshot(path):
    con = sqlite3.connect(path)
    try:
        return [sorted(con.execute("SELECT * FROM %s" % t).fetchall()) for t in TABLES]
    finally:
        con.close()


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.DB_BIN, MKDB)
class MigrateExactly(unittest.TestCase):
    def test_reference_rows_twice_no_change(self):
        """Rows as a database upgraded from a reference server has them (Uploaded and
        LastSeen NULL), version-4 accounts with fingerprints, SHA-256 on files and intents,
        partial uploads, into a destination that has rows of its own: each run exits 0, the
        second changes nothing; the same back into a new SQLite file."""
        a, b, c, o = ("%032x" % (0xa0 + i) for i in range(4))
        sha = hashlib.sha256(b"x").hexdigest()
        fp = "SHA256:" + "A" * 42 + "Q"
        fp2 = "SHA256:" + "B" * 42 + "g"
        with harness.tmpdir() as d:
            src = os.path.join(d, "src.db")
            mkdb(src, ["client\tref\t%s\t%s\t%s" % (a, "30" * 160, "11" * 32),
                       "client4\tvier\t%s\t%s\t%s" % (b, "31" * 100, fp),
                       "client\tlinked\t%s\t%s\t-" % (c, "32" * 160),
                       "bind\t%s\t%s" % (c, fp2),
                       "file\t%s\tref.bin\tA/ref.bin\t10\t77\t1" % a,
                       "file\t%s\tv.bin\tB/v.bin\t5\t66\t1\t1700000000\t%s" % (b, sha),
                       "file\t%s\tu.bin\tB/u.bin\t6\t55\t0\t1700000001" % b,
                       "commit\t%s\tc.bin\tB/.t1\tB/c.bin\t5\t9\t1\t%s" % (b, sha),
                       "upload\t%s\tp.bin\t100\t40\tB/.t2\t1900000000" % b])
            con = sqlite3.connect(src)
            with con:
                con.execute("UPDATE files SET Uploaded = NULL WHERE FileName = 'ref.bin'")
                con.execute("UPDATE clients SET LastSeen = NULL WHERE Name = 'ref'")
                con.execute("UPDATE uploads SET Created = '2026-01-01 00:00:00'")
            con.close()
            conninfo = harness.pg_create_db("sd_migrate_ref_%d" % os.getpid(), fresh=True)
            mkdb(conninfo, ["client\tother\t%s" % o,
                            "file\t%s\to.bin\tO/o.bin\t1\t2\t1\t1600000000" % o])
            snaps = []
            for _ in range(2):
                p = tool("migrate", "--from", src, "--to", conninfo)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("copied: 3 clients, 3 files, 1 commit intents, 1 partial uploads",
                              p.stdout)
                self.assertIn("every source row is in the destination, equal", p.stdout)
                snaps.append(pg_snapshot(conninfo))
            self.assertEqual(snaps[0], snaps[1])
            self.assertEqual(harness.pg_psql(conninfo, "SELECT count(*) FROM files WHERE "
                                             "Uploaded IS NULL").strip(), "1")
            self.assertEqual(harness.pg_psql(conninfo, "SELECT Fingerprint FROM clients "
                                             "ORDER BY Fingerprint").split(),
                             [fp, fp2])
            self.assertEqual(harness.pg_psql(conninfo, "SELECT Created FROM uploads").strip(),
                             "2026-01-01 00:00:00")
            # And back into SQLite (the destination's own rows come along).
            back = os.path.join(d, "back.db")
            snaps = []
            for _ in range(2):
                p = tool("migrate", "--from", conninfo, "--to", back)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("copied: 4 clients, 4 files", p.stdout)
                snaps.append(sqlite_snapshot(back))
            self.assertEqual(snaps[0], snaps[1])
            con = sqlite3.connect(back)
            self.assertEqual(con.execute("SELECT count(*) FROM files WHERE Uploaded IS NULL")
                             .fetchone()[0], 1)
            con.close()


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.SERVER_BIN, harness.DB_BIN, MKDB)
class PasswordNeverShown(unittest.TestCase):
    """docs/deployment.md: servers and sealdrop-db never echo a connection string. A password
    marker in every form of --db never reaches stdout or stderr, whatever fails."""

    def assert_hidden(self, p, *expect):
        out = (p.stdout or "") + (p.stderr or "")
        self.assertNotIn("Secret99", out)
        for e in expect:
            self.assertIn(e, out)

    def test_password_never_in_messages(self):
        conninfo = harness.pg_create_db("sd_pw_%d" % os.getpid(), fresh=True)
        mkdb(conninfo, ["client\talice\t%s" % ("01" * 16),
                        "file\t%s\ta.bin\ta/a.bin\t3\t7\t1" % ("01" * 16)])
        # A role that may read clients but not files: the listing of files fails after the
        # open succeeded (as after a database restart), and says where, not how to log in.
        harness.pg_psql(harness.PG_ADMIN, "DO $$BEGIN CREATE ROLE sd_noread LOGIN; "
                        "EXCEPTION WHEN duplicate_object THEN NULL; END$$")
        harness.pg_psql(conninfo, "GRANT SELECT ON sealdrop_schema, clients, commits, uploads "
                        "TO sd_noread")
        limited = "%s user=sd_noread password=%s" % (conninfo, SECRET)
        p = tool("--db", limited, "uploads")
        self.assertEqual(p.returncode, 0, p.stderr)
        for cmd in (["clients"], ["files"], ["show", "alice"]):
            p = tool("--db", limited, *cmd)
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assert_hidden(p, "permission denied", "user=sd_noread")
        uri = ("postgresql://sd_noread:%s@/sd_pw_%d?host=%s&port=%s" %
               (SECRET, os.getpid(), harness.PG_ADMIN.split("host=")[1].split()[0],
                harness.PG_ADMIN.split("port=")[1].split()[0]))
        p = tool("--db", uri, "files")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assert_hidden(p, "permission denied")
        # Strings libpq cannot parse (its own message quotes them), a database name that is a
        # URI with a password (the server's message quotes it), a server that is not there.
        unparsable = ["postgresql://sealdrop:%s@[db1/sealdrop" % SECRET, "password=Top Secret99"]
        bad = unparsable + ["%s password=%s dbname=postgresql://u:%s@h/db" %
                            (harness.PG_ADMIN, SECRET, SECRET),
                            "%s port=1 password=%s" % (harness.PG_ADMIN, SECRET)]
        for target in bad:
            p = tool("--db", target, "clients")
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assert_hidden(p, "sealdrop-db: PostgreSQL")
            for args in (["--from", target, "--to", conninfo],
                         ["--from", conninfo, "--to", target]):
                p = tool("migrate", *args)
                self.assertEqual(p.returncode, 3, p.stderr)
                self.assert_hidden(p, "cannot open the")
            with harness.tmpdir() as d:
                p = subprocess.run([harness.SERVER_BIN, "--port", str(harness.free_port()),
                                    "--db", target, "--storage", os.path.join(d, "files")],
                                   cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
                self.assertNotEqual(p.returncode, 0)
                self.assert_hidden(p, "cannot open the database PostgreSQL")
        for target in unparsable:
            self.assert_hidden(tool("--db", target, "clients"), "unparsable connection string")
        # The reason a connection failed is given (the password still is not).
        self.assert_hidden(tool("--db", bad[2], "clients"), "does not exist")


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

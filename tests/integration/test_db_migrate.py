"""sealdrop-db against PostgreSQL, and `sealdrop-db migrate`: a SQLite database written by a
real server (plus a commit intent and a partial upload) copied into PostgreSQL twice with the
same result and a passing check; the listing reads the same from both; a server on the copy
serves the migrated client. Needs the cluster of tests/run.sh (SEALDROP_TEST_PG), else SKIPPED."""

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
            self.assertNotIn("port=1", bad.stderr)


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

"""test_client_server: the real client against our real server (bin/sealdrop-server) on
127.0.0.1: registration and reconnect with the database rows checked, files of several sizes,
every packet layout option, the CRC loop through the server's --test-corrupt-crc switch, the
1606 paths, and the recorded clients' me.info/priv.key after seeding their rows."""

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import unittest

from harness import (CLIENT_BIN, FIXTURES, SERVER_BIN, Server, make_file, run_client,
                     run_tests, skip_unless_built, tmpdir, write_transfer_info)
import sdpeer

NAME = "Server Tester"
OK, CRC, REFUSED = 0, 8, 9


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


@skip_unless_built(SERVER_BIN, CLIENT_BIN)
class ClientServer(unittest.TestCase):
    """Our client and our server over version 3 (the CRC loop, the packet layouts): our
    server also speaks version 4, which the client would choose by itself."""
    server_args = ()
    client_args = ("--protocol", "3")

    def setUp(self):
        self._tmp = tmpdir("sd-cs-")
        self.dir = self._tmp.__enter__()
        self.srvdir = os.path.join(self.dir, "srv")
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.srvdir)
        os.makedirs(self.work)
        self.server = Server(self.srvdir, args=self.server_args)
        self.server.start()

    def tearDown(self):
        # A graceful stop exits 0 (under valgrind: no error and no definite leak either).
        code = self.server.stop(timeout=60)
        log = self.server.log()
        self._tmp.__exit__(None, None, None)
        self.assertEqual(code, 0, log)

    def setup_file(self, size, name="upload.bin", client=NAME):
        path = make_file(os.path.join(self.work, name), size)
        write_transfer_info(self.work, self.server.address, client, name)
        return path

    def run_client(self, args=(), status=OK, timeout=300):
        res = run_client(self.work, list(self.client_args) + list(args), timeout=timeout)
        self.assertEqual(res.returncode, status, res.stderr + self.server.log())
        return res

    def db(self, sql, *params):
        con = sqlite3.connect(os.path.join(self.srvdir, "defensive.db"), timeout=10)
        try:
            with con:
                return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def me_id(self):
        return read(os.path.join(self.work, "me.info"), "r").split("\n")[1]

    def stored(self, name="upload.bin"):
        return os.path.join(self.srvdir, "files", self.me_id(), name)


class Sessions(ClientServer):
    def test_register_reconnect_and_rows(self):
        path = self.setup_file(50000)
        self.run_client()
        for f in ("me.info", "priv.key"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.work, f)).st_mode), 0o600)
        lines = read(os.path.join(self.work, "me.info"), "r").split("\n")
        rows = self.db("SELECT hex(ID), Name, PublicKey FROM clients")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][0].lower(), lines[1])
        self.assertEqual(rows[0][1], NAME)
        self.assertEqual(bytes(rows[0][2]), sdpeer.RSAKey.from_base64(lines[2]).spki())
        self.assertEqual(read(self.stored()), read(path))
        self.assertEqual(self.db("SELECT FileName, Verified FROM files"), [("upload.bin", 1)])
        before = read(os.path.join(self.work, "me.info"))
        res = self.run_client(["--verbose"])
        self.assertIn("827", res.stderr)
        self.assertNotIn("-> 825", res.stderr)
        self.assertEqual(read(os.path.join(self.work, "me.info")), before)
        self.assertEqual(read(self.stored()), read(path))

    def test_sizes(self):
        for size in (0, 1, 16, 17, 100 << 20):
            with self.subTest(size=size):
                path = self.setup_file(size, name="s%d.bin" % size)
                self.run_client()
                self.assertEqual(sha(self.stored("s%d.bin" % size)), sha(path))

    def test_layouts(self):
        for args in ([], ["--packet-size", "1024"], ["--first-packet", "0"],
                     ["--packet-size", "1024", "--pad-last-packet"],
                     ["--packet-size", "1024", "--pad-last-packet", "--first-packet", "0"],
                     ["--packet-size", "1024", "--per-packet-encryption"],
                     ["--single-packet"], ["--packet-size", "8192"]):
            with self.subTest(args=args):
                name = "l%d.bin" % len(os.listdir(self.work))
                path = self.setup_file(20000, name=name)
                self.run_client(args)
                self.assertEqual(read(self.stored(name)), read(path))
                self.assertEqual(self.db("SELECT Verified FROM files WHERE FileName = ?", name),
                                 [(1,)])

    def test_unknown_name_with_old_me_info_registers_anew(self):
        # 827 with a name the server does not know: 1606 with a new (pending) ID, 825
        # re-registers it, 826, upload; me.info is rewritten for the new name and ID.
        self.setup_file(100)
        self.run_client()
        old_id = self.me_id()
        path = self.setup_file(100, client="Renamed Tester")
        res = self.run_client(["--verbose"])
        self.assertIn("1606", res.stderr)
        self.assertNotEqual(self.me_id(), old_id)
        self.assertEqual(read(os.path.join(self.work, "me.info"), "r").split("\n")[0],
                         "Renamed Tester")
        self.assertEqual(read(self.stored()), read(path))

    def test_wrong_id_for_a_known_name_is_refused(self):
        # 1606 echoing our ID, then 825 gets 1601: the name is not handed over.
        self.setup_file(100)
        self.run_client()
        me = read(os.path.join(self.work, "me.info"), "r").split("\n")
        me[1] = "00" * 16
        with open(os.path.join(self.work, "me.info"), "w") as f:
            f.write("\n".join(me))
        res = self.run_client(status=REFUSED)
        self.assertIn("Fatal error", res.stderr)
        self.assertEqual(read(os.path.join(self.work, "me.info"), "r").split("\n")[1], "00" * 16)

    def test_recorded_clients_key_files(self):
        for client in ("client-fixed1024-from1", "client-var8192-from1",
                       "client-perpacket-swapped", "client-fixed1024-from0"):
            with self.subTest(client=client):
                run = os.path.join(FIXTURES, "clients", client, "first-run-3000")
                keys = json.loads(read(os.path.join(run, "keys.json"), "r"))
                shutil.rmtree(self.work)
                os.makedirs(self.work)
                for f in ("me.info", "priv.key"):
                    shutil.copy(os.path.join(run, f), os.path.join(self.work, f))
                self.db("DELETE FROM files WHERE ID IN "
                        "(SELECT ID FROM clients WHERE Name = 'Fixture Tester')")
                self.db("DELETE FROM clients WHERE Name = 'Fixture Tester'")
                con = sqlite3.connect(os.path.join(self.srvdir, "defensive.db"), timeout=10)
                with con:
                    con.execute("INSERT INTO clients (ID, Name, PublicKey) VALUES (?, ?, ?)",
                                (bytes.fromhex(keys["client_id"]), "Fixture Tester",
                                 bytes.fromhex(keys["public_key_spki"])))
                con.close()
                path = self.setup_file(3000, client="Fixture Tester")
                res = self.run_client(["--verbose"])
                self.assertIn("1605", res.stderr)
                self.assertEqual(self.me_id(), keys["client_id"])
                self.assertEqual(read(self.stored()), read(path))


class CorruptOnce(ClientServer):
    server_args = ("--test-corrupt-crc", "1")

    def test_retry_after_one_mismatch(self):
        path = self.setup_file(30000)
        res = self.run_client(["--verbose"])
        self.assertEqual(res.stderr.count("-> 901"), 1)
        self.assertIn("-> 900", res.stderr)
        self.assertEqual(read(self.stored()), read(path))
        self.assertEqual(self.db("SELECT Verified FROM files"), [(1,)])


class CorruptAlways(ClientServer):
    server_args = ("--test-corrupt-crc", "4")

    def test_gives_up_after_four(self):
        self.setup_file(30000)
        res = self.run_client(["--verbose"], status=CRC)
        self.assertEqual(res.stderr.count("-> 901"), 3)
        self.assertEqual(res.stderr.count("-> 902"), 1)
        self.assertNotIn("-> 900", res.stderr)
        self.assertIn("Fatal error", res.stderr)
        self.assertEqual(self.db("SELECT Verified FROM files"), [(0,)])


if __name__ == "__main__":
    run_tests()

"""test_client_server: the real client against our real server (bin/sealdrop-server) on
127.0.0.1: registration and reconnect with the database rows checked, files of several sizes,
every packet layout option, the CRC loop through the server's --test-corrupt-crc switch, the
1606 paths, the recorded clients' me.info/priv.key after seeding their rows, and version 4
between our own client and server (pinning, send, list, get, rm, reconnect). `make valgrind`
runs this module with both programs under valgrind."""

import hashlib
import json
import os
import re
import shutil
import stat
import unittest

from harness import (CLIENT_BIN, FIXTURES, SERVER_BIN, Server, make_file, run_client,
                     run_tests, skip_unless_built, tmpdir, write_transfer_info)
import sdpeer
import server_helpers as sh

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
        if not sql.lstrip().upper().startswith("SELECT"):
            sh.execute(self.srvdir, sql, params)
            return []
        return sh.query(self.srvdir, sql, params)

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
        rows = self.db("SELECT ID, Name, PublicKey FROM clients")
        self.assertEqual(len(rows), 1)
        self.assertEqual(bytes(rows[0][0]).hex(), lines[1])
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
                sh.execute(self.srvdir,
                           "INSERT INTO clients (ID, Name, PublicKey) VALUES (?, ?, ?)",
                           (bytes.fromhex(keys["client_id"]), "Fixture Tester",
                            bytes.fromhex(keys["public_key_spki"])))
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


class Version4(ClientServer):
    """Our client and our server over version 4 (TLS 1.3, both keys pinned)."""
    client_args = ("--protocol", "4")

    def fingerprint(self):
        m = re.search(r"server key fingerprint (SHA256:\S+)", self.server.log())
        self.assertIsNotNone(m, self.server.log())
        return m.group(1)

    def test_pins_sends_lists_gets_removes_and_reconnects(self):
        src = self.setup_file(3 * 1024 * 1024 + 17)
        first = self.run_client(["-q"])
        # The client pinned exactly the key the server announces, and stored its own key.
        with open(os.path.join(self.work, "known_servers")) as f:
            pinned = f.read()
        self.assertIn(self.server.address, pinned)
        self.assertIn(self.fingerprint(), pinned)
        self.assertTrue(os.path.exists(os.path.join(self.work, "me.key")), first.stderr)
        self.assertEqual(sha(self.stored()), sha(src))
        rows = self.db("SELECT FileName, Verified FROM files")
        self.assertEqual(rows, [("upload.bin", 1)])

        # A second file through the same identity: the ID in me.info is unchanged.
        me = self.me_id()
        small = make_file(os.path.join(self.work, "small.bin"), 1000, seed=7)
        self.run_client(["-q", "send", small])
        self.assertEqual(self.me_id(), me)

        listing = json.loads(self.run_client(["list", "--json"]).stdout)
        names = sorted(e["name"] for e in listing)
        self.assertEqual(names, ["small.bin", "upload.bin"], listing)
        sizes = {e["name"]: e["size"] for e in listing}
        self.assertEqual(sizes["upload.bin"], os.path.getsize(src))

        out = os.path.join(self.dir, "back.bin")
        self.run_client(["-q", "get", "upload.bin", "-o", out])
        self.assertEqual(sha(out), sha(src))

        self.run_client(["-q", "rm", "small.bin"])
        self.assertFalse(os.path.exists(self.stored("small.bin")))
        self.assertEqual(self.db("SELECT FileName FROM files"), [("upload.bin",)])
        listing = json.loads(self.run_client(["list", "--json"]).stdout)
        self.assertEqual([e["name"] for e in listing], ["upload.bin"])

    def test_a_changed_server_key_is_refused(self):
        self.setup_file(1000)
        self.run_client(["-q"])
        with open(os.path.join(self.work, "known_servers")) as f:
            pinned = f.read()
        fake = "SHA256:" + "A" * 43
        with open(os.path.join(self.work, "known_servers"), "w") as f:
            f.write(pinned.replace(self.fingerprint(), fake))
        os.remove(self.stored())
        res = self.run_client(["-q"], status=10)
        self.assertIn(self.fingerprint(), res.stderr)
        self.assertFalse(os.path.exists(self.stored()), "a refused server got the file")


if __name__ == "__main__":
    run_tests()

"""Several sealdrop-server processes as one service: the same PostgreSQL database (--db) and
the same storage folder (--storage), different ports. Clients register on one server and
reconnect and upload on another; a name raced for on every server at once is registered once;
PostgreSQL restarted under load and kill -9 of one server leave the service running and every
acknowledged file intact. Needs the cluster of tests/run.sh (SEALDROP_TEST_PG), else SKIPPED.
SEALDROP_MULTI_CLIENTS: how many clients spread over two and three servers (default 200)."""

import contextlib
import os
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness
import sdpeer

OK, WHY = harness.pg_available()
CLIENTS = int(os.environ.get("SEALDROP_MULTI_CLIENTS", "200"))
KEYS = []  # one RSA key shared by the clients (the server does not mind; making keys is slow)


def keys():
    if not KEYS:
        KEYS.append(sdpeer.RSAKey.generate())
    return KEYS


@contextlib.contextmanager
def service(n, workers=2, tag="multi"):
    """n servers on one fresh database and one storage folder; yields (servers, storage,
    conninfo)."""
    with harness.tmpdir("sealdrop-multi-") as top:
        conninfo = harness.pg_create_db("sd_%s_%d" % (tag, os.getpid()), fresh=True)
        storage = os.path.join(top, "storage")
        servers = []
        try:
            for i in range(n):
                w = os.path.join(top, "s%d" % i)
                os.mkdir(w)
                # Every client of these tests comes from 127.0.0.1, more than the default
                # 120 registrations and reconnects a minute of one address.
                s = harness.Server(w, args=["--db", conninfo, "--storage", storage,
                                            "--workers", str(workers),
                                            "--max-registrations-per-minute", "0"])
                s.start()
                servers.append(s)
            yield servers, storage, conninfo
        finally:
            for s in servers:
                s.stop()


def rows(conninfo, sql):
    return [line.split("|") for line in harness.pg_psql(conninfo, sql).splitlines()]


def register(port, name, key):
    """825 + 826 on one server; returns (client_id, aes) or raises."""
    with sdpeer.PeerClient("127.0.0.1", port, timeout=30) as pc:
        pc.connect()
        code, cid = pc.register(name)
        if code != sdpeer.REGISTERED:
            raise AssertionError("register %s: %s" % (name, code))
        code, aes = pc.send_public_key(name, key)
        if code != sdpeer.AES_KEY:
            raise AssertionError("key %s: %s" % (name, code))
        return cid


def reconnect_and_upload(port, name, cid, key, file_name, data, packet_size=8192):
    """827 then an upload acknowledged with 900; returns the last reply code."""
    with sdpeer.PeerClient("127.0.0.1", port, timeout=60) as pc:
        pc.connect()
        code, aes, _ = pc.reconnect(name, cid, key)
        if code != sdpeer.RECONNECTED:
            return code
        r = pc.upload(file_name, data, aes, packet_size=packet_size)
        if r["code"] != sdpeer.FILE_CRC or r["cksum"] != sdpeer.cksum(data):
            return r["code"]
        return pc.crc_ok(file_name)


def stored(storage, cid, file_name):
    with open(os.path.join(storage, bytes(cid).hex(), file_name), "rb") as f:
        return f.read()


@unittest.skipUnless(OK, "PostgreSQL: %s" % WHY)
@harness.skip_unless_built(harness.SERVER_BIN)
class MultiServer(unittest.TestCase):
    def spread(self, n):
        with service(n, tag="spread%d" % n) as (servers, storage, conninfo):
            ks = keys()
            # 3 KB to 53 KB: one to seven 8 KiB packets each, 5 MB in all for 200 clients.
            datas = [harness.gen_bytes(3000 + 251 * i, seed=i + 1) for i in range(CLIENTS)]

            def one(i):
                name = "multi-%d-%03d" % (n, i)
                key = ks[i % len(ks)]
                cid = register(servers[i % n].port, name, key)
                # The later connection lands on another server.
                code = reconnect_and_upload(servers[(i + 1) % n].port, name, cid, key,
                                            "f%03d.bin" % i, datas[i])
                return cid, code

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(one, range(CLIENTS)))
            for i, (cid, code) in enumerate(results):
                self.assertIn(code, (sdpeer.ACK,), "client %d: %s" % (i, code))
                self.assertEqual(stored(storage, cid, "f%03d.bin" % i), datas[i])
            self.assertEqual(rows(conninfo, "SELECT count(*), sum(Verified) FROM files"),
                             [[str(CLIENTS), str(CLIENTS)]])
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM clients WHERE PublicKey "
                                  "IS NOT NULL"), [[str(CLIENTS)]])
            for s in servers:
                self.assertTrue(s.running())

    def test_two_servers(self):
        self.spread(2)

    def test_three_servers(self):
        self.spread(3)

    def test_registration_race(self):
        """Every server gets a 825 and 826 for the same name at the same instant: exactly one
        client ends up with the account (1602 and the row); the others are refused (1601 from
        the unique constraint, or their pending registration was replaced, SPEC.md 6)."""
        with service(3, tag="race") as (servers, storage, conninfo):
            key = keys()[0]
            for rnd in range(10):
                name = "race-%d" % rnd
                go = threading.Barrier(len(servers), timeout=30)
                got = [None] * len(servers)

                def one(i):
                    with sdpeer.PeerClient("127.0.0.1", servers[i].port, timeout=30) as pc:
                        pc.connect()
                        go.wait()
                        code, cid = pc.register(name)
                        if code == sdpeer.REGISTERED:
                            code = pc.send_public_key(name, key)[0]
                        got[i] = (code, cid)

                ts = [threading.Thread(target=one, args=(i,)) for i in range(len(servers))]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(60)
                winners = [cid for code, cid in got if code == sdpeer.AES_KEY]
                self.assertEqual(len(winners), 1, got)
                for code, _ in got:
                    self.assertIn(code, (sdpeer.AES_KEY, sdpeer.REGISTER_FAILED, sdpeer.ERROR))
                self.assertEqual(rows(conninfo, "SELECT encode(ID, 'hex') FROM clients WHERE "
                                      "Name = '%s' AND PublicKey IS NOT NULL" % name),
                                 [[bytes(winners[0]).hex()]])
                self.assertEqual(rows(conninfo, "SELECT count(*) FROM clients WHERE Name = "
                                      "'%s'" % name), [["1"]])

    @unittest.skipUnless(os.environ.get("SEALDROP_TEST_PG_DIR"),
                         "needs the cluster folder of tests/run.sh to restart it")
    def test_postgres_restart_under_load(self):
        """Clients keep going while PostgreSQL restarts: requests in flight may get 1607,
        no server dies, every acknowledged file has its row, later sessions all work."""
        with service(2, tag="restart") as (servers, storage, conninfo):
            key = keys()[0]
            stop = threading.Event()
            acked, errors = [], []

            def loop(t):
                i = 0
                while not stop.is_set():
                    name, fname = "load-%d-%d" % (t, i), "l%d.bin" % i
                    data = harness.gen_bytes(3000 + i, seed=t * 1000 + i)
                    try:
                        cid = register(servers[(t + i) % 2].port, name, key)
                        code = reconnect_and_upload(servers[(t + i + 1) % 2].port, name, cid,
                                                    key, fname, data)
                        if code == sdpeer.ACK:
                            acked.append((cid, fname, data))
                    except (AssertionError, OSError, sdpeer.PeerError) as e:
                        errors.append(e)  # 1607 or a closed connection while it restarts
                    i += 1

            ts = [threading.Thread(target=loop, args=(t,)) for t in range(4)]
            for t in ts:
                t.start()
            try:
                time.sleep(2)
                subprocess.run(["sh", os.path.join(harness.TOP, "tests", "pgcluster.sh"),
                                "restart", os.environ["SEALDROP_TEST_PG_DIR"]], check=True,
                               timeout=90)
                time.sleep(2)
            finally:
                stop.set()
            for t in ts:
                t.join(120)
                self.assertFalse(t.is_alive())
            for s in servers:
                self.assertTrue(s.running(), "a server died when PostgreSQL restarted")
            self.assertTrue(acked)
            verified = {(r[0], r[1]) for r in rows(conninfo, "SELECT encode(ID, 'hex'), "
                                                  "FileName FROM files WHERE Verified = 1")}
            for cid, fname, data in acked:
                self.assertEqual(stored(storage, cid, fname), data)
                self.assertIn((bytes(cid).hex(), fname), verified, "an acknowledged row is lost")
            # Service resumed: fresh sessions on both servers work at once.
            for i, s in enumerate(servers):
                cid = register(s.port, "after-%d" % i, key)
                data = harness.gen_bytes(4000, seed=i)
                self.assertEqual(reconnect_and_upload(s.port, "after-%d" % i, cid, key, "a.bin",
                                                      data), sdpeer.ACK)
                self.assertEqual(stored(storage, cid, "a.bin"), data)

    def test_kill9_one_server_during_uploads(self):
        """kill -9 of one server while both receive uploads: the other finishes its own, and
        the killed one's clients upload again through it; the live server's temporary files
        survive the start-up clean-up of a server that starts meanwhile."""
        with service(2, tag="kill") as (servers, storage, conninfo):
            key = keys()[0]
            big = harness.gen_bytes(1 << 20, seed=7)
            ids = {}
            for i in range(4):
                ids[i] = register(servers[i % 2].port, "k%d" % i, key)
            results = {}

            def up(i):
                try:
                    results[i] = reconnect_and_upload(servers[i % 2].port, "k%d" % i, ids[i],
                                                      key, "big.bin", big, packet_size=1024)
                except (OSError, sdpeer.PeerError) as e:
                    results[i] = e

            ts = [threading.Thread(target=up, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            time.sleep(0.5)
            servers[0].kill9()
            # A third server starting now cleans up: it must not take server 1's temporary
            # files (they are locked), only what the killed server left.
            w = os.path.join(os.path.dirname(servers[0].workdir), "s9")
            os.mkdir(w)
            third = harness.Server(w, args=["--db", conninfo, "--storage", storage,
                                            "--max-registrations-per-minute", "0"])
            third.start()
            servers.append(third)
            for t in ts:
                t.join(180)
                self.assertFalse(t.is_alive())
            for i in (1, 3):
                self.assertEqual(results[i], sdpeer.ACK, "server 1's client %d" % i)
                self.assertEqual(stored(storage, ids[i], "big.bin"), big)
            self.assertTrue(servers[1].running())
            for i in (0, 2):
                self.assertEqual(reconnect_and_upload(servers[1].port, "k%d" % i, ids[i], key,
                                                      "big.bin", big), sdpeer.ACK)
                self.assertEqual(stored(storage, ids[i], "big.bin"), big)
            self.assertEqual(rows(conninfo, "SELECT count(*) FROM files WHERE Verified = 1"),
                             [["4"]])


if __name__ == "__main__":
    if not OK:
        print("SKIPPED: PostgreSQL tests: %s" % WHY)
    harness.run_tests()

"""Many clients at once against the real sealdrop-server: 50 threads each register, send a
key and upload a different file in a different layout at the same time; every CRC, every
stored file and every database row must be right."""

import os
import threading
import unittest

import harness
import sdpeer
import server_helpers as sh

CLIENTS = 50


@harness.skip_unless_built(harness.SERVER_BIN)
class Concurrency(unittest.TestCase):
    def test_fifty_simultaneous_uploads(self):
        with sh.server(["--workers", "4"]) as (srv, d):
            keys = [sdpeer.RSAKey.generate() for _ in range(CLIENTS)]
            start = threading.Barrier(CLIENTS, timeout=60)
            results = [None] * CLIENTS
            datas = [harness.gen_bytes(20000 + 3917 * i, seed=i) for i in range(CLIENTS)]

            def one(i):
                try:
                    with sdpeer.PeerClient("127.0.0.1", srv.port, timeout=60) as pc:
                        pc.connect()
                        start.wait()
                        variant = sdpeer.VARIANTS[i % len(sdpeer.VARIANTS)]
                        results[i] = pc.full_session("conc-%02d" % i, "c%02d.bin" % i,
                                                     datas[i], variant=variant,
                                                     packet_size=4096, rsa_key=keys[i])
                except Exception as e:  # reported below, in the main thread
                    results[i] = e

            threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
                self.assertFalse(t.is_alive(), "a client thread hung")
            for i, r in enumerate(results):
                self.assertIsInstance(r, dict, "client %d: %r" % (i, r))
                self.assertEqual(r["step"], "crc_ok", (i, r))
                self.assertEqual(r["attempts"], 1)
                self.assertEqual(r["cksum"], sdpeer.cksum(datas[i]))
                path = os.path.join(d, "files", bytes(r["client_id"]).hex(), "c%02d.bin" % i)
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), datas[i])
            rows = sh.query(d, "SELECT count(*), sum(Verified) FROM files")
            self.assertEqual(rows[0], (CLIENTS, CLIENTS))
            self.assertEqual(sh.query(d, "SELECT count(*) FROM clients WHERE PublicKey "
                                      "IS NOT NULL")[0][0], CLIENTS)
            self.assertEqual(srv.stop(), 0, "a clean stop after the load")


if __name__ == "__main__":
    harness.run_tests()

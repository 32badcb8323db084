"""The real sealdrop-server on defects found by the review: client-supplied text in log lines
goes through the display sanitiser (C1 controls never reach the log)."""

import os
import unittest

import harness
import sdpeer
import server_helpers as sh


def raw_log(srv):
    with open(srv.log_path, "rb") as f:
        return f.read()


@harness.skip_unless_built(harness.SERVER_BIN)
class LogSanitising(unittest.TestCase):
    def test_c1_in_file_name_never_logged(self):
        # U+009B (CSI in C1) is valid UTF-8 and allowed in a file name; on a terminal that
        # reads C1 it starts an escape sequence. Neither the name nor the stored path in the
        # 1603 line (nor the 900 line) may carry it.
        name = "a\u009b31mred\u0085.bin"
        with sh.server() as (srv, d):
            pc = sh.registered(srv.port, "c1 owner")
            with pc:
                data = harness.gen_bytes(3000)
                r = pc.upload(name, data, pc.aes_key)
                self.assertEqual(r["code"], sdpeer.FILE_CRC)
                self.assertEqual(pc.crc_ok(name), sdpeer.ACK)
            self.assertIsNotNone(srv.wait_for_log(r"received for [0-9a-f]{32}/a\?+31mred", 5),
                                 srv.log())
            self.assertTrue(os.path.exists(os.path.join(d, "files", pc.client_id.hex(), name)))
            log = raw_log(srv)
            self.assertNotIn("\u009b".encode("utf-8"), log)
            self.assertNotIn("\u0085".encode("utf-8"), log)
            self.assertNotIn(b"\x1b", log)


if __name__ == "__main__":
    unittest.main()

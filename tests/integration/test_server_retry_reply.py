"""A 901 followed by nothing for about a second is answered 1604 (--retry-reply-after, default
1000 ms), which releases clients that wait for a reply to 901 before they resend. Checked
safe for the others: a client that resends at once, or after 0.9 s, sees exactly 1603 then
1604 for its 900, no stray 1604; a client that waits gets the 1604, then resends normally."""

import os
import select
import time
import unittest

import harness
import sdpeer
import server_helpers as sh


def replies(sock, n):
    """The codes of the next n replies, read strictly (a stray 1604 is not skipped)."""
    return [sdpeer.read_response(sock)[0]["code"] for _ in range(n)]


def nothing_more(sock, wait):
    """True when no byte arrives within wait seconds."""
    r, _, _ = select.select([sock], [], [], wait)
    return not r


@harness.skip_unless_built(harness.SERVER_BIN)
class RetryReply(unittest.TestCase):
    def session(self, srv, delay, wait_for_ack):
        pc = sh.registered(srv.port, "retry-%s" % os.urandom(3).hex())
        data = os.urandom(30000)
        try:
            pc.send_packets("r.bin", data, pc.aes_key)
            self.assertEqual(replies(pc.sock, 1), [sdpeer.FILE_CRC])
            pc.crc_retry("r.bin")
            got = []
            if wait_for_ack:
                pc.sock.settimeout(3)
                got = replies(pc.sock, 1)
                self.assertEqual(got, [sdpeer.ACK])
            elif delay:
                time.sleep(delay)
            pc.send_packets("r.bin", data, pc.aes_key)
            got += replies(pc.sock, 1)
            self.assertEqual(pc.crc_ok("r.bin"), sdpeer.ACK)
            self.assertTrue(nothing_more(pc.sock, 1.6), "a stray reply after the 900's 1604")
            return got
        finally:
            pc.close()

    def test_resend_at_once(self):
        with sh.server() as (srv, d):
            for _ in range(3):
                self.assertEqual(self.session(srv, 0, False), [sdpeer.FILE_CRC])
            self.assertIsNone(srv.wait_for_log(r"no resend within", 0.1))

    def test_resend_after_900_ms(self):
        with sh.server() as (srv, d):
            for _ in range(3):
                self.assertEqual(self.session(srv, 0.9, False), [sdpeer.FILE_CRC])
            self.assertIsNone(srv.wait_for_log(r"no resend within", 0.1))

    def test_client_that_waits_for_a_reply(self):
        with sh.server() as (srv, d):
            t0 = time.monotonic()
            self.assertEqual(self.session(srv, 0, True), [sdpeer.ACK, sdpeer.FILE_CRC])
            self.assertLess(time.monotonic() - t0, 15)
            self.assertIsNotNone(srv.wait_for_log(r"no resend within 1000 ms: 1604", 1))

    def test_off(self):
        # --retry-reply-after 0: the text's behaviour, 901 gets nothing.
        with sh.server(["--retry-reply-after", "0"]) as (srv, d):
            pc = sh.registered(srv.port, "retry-off-%s" % os.urandom(3).hex())
            try:
                pc.send_packets("r.bin", b"x" * 1000, pc.aes_key)
                self.assertEqual(replies(pc.sock, 1), [sdpeer.FILE_CRC])
                pc.crc_retry("r.bin")
                self.assertTrue(nothing_more(pc.sock, 2.0))
            finally:
                pc.close()


if __name__ == "__main__":
    unittest.main()

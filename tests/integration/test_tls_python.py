"""test_tls_python: our version-4 TLS module (through tests/tools/sdtls) against independent
implementations: identities and fingerprints against python3-cryptography both ways (our
Ed25519 certificates parse there and are self-signed; Python's import here with the same
fingerprint), and real handshakes of our non-blocking server session with Python's ssl module
as the client (TLS 1.3, ALPN sealdrop/4, client certificates, pinning by fingerprint), with
the refusals of SPEC-v4.md 1. Exits non-zero on any failure."""

import base64
import datetime
import hashlib
import os
import socket
import ssl
import subprocess
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

TOP = os.environ.get("SEALDROP_TOP") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.environ.get("SEALDROP_TOOLS") or os.path.join(TOP, "build", "tests", "tools")
SDTLS = os.path.join(TOOLS, "sdtls")
TIMEOUT = 30
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def fingerprint_of_cert(cert):
    """SPEC-v4.md 1: SHA256: + unpadded base64 of SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(DER, SPKI)
    return "SHA256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode().rstrip("=")


def valid_time(cert, which):
    """not_valid_before/after as an aware datetime, on old and new python3-cryptography."""
    t = getattr(cert, "not_valid_%s_utc" % which, None)
    if t is None:
        t = getattr(cert, "not_valid_" + which).replace(tzinfo=datetime.timezone.utc)
    return t


def run(*args, ok=True):
    p = subprocess.run([SDTLS] + list(args), capture_output=True, timeout=TIMEOUT)
    if ok and p.returncode != 0:
        raise AssertionError("sdtls %s failed (%d): %s" % (
            " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p


def python_identity(key=None, cn="python"):
    """A self-signed certificate made by python3-cryptography (Ed25519 unless key is given)."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, algo))
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key, cert, key_pem, cert.public_bytes(PEM)


class TLSAgainstPython(unittest.TestCase):
    def setUp(self):
        if not os.access(SDTLS, os.X_OK):
            self.fail("%s is not built" % SDTLS)
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def gen(self, cn="server"):
        me, key, crt = self.path(cn + ".me"), self.path(cn + ".key"), self.path(cn + ".crt")
        fp = run("gen", cn, me, key, crt).stdout.decode().strip()
        return fp, me, key, crt

    # --- identities -----------------------------------------------------------------

    def test_our_identity_in_python(self):
        fp, me, key_path, crt_path = self.gen()
        with open(crt_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(fp, fingerprint_of_cert(cert))
        self.assertEqual(len(fp), 50)
        self.assertIsInstance(cert.public_key(), ed25519.Ed25519PublicKey)
        self.assertEqual(cert.version, x509.Version.v3)
        self.assertGreater(cert.serial_number, 0)
        self.assertEqual(cert.subject, cert.issuer)
        # Self-signed: its own key verifies its signature (raises if not).
        cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLessEqual(valid_time(cert, "before"), now)
        self.assertGreater(valid_time(cert, "after"), now + datetime.timedelta(days=3650))
        # The private key belongs to the certificate; me.key is key, then certificate.
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        self.assertEqual(key.public_key().public_bytes(DER, SPKI),
                         cert.public_key().public_bytes(DER, SPKI))
        with open(me, "rb") as f:
            blob = f.read()
        self.assertTrue(blob.startswith(b"-----BEGIN PRIVATE KEY-----"))
        self.assertLess(blob.index(b"-----END PRIVATE KEY-----"),
                        blob.index(b"-----BEGIN CERTIFICATE-----"))
        self.assertEqual(run("fp", me).stdout.decode().strip(), fp)
        with open(self.path("c.der"), "wb") as f:
            f.write(cert.public_bytes(DER))
        self.assertEqual(run("fp-der", self.path("c.der")).stdout.decode().strip(), fp)

    def test_python_identity_here(self):
        for _ in range(5):
            _, cert, key_pem, crt_pem = python_identity()
            with open(self.path("me.key"), "wb") as f:
                f.write(key_pem + crt_pem)
            with open(self.path("k.pem"), "wb") as f:
                f.write(key_pem)
            with open(self.path("c.pem"), "wb") as f:
                f.write(crt_pem)
            want = fingerprint_of_cert(cert)
            self.assertEqual(run("fp", self.path("me.key")).stdout.decode().strip(), want)
            self.assertEqual(run("fp2", self.path("k.pem"), self.path("c.pem"))
                             .stdout.decode().strip(), want)

    def test_refused_identities(self):
        _, _, key_pem, _ = python_identity()
        _, _, _, other_crt = python_identity()
        with open(self.path("k.pem"), "wb") as f:
            f.write(key_pem)
        with open(self.path("c.pem"), "wb") as f:
            f.write(other_crt)
        self.assertNotEqual(run("fp2", self.path("k.pem"), self.path("c.pem"), ok=False)
                            .returncode, 0)
        # RSA: a valid key and certificate, but not Ed25519.
        _, _, rkey, rcrt = python_identity(rsa.generate_private_key(65537, 2048))
        with open(self.path("rsa.key"), "wb") as f:
            f.write(rkey + rcrt)
        self.assertNotEqual(run("fp", self.path("rsa.key"), ok=False).returncode, 0)

    # --- handshakes with Python's ssl as the client ---------------------------------------

    def serve(self):
        """Starts `sdtls serve` on our identity; returns (process, port, server fingerprint)."""
        fp, me, _, _ = self.gen()
        p = subprocess.Popen([SDTLS, "serve", me], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        port = int(p.stdout.readline())
        return p, port, fp

    def client_context(self, alpn=("sealdrop/4",), cert=True, tls12=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # pinned by fingerprint instead
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        fp = None
        if cert:
            _, c, key_pem, crt_pem = python_identity(cn="py-client")
            with open(self.path("py.pem"), "wb") as f:
                f.write(key_pem + crt_pem)
            ctx.load_cert_chain(self.path("py.pem"))
            fp = fingerprint_of_cert(c)
        return ctx, fp

    def finish(self, p):
        out, err = p.communicate(timeout=TIMEOUT)
        return out.decode(), p.returncode

    def test_handshake_and_echo(self):
        p, port, server_fp = self.serve()
        ctx, client_fp = self.client_context()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw) as s:
                self.assertEqual(s.version(), "TLSv1.3")
                self.assertEqual(s.selected_alpn_protocol(), "sealdrop/4")
                peer = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
                self.assertEqual(fingerprint_of_cert(peer), server_fp)  # pinned: matches
                s.sendall(b"hello over tls 1.3\n")
                got = b""
                while not got.endswith(b"\n"):
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    got += chunk
                self.assertEqual(got, b"hello over tls 1.3\n")
        out, rc = self.finish(p)
        self.assertEqual(rc, 0, out)
        self.assertIn("handshake ok", out)
        self.assertIn("peer " + client_fp, out)
        self.assertIn("TLS1.3", out)

    def refused(self, **kw):
        p, port, _ = self.serve()
        ctx, _ = self.client_context(**kw)
        failed = False
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            try:
                with ctx.wrap_socket(raw) as s:
                    # TLS 1.3: a client may finish before the server checked it; then the
                    # server's alert or close comes on the first read.
                    s.sendall(b"must not arrive\n")
                    if s.recv(100) == b"":
                        failed = True
            except (ssl.SSLError, OSError):
                failed = True
        out, rc = self.finish(p)
        self.assertTrue(failed)
        self.assertNotEqual(rc, 0)
        self.assertNotIn("handshake ok", out)
        return out

    def test_refuse_no_alpn(self):
        self.refused(alpn=None)

    def test_refuse_other_alpn(self):
        self.refused(alpn=("http/1.1",))

    def test_refuse_no_client_certificate(self):
        self.refused(cert=False)

    def test_refuse_tls12(self):
        self.refused(tls12=True)


if __name__ == "__main__":
    unittest.main()

"""test_crypto_python: our crypto (through tests/tools/sdcrypto) against python3-cryptography,
an independent implementation: keys both ways, OAEP wraps both ways, AES-256-CBC ciphertexts
both ways, and the cksum CRC against GNU cksum. Exits non-zero on any failure."""

import os
import subprocess
import sys
import tempfile
import unittest

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TOP = os.environ.get("SEALDROP_TOP") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "peer"))
import sdpeer  # noqa: E402  the independent Python implementation of the protocol

TOOLS = os.environ.get("SEALDROP_TOOLS") or os.path.join(TOP, "build", "tests", "tools")
SDCRYPTO = os.path.join(TOOLS, "sdcrypto")
TIMEOUT = 60
SIZES = (0, 1, 15, 16, 17, 1000, 100000)
OAEP = apad.OAEP(mgf=apad.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def run(*args):
    """Runs sdcrypto; returns stdout, fails the test with stderr on a non-zero exit."""
    p = subprocess.run([SDCRYPTO] + list(args), capture_output=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise AssertionError("sdcrypto %s failed (%d): %s" % (
            " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout.decode()


def python_key(e):
    """An RSA-1024 key with exponent e made on the Python side: by python3-cryptography for
    e = 3 or 65537, which it generates; by the Python peer (its primes on top of the same
    library) for other exponents, the protocol's 17 among them."""
    if e in (3, 65537):
        return rsa.generate_private_key(public_exponent=e, key_size=1024)
    return sdpeer.RSAKey.generate(e=e).private


def py_aes(key, data, encrypt):
    cipher = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16))
    if encrypt:
        padder = padding.PKCS7(128).padder()
        enc = cipher.encryptor()
        return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    dec = cipher.decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()


class CryptoAgainstPython(unittest.TestCase):
    def setUp(self):
        if not os.access(SDCRYPTO, os.X_OK):
            self.fail("%s is not built" % SDCRYPTO)
        self.tmp = tempfile.TemporaryDirectory(prefix="sdcrypto-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def test_our_keys_in_python(self):
        for _ in range(3):
            run("genkey", self.path("k.p8"), self.path("k.spki"))
            priv = serialization.load_der_private_key(self.read("k.p8"), password=None)
            pub = serialization.load_der_public_key(self.read("k.spki"))
            self.assertEqual(len(self.read("k.spki")), 160)
            self.assertEqual(priv.key_size, 1024)
            self.assertEqual(priv.private_numbers().public_numbers.e, 17)
            self.assertEqual(pub.public_numbers(), priv.private_numbers().public_numbers)
            # Python writes the same DER for both halves (canonical DER, same fields).
            self.assertEqual(priv.private_bytes(serialization.Encoding.DER,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()),
                             self.read("k.p8"))
            self.assertEqual(pub.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo),
                             self.read("k.spki"))
            # OAEP both ways with this key.
            key = os.urandom(32)
            self.write("aes.key", key)
            self.write("py.wrapped", pub.encrypt(key, OAEP))
            run("unwrap", self.path("k.p8"), self.path("py.wrapped"), self.path("got"))
            self.assertEqual(self.read("got"), key)
            run("wrap", self.path("k.spki"), self.path("aes.key"), self.path("c.wrapped"))
            self.assertEqual(len(self.read("c.wrapped")), 128)
            self.assertEqual(priv.decrypt(self.read("c.wrapped"), OAEP), key)

    def test_python_keys_in_c(self):
        for e in (17, 3, 65537):
            priv = python_key(e)
            p8 = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            p1 = priv.private_bytes(serialization.Encoding.DER,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
            spki = priv.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
            key = os.urandom(32)
            self.write("aes.key", key)
            for name, der in (("p.p8", p8), ("p.p1", p1)):
                self.write(name, der)
                run("spki-from-private", self.path(name), self.path("c.spki"))
                self.assertEqual(self.read("c.spki"), spki)
                self.write("py.wrapped", priv.public_key().encrypt(key, OAEP))
                run("unwrap", self.path(name), self.path("py.wrapped"), self.path("got"))
                self.assertEqual(self.read("got"), key)
            if len(spki) <= 160:
                # e = 17 (and 3) fit the protocol's 160-byte field: C reads it and wraps to it.
                self.write("p.spki", spki)
                self.assertEqual(run("pubinfo", self.path("p.spki")).split(), ["1024", str(e)])
                run("wrap", self.path("p.spki"), self.path("aes.key"), self.path("c.wrapped"))
                self.assertEqual(priv.decrypt(self.read("c.wrapped"), OAEP), key)
            else:
                # e = 65537 gives 162 bytes, larger than the field: refused by contract.
                self.write("p.spki", spki)
                p = subprocess.run([SDCRYPTO, "pubinfo", self.path("p.spki")],
                                   capture_output=True, timeout=TIMEOUT)
                self.assertNotEqual(p.returncode, 0)

    def test_aes_both_ways(self):
        key = os.urandom(32)
        self.write("aes.key", key)
        for n in SIZES:
            data = os.urandom(n)
            self.write("plain", data)
            run("aes-enc", self.path("aes.key"), self.path("plain"), self.path("c.ct"))
            self.assertEqual(len(self.read("c.ct")), (n // 16 + 1) * 16)
            self.assertEqual(py_aes(key, self.read("c.ct"), False), data)
            # Deterministic (zero IV): both sides produce the very same bytes.
            self.assertEqual(py_aes(key, data, True), self.read("c.ct"))
            self.write("py.ct", py_aes(key, data, True))
            run("aes-dec", self.path("aes.key"), self.path("py.ct"), self.path("back"))
            self.assertEqual(self.read("back"), data)

    def test_aes_refuses_bad_padding(self):
        key = os.urandom(32)
        self.write("aes.key", key)
        # A block whose plaintext ends in 0x00 is not PKCS#7.
        cipher = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).encryptor()
        self.write("bad.ct", cipher.update(b"A" * 15 + b"\0") + cipher.finalize())
        p = subprocess.run([SDCRYPTO, "aes-dec", self.path("aes.key"), self.path("bad.ct"),
                            self.path("out")], capture_output=True, timeout=TIMEOUT)
        self.assertNotEqual(p.returncode, 0)

    def test_cksum_matches_gnu(self):
        for n in (0, 1, 15, 16, 17, 4095, 4096, 1000003):
            name = self.write("f%d" % n, os.urandom(n))
            ours = run("cksum", name).split()
            gnu = subprocess.run(["cksum", name], capture_output=True, timeout=TIMEOUT,
                                 check=True).stdout.decode().split()
            self.assertEqual(ours[0], gnu[0])
            self.assertEqual(ours[1], gnu[1])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)

#!/usr/bin/python3
"""sdpeer4: an independent Python implementation of sealdrop version 4 (SPEC-v4.md).

Written from ../shared/SPEC-v4.md alone, sharing no code or constants with the C tree, so
that a wrong byte order, key format or fingerprint rule on both of our C sides cannot pass
unnoticed. It reuses the version-3 pieces of sdpeer.py (framing, RSA e = 17, OAEP, cksum,
the version-3 server) and adds:

  - Identity: an Ed25519 key with a self-signed certificate (me.key: PKCS#8 PEM, then the
    certificate PEM, mode 0600) and its fingerprint "SHA256:" + unpadded base64 of the
    SHA-256 of the certificate's DER SubjectPublicKeyInfo;
  - Client4: a version-4 client on Python's ssl module (TLS 1.3 only, ALPN sealdrop/4,
    client certificate, pinning by known_servers or an expected fingerprint) with fault
    switches for testing a server;
  - Server4: a version-4 server on pyOpenSSL that also serves version 3 on the same port
    (first byte 0x16 and the ClientHello shape: TLS), with fault switches for testing a
    client;
  - a CLI printing JSON lines (USAGE below).

Everything is bounded: sockets carry timeouts, handshakes deadlines, threads are joined with
timeouts.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdpeer  # noqa: E402  (version 3: framing, RSA, OAEP, cksum, the v3 server)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

# ---------------------------------------------------------------------------------------
# Constants (SPEC-v4.md sections 1-3)

VERSION4 = 4
ALPN = "sealdrop/4"

REGISTER = 840
LINK = 841
PROVE = 842
WHOAMI = 843
PUT_OPEN = 850
PUT_DATA = 851
PUT_FINISH = 852
PUT_ABORT = 853
LIST = 860
GET = 861
DELETE = 862
REQUEST_CODES = (REGISTER, LINK, PROVE, WHOAMI, PUT_OPEN, PUT_DATA, PUT_FINISH, PUT_ABORT,
                 LIST, GET, DELETE)

WELCOME = 1610
UNKNOWN = 1611
CHALLENGE = 1612
PUT_STATE = 1613
PUT_DONE = 1614
LISTING = 1615
GET_DATA = 1616
GET_END = 1617
OK = 1618
ERROR = 1619
RESPONSE_CODES = (WELCOME, UNKNOWN, CHALLENGE, PUT_STATE, PUT_DONE, LISTING, GET_DATA,
                  GET_END, OK, ERROR)

# ERROR reasons
BAD_REQUEST, NAME_TAKEN, NOT_REGISTERED, NOT_PROVEN, NOT_FOUND, MISMATCH, TOO_LARGE, \
    BUSY, STORAGE = range(1, 10)

NONCE_SIZE = 32
SHA_SIZE = 32
PUT_DATA_HEADER = 8 + 1 + 4          # offset u64, flags u8, plain_len u32
MIN_CHUNK, MAX_CHUNK = 65536, 1048576
CHUNK_SLACK = 1024                   # data may be max_chunk + 1024 bytes (deflate overhead)
FLAG_DEFLATE = 1
MAX_SMALL = 4096                     # any request other than PUT_DATA
MAX_LISTING = 64 << 20               # the largest LISTING this client reads
MAX_STR = 65535

EXIT_OK, EXIT_ERROR, EXIT_TLS, EXIT_LOCAL, EXIT_PIN = 0, 1, 2, 3, 10


class PinError(Exception):
    """The server's fingerprint differs from the pinned one."""

    def __init__(self, hostport, expected, got, line=None):
        super().__init__("server %s presented %s, pinned %s%s" % (
            hostport, got, expected,
            " (remove line %d of known_servers to accept it)" % line if line else ""))
        self.expected, self.got, self.line = expected, got, line


class RemoteError(Exception):
    """The server answered ERROR (reason, message)."""

    def __init__(self, reason, message):
        super().__init__("ERROR %d: %s" % (reason, message))
        self.reason, self.message = reason, message


class Dropped(Exception):
    """The client dropped its own connection (fault switch drop_after)."""


# ---------------------------------------------------------------------------------------
# Payload encoding: little-endian integers, strings as len u16 | UTF-8 bytes

def pack_str(s):
    raw = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(raw) > MAX_STR:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("<H", len(raw)) + raw


class Reader:
    """Reads the fields of one payload in order; PeerError when it runs short, and done()
    insists that nothing is left over."""

    def __init__(self, payload):
        self.data = bytes(payload)
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise sdpeer.PeerError("payload too short (%d of %d)" % (len(self.data),
                                                                   self.pos + n))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str_bytes(self):
        return self.take(self.u16())

    def str(self):
        try:
            return self.str_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise sdpeer.PeerError("string is not UTF-8") from None

    def rest(self):
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def done(self):
        if self.pos != len(self.data):
            raise sdpeer.PeerError("%d bytes left over in the payload"
                                   % (len(self.data) - self.pos))


def request4(code, payload, version=VERSION4):
    """A request frame inside TLS: 16 zero bytes of client ID, version 4."""
    return sdpeer.encode_request(sdpeer.ZERO_ID, code, payload, version)


def response4(code, payload=b""):
    return sdpeer.encode_response(code, payload, VERSION4)


def error4(reason, message=""):
    return response4(ERROR, struct.pack("<H", reason) + pack_str(message))


# ---------------------------------------------------------------------------------------
# Identity (SPEC-v4.md 1): Ed25519 + self-signed X.509, fingerprint of the SPKI

def fingerprint_of_spki(spki_der):
    digest = hashlib.sha256(bytes(spki_der)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprint_of_cert_der(cert_der):
    cert = x509.load_der_x509_certificate(bytes(cert_der))
    return fingerprint_of_spki(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


class Identity:
    """An Ed25519 key and its self-signed certificate."""

    def __init__(self, key, cert):
        self.key, self.cert = key, cert

    @classmethod
    def generate(cls, common_name="sealdrop"):
        key = ed25519.Ed25519PrivateKey.generate()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, None))  # Ed25519 signs without a separate hash
        return cls(key, cert)

    @classmethod
    def load(cls, path):
        """Read a PEM file holding a PKCS#8 private key and a certificate (any order)."""
        with open(path, "rb") as f:
            pem = f.read()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("%s: not an Ed25519 key" % path)
        cert = x509.load_pem_x509_certificate(pem)
        if cert.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw) != \
                key.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw):
            raise ValueError("%s: certificate does not belong to the key" % path)
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, path):
        if os.path.exists(path):
            return cls.load(path)
        ident = cls.generate()
        ident.save(path)
        return ident

    def pem(self):
        return (self.key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                + self.cert.public_bytes(serialization.Encoding.PEM))

    def save(self, path):
        """Write the PEM with mode 0600 (temporary file, then rename)."""
        tmp = "%s.tmp%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.pem())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def spki(self):
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def fingerprint(self):
        return fingerprint_of_spki(self.spki())


# ---------------------------------------------------------------------------------------
# me.info (SPEC.md 8) and known_servers (SPEC-v4.md 1)

def read_me_info(path):
    """(name, id bytes, RSAKey). Tolerant: a name padded with NULs, the key base64 wrapped
    over several lines to the end of the file."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n", 2)
    if len(lines) < 3:
        raise ValueError("%s: fewer than 3 lines" % path)
    name = lines[0].rstrip(b"\r").split(b"\0", 1)[0].decode("utf-8")
    cid = bytes.fromhex(lines[1].strip().decode("ascii"))
    if len(cid) != sdpeer.ID_SIZE:
        raise ValueError("%s: ID is not 16 bytes" % path)
    return name, cid, sdpeer.RSAKey.from_base64(lines[2])


def write_me_info(path, name, cid, rsa_key):
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s\n%s\n%s\n" % (name, bytes(cid).hex(), rsa_key.pkcs8_base64()))
    os.replace(tmp, path)


def known_lookup(path, hostport):
    """(fingerprint, line number) of hostport in known_servers, or (None, None)."""
    try:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                parts = line.split()
                if len(parts) == 2 and parts[0] == hostport:
                    return parts[1], i
    except FileNotFoundError:
        pass
    return None, None


def known_add(path, hostport, fp):
    with open(path, "a") as f:
        f.write("%s %s\n" % (hostport, fp))


# ---------------------------------------------------------------------------------------
# Client

def deflate_raw(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(bytes(data)) + c.flush()


class Client4:
    """A blocking version-4 client. Fault switches (constructor): identity=None sends no
    certificate; alpn=None offers no ALPN, alpn=[...] offers those; tls12=True allows only
    TLS 1.2; drop_after=N closes the TCP connection after N application bytes were sent
    (raising Dropped). Counters: bytes_sent (frames), data_sent (PUT_DATA data bytes)."""

    def __init__(self, host, port, identity=None, alpn=(ALPN,), tls12=False,
                 expect_fp=None, known_servers=None, timeout=10.0, drop_after=None):
        self.host, self.port = host, int(port)
        self.hostport = "%s:%d" % (host, self.port)
        self.identity = identity
        self.alpn = list(alpn) if alpn is not None else None
        self.tls12 = tls12
        self.expect_fp, self.known_servers = expect_fp, known_servers
        self.timeout = timeout
        self.drop_after = drop_after
        self.sock = None
        self.info = {}
        self.bytes_sent = 0
        self.data_sent = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed: pinned by fingerprint below
        if self.tls12:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if self.alpn is not None:
            ctx.set_alpn_protocols(self.alpn)
        if self.identity is not None:
            # ssl loads a certificate chain only from files: a private temporary copy.
            d = os.path.join("/tmp", "sdpeer4-%d-%s" % (os.getpid(), secrets.token_hex(4)))
            os.mkdir(d, 0o700)
            try:
                p = os.path.join(d, "me.pem")
                Identity(self.identity.key, self.identity.cert).save(p)
                ctx.load_cert_chain(p)
            finally:
                shutil.rmtree(d, ignore_errors=True)
        return ctx

    def connect(self):
        """TCP, TLS handshake, pin check. Returns info (tls version, cipher, alpn, server
        fingerprint, pin = explicit|matched|recorded|none). Raises ssl.SSLError/OSError on a
        refused handshake, PinError on a fingerprint mismatch (nothing was sent)."""
        self.close()
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.settimeout(self.timeout)
        try:
            s = self._context().wrap_socket(raw, server_hostname=None)
        except BaseException:
            raw.close()
            raise
        self.sock = s
        der = s.getpeercert(binary_form=True)
        if not der:
            self.close()
            raise sdpeer.PeerError("the server presented no certificate")
        fp = fingerprint_of_cert_der(der)
        pin = "none"
        if self.expect_fp is not None:
            if fp != self.expect_fp:
                self.close()
                raise PinError(self.hostport, self.expect_fp, fp)
            pin = "explicit"
        elif self.known_servers is not None:
            known, line = known_lookup(self.known_servers, self.hostport)
            if known is None:
                known_add(self.known_servers, self.hostport, fp)
                pin = "recorded"
            elif known != fp:
                self.close()
                raise PinError(self.hostport, known, fp, line)
            else:
                pin = "matched"
        cipher = s.cipher()
        self.info = {"tls_version": s.version(), "cipher": cipher[0] if cipher else None,
                     "alpn": s.selected_alpn_protocol(), "server_fingerprint": fp,
                     "pin": pin,
                     "client_fingerprint": self.identity.fingerprint()
                     if self.identity else None}
        return self.info

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # -- frames ----------------------------------------------------------------------------

    def send_frame(self, frame):
        if self.sock is None:
            raise sdpeer.PeerError("not connected")
        if self.drop_after is not None and self.bytes_sent + len(frame) >= self.drop_after:
            part = frame[:self.drop_after - self.bytes_sent]
            self.sock.sendall(part)
            self.bytes_sent += len(part)
            self._drop()
            raise Dropped("dropped after %d bytes" % self.bytes_sent)
        self.sock.sendall(frame)
        self.bytes_sent += len(frame)

    def _drop(self):
        # An abrupt end without close_notify. FIN first, then drain until the server
        # closes (bounded), so that no RST can discard bytes the server has not read yet.
        s, self.sock = self.sock, None
        try:
            s.shutdown(socket.SHUT_WR)  # also leaves TLS: the drain reads raw bytes
            deadline = time.monotonic() + 3.0
            s.settimeout(0.5)
            while time.monotonic() < deadline:
                try:
                    if not s.recv(65536):
                        break
                except socket.timeout:
                    continue
        except OSError:
            pass
        finally:
            s.close()

    def request(self, code, payload=b"", version=VERSION4):
        self.send_frame(request4(code, payload, version))

    def recv(self, strict=True):
        """One response: (code, payload). Sizes are bounded per code; strict: the version
        byte must be 4 and the code a version-4 response (else PeerError)."""
        if self.sock is None:
            raise sdpeer.PeerError("not connected")
        raw = sdpeer.recv_exact(self.sock, sdpeer.RESP_HEADER_SIZE)
        version, code, size = struct.unpack("<BHI", raw)
        if strict and (version != VERSION4 or code not in RESPONSE_CODES):
            raise sdpeer.PeerError("response version %d code %d inside TLS" % (version, code))
        if code == GET_DATA:
            limit = 8 + MAX_CHUNK
        elif code == LISTING:
            limit = MAX_LISTING
        else:
            limit = MAX_SMALL
        if size > limit:
            raise sdpeer.PeerError("response %d with payload size %d" % (code, size))
        payload = sdpeer.recv_exact(self.sock, size) if size else b""
        self.last_version = version
        return code, payload

    def expect(self, *codes):
        """Read one response; ERROR raises RemoteError, an unexpected code PeerError."""
        code, payload = self.recv()
        if code in codes:
            return code, payload
        if code == ERROR:
            r = Reader(payload)
            reason, msg = r.u16(), r.str()
            r.done()
            raise RemoteError(reason, msg)
        raise sdpeer.PeerError("unexpected response %d (wanted %s)" % (code, codes))

    # -- accounts --------------------------------------------------------------------------

    @staticmethod
    def _welcome(payload):
        r = Reader(payload)
        cid, name = r.take(sdpeer.ID_SIZE), r.str()
        r.done()
        return {"id": cid.hex(), "name": name}

    def whoami(self):
        """dict(id, name) or None (UNKNOWN)."""
        self.request(WHOAMI)
        code, payload = self.expect(WELCOME, UNKNOWN)
        return self._welcome(payload) if code == WELCOME else None

    def register(self, rsa_key, name):
        self.request(REGISTER, rsa_key.spki() + pack_str(name))
        return self._welcome(self.expect(WELCOME)[1])

    def link(self, name, cid):
        """LINK; returns the 128-byte encrypted nonce."""
        self.request(LINK, pack_str(name) + bytes(cid))
        payload = self.expect(CHALLENGE)[1]
        if len(payload) != sdpeer.WRAPPED_SIZE:
            raise sdpeer.PeerError("CHALLENGE of %d bytes" % len(payload))
        return payload

    def prove(self, nonce):
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce must be 32 bytes")
        self.request(PROVE, bytes(nonce))
        return self._welcome(self.expect(WELCOME)[1])

    def link_prove(self, name, cid, rsa_key, wrong_nonce=False, prove_twice=False):
        nonce = rsa_key.unwrap(self.link(name, cid))
        if wrong_nonce:
            nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
        w = self.prove(nonce)
        if prove_twice:
            w = self.prove(nonce)
        return w

    # -- uploads ---------------------------------------------------------------------------

    def put_open(self, size, name):
        self.request(PUT_OPEN, struct.pack("<Q", size) + pack_str(name))
        r = Reader(self.expect(PUT_STATE)[1])
        st = {"offset": r.u64(), "prefix_sha256": r.take(SHA_SIZE), "max_chunk": r.u32()}
        r.done()
        if not MIN_CHUNK <= st["max_chunk"] <= MAX_CHUNK or st["offset"] > size:
            raise sdpeer.PeerError("PUT_STATE out of range: %r" % st)
        return st

    def put_data(self, offset, flags, plain_len, data):
        self.request(PUT_DATA, struct.pack("<QBI", offset, flags, plain_len) + bytes(data))
        self.data_sent += len(data)

    def put_finish(self, sha):
        self.request(PUT_FINISH, bytes(sha))
        r = Reader(self.expect(PUT_DONE)[1])
        done = {"size": r.u64(), "sha256": r.take(SHA_SIZE).hex(), "cksum": r.u32(),
                "name": r.str()}
        r.done()
        return done

    def put_abort(self):
        self.request(PUT_ABORT)
        self.expect(OK)

    def upload(self, name, data, compress="no", chunk=None, fault=None):
        """PUT_OPEN (resume: compare the prefix hash, PUT_ABORT and reopen on a mismatch),
        PUT_DATA chunks, PUT_FINISH; checks PUT_DONE against our own size, SHA-256, cksum.
        compress: no | yes | auto (deflate while the chunks so far shrank by >= 10 %).
        fault: None or one of wrong_offset, wrong_sha, bomb, oversize, short_inflate,
        bad_flags (the server's answer then raises RemoteError or closes).
        Returns a dict: resumed_from, restarted (prefix mismatch), max_chunk, chunks,
        compressed_chunks, data_sent, sha256, done (PUT_DONE fields), verified."""
        data = bytes(data)
        st = self.put_open(len(data), name)
        restarted = False
        if st["offset"] > len(data) or \
                hashlib.sha256(data[:st["offset"]]).digest() != st["prefix_sha256"]:
            self.put_abort()
            restarted = True
            st = self.put_open(len(data), name)
            if st["offset"] != 0:
                raise sdpeer.PeerError("PUT_OPEN after PUT_ABORT resumes at %d"
                                       % st["offset"])
        max_chunk = st["max_chunk"]
        step = min(chunk or max_chunk, max_chunk)
        pos = st["offset"]
        res = {"resumed_from": pos, "restarted": restarted, "max_chunk": max_chunk,
               "chunks": 0, "compressed_chunks": 0}
        data_before = self.data_sent
        plain_total = packed_total = 0
        use_deflate = compress in ("yes", "auto")
        if fault == "oversize":
            blob = b"\xAA" * (max_chunk + 1)
            self.put_data(pos, 0, len(blob), blob)
        elif fault == "bomb":
            # plain_len 1, but the stream inflates to 16 MiB
            self.put_data(pos, FLAG_DEFLATE, 1, deflate_raw(b"\0" * (16 << 20), 9))
        elif fault == "short_inflate":
            piece = data[pos:pos + 100] or b"x"
            self.put_data(pos, FLAG_DEFLATE, len(piece) + 10, deflate_raw(piece))
        elif fault == "bad_flags":
            piece = data[pos:pos + 100] or b"x"
            self.put_data(pos, 2, len(piece), piece)
        elif fault == "wrong_offset":
            piece = data[pos:pos + 100] or b"x"
            self.put_data(pos + 7, 0, len(piece), piece)
        if fault in ("oversize", "bomb", "short_inflate", "bad_flags", "wrong_offset"):
            # no reply to PUT_DATA: the server's ERROR (or its close) comes next
            self.expect(OK)  # raises RemoteError on ERROR, PeerError on EOF
            raise sdpeer.PeerError("server accepted a faulty PUT_DATA")
        while pos < len(data):
            plain = data[pos:pos + step]
            flags, body = 0, plain
            if use_deflate:
                packed = deflate_raw(plain)
                if compress == "yes" or len(packed) < len(plain):
                    flags, body = FLAG_DEFLATE, packed
                plain_total += len(plain)
                packed_total += len(body)
                if compress == "auto" and packed_total > 0.9 * plain_total:
                    use_deflate = False  # it does not pay: the rest goes raw
            self.put_data(pos, flags, len(plain), body)
            res["chunks"] += 1
            res["compressed_chunks"] += flags & FLAG_DEFLATE
            pos += len(plain)
        sha = hashlib.sha256(data).digest()
        sent_sha = bytes([sha[0] ^ 0xFF]) + sha[1:] if fault == "wrong_sha" else sha
        done = self.put_finish(sent_sha)
        res["data_sent"] = self.data_sent - data_before
        res["sha256"] = sha.hex()
        res["done"] = done
        res["verified"] = (done["size"] == len(data) and done["sha256"] == sha.hex()
                           and done["cksum"] == cksum_fast(data))
        return res

    # -- listing, downloads, deletion -------------------------------------------------------

    def list(self):
        self.request(LIST)
        r = Reader(self.expect(LISTING)[1])
        files = []
        for _ in range(r.u32()):
            files.append({"size": r.u64(), "uploaded": r.u64(),
                          "sha256": r.take(SHA_SIZE).hex(), "name": r.str()})
        r.done()
        return files

    def get(self, name, offset=0, prefix=b""):
        """GET from offset; prefix = the first offset bytes we already hold (to check the
        whole file's hash). Returns dict(data = prefix + received, size, sha256, verified,
        chunks, received)."""
        self.request(GET, struct.pack("<Q", offset) + pack_str(name))
        parts, at, chunks = [], offset, 0
        while True:
            code, payload = self.expect(GET_DATA, GET_END)
            r = Reader(payload)
            if code == GET_END:
                size, sha = r.u64(), r.take(SHA_SIZE)
                r.done()
                break
            off = r.u64()
            if off != at:
                raise sdpeer.PeerError("GET_DATA at %d, expected %d" % (off, at))
            piece = r.rest()
            parts.append(piece)
            at += len(piece)
            chunks += 1
        data = bytes(prefix) + b"".join(parts)
        return {"data": data, "size": size, "sha256": sha.hex(), "chunks": chunks,
                "received": at - offset,
                "verified": len(data) == size and hashlib.sha256(data).digest() == sha}

    def delete(self, name):
        self.request(DELETE, pack_str(name))
        self.expect(OK)


def cksum_fast(data):
    """The POSIX cksum (SPEC.md 5): GNU cksum when present (fast), else sdpeer's table."""
    if shutil.which("cksum"):
        out = subprocess.run(["cksum"], input=bytes(data), stdout=subprocess.PIPE,
                             check=True, timeout=600).stdout
        return int(out.split()[0])
    return sdpeer.cksum(data)


def cksum_file(path):
    if shutil.which("cksum"):
        out = subprocess.run(["cksum", path], stdout=subprocess.PIPE, check=True,
                             timeout=600).stdout
        return int(out.split()[0])
    with open(path, "rb") as f:
        return sdpeer.cksum(f.read())


def ensure_account(client, workdir, name=None, new_rsa=None):
    """SPEC-v4.md "Accounts", as our client does it, in workdir (me.info, me.key).
    client: a Client4 not yet connected (its identity is set here). Returns dict(flow =
    registered|linked|known|reregistered, id, name). new_rsa: the RSA key to use when one
    must be made (tests pass a prepared one: generating e = 17 keys takes a moment)."""
    me_info, me_key = os.path.join(workdir, "me.info"), os.path.join(workdir, "me.key")
    have_info, have_key = os.path.exists(me_info), os.path.exists(me_key)
    ident = Identity.load(me_key) if have_key else Identity.generate()
    client.identity = ident
    client.connect()
    if not have_info:
        if not name:
            raise ValueError("no me.info: a name is needed to register")
        rsa_key = new_rsa or sdpeer.RSAKey.generate()
        w = client.register(rsa_key, name)
        write_me_info(me_info, name, bytes.fromhex(w["id"]), rsa_key)
        ident.save(me_key)
        return dict(w, flow="registered")
    iname, cid, rsa_key = read_me_info(me_info)
    w = client.whoami()
    if w is not None:
        return dict(w, flow="known")
    try:
        w = client.link_prove(iname, cid, rsa_key)
        flow = "linked"
    except RemoteError as e:
        if e.reason != NOT_REGISTERED:
            raise
        w = client.register(rsa_key, iname)
        write_me_info(me_info, iname, bytes.fromhex(w["id"]), rsa_key)
        flow = "reregistered"
    if not have_key:
        ident.save(me_key)
    return dict(w, flow=flow)


# ---------------------------------------------------------------------------------------
# Server

from OpenSSL import SSL, crypto  # noqa: E402  (pyOpenSSL: a verify callback for clients)


class _NoALPN(Exception):
    pass


class TLSStream:
    """A pyOpenSSL server connection over a socket with a short timeout, shaped like a
    socket for sdpeer.recv_exact: recv(n) raises socket.timeout when nothing came within
    poll seconds; sendall is bounded by send_timeout."""

    def __init__(self, conn, raw, poll, send_timeout=30.0):
        self.conn, self.raw, self.poll, self.send_timeout = conn, raw, poll, send_timeout
        self.bytes_in = 0

    def _wait(self, want_write, timeout):
        r, w, _ = select.select([] if want_write else [self.raw],
                                [self.raw] if want_write else [], [], timeout)
        return bool(r or w)

    def handshake(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.conn.do_handshake()
                return
            except SSL.WantReadError:
                left = deadline - time.monotonic()
                if left <= 0 or not self._wait(False, left):
                    raise sdpeer.PeerError("handshake timeout") from None
            except SSL.WantWriteError:
                left = deadline - time.monotonic()
                if left <= 0 or not self._wait(True, left):
                    raise sdpeer.PeerError("handshake timeout") from None

    def recv(self, n):
        while True:
            try:
                out = self.conn.recv(n)
                self.bytes_in += len(out)
                return out
            except SSL.WantReadError:
                if not self._wait(False, self.poll):
                    raise socket.timeout("poll") from None
            except SSL.ZeroReturnError:
                return b""
            except SSL.SysCallError as e:
                if e.args and e.args[0] == -1:
                    return b""  # EOF without close_notify
                raise OSError(str(e)) from None
            except SSL.Error as e:
                raise OSError("TLS: %s" % e) from None

    def sendall(self, data):
        view = memoryview(bytes(data))
        deadline = time.monotonic() + self.send_timeout
        while view:
            try:
                n = self.conn.send(view[:65536].tobytes())
                view = view[n:]
            except (SSL.WantWriteError, SSL.WantReadError):
                left = deadline - time.monotonic()
                if left <= 0 or not self._wait(True, min(left, self.poll)):
                    if time.monotonic() >= deadline:
                        raise OSError("send timeout") from None
            except SSL.Error as e:
                raise OSError("TLS: %s" % e) from None

    def close(self):
        try:
            self.conn.shutdown()
        except SSL.Error:
            pass


class CloseConnection(Exception):
    """Send this reply (may be None), then close the connection."""

    def __init__(self, reply=None):
        super().__init__("close")
        self.reply = reply


class _ConnStop:
    """The stop flag of one connection's reads: the server stops, or its upload was taken
    over by a newer connection (sdpeer.recv_exact polls it on every socket timeout)."""

    def __init__(self, server_stop, state):
        self.server_stop, self.state = server_stop, state

    def is_set(self):
        return self.server_stop.is_set() or self.state["taken_over"]


def _looks_like_client_hello(head):
    # SPEC-v4.md 1: 0x16, record version 0x0301..0x0304, handshake type 1 at byte 5.
    return (len(head) >= 6 and head[0] == 0x16 and head[1] == 3 and 1 <= head[2] <= 4
            and head[5] == 1)


class Server4(sdpeer.PeerServer):
    """The version-3 reference server of sdpeer plus version 4 on the same port. Accounts
    are sdpeer's (name -> dict) with a "fingerprint" added, so one account spans both
    versions. Everything persists in storage_dir: accounts, files and partial uploads in
    state.json (rewritten after every change, so a restart, even after kill -9, resumes
    where the recorded bytes end; fresh=True ignores it), the stored files in
    storage_dir/<id hex>/, partial uploads in storage_dir/.partial/, and the server key in
    tls_key (default storage_dir/server.pem, made on first start) unless mitm.

    Fault switches: v3_only (answer a ClientHello with 1607 and close, like an old server;
    v3_only="close": close without answering),
    mitm (a fresh key of its own instead of tls_key's), forget=N (the next N WHOAMI/LINK
    drop the account first: UNKNOWN / ERROR 3), drop_upload_after=N (close the connection
    once N bytes of an upload are held; drop_times uploads), wrong_done_sha=N (the first N
    PUT_DONEs carry a wrong sha256), max_chunk, max_file_size, faults (a dict: request code
    -> list of actions taken by its next requests in turn: None serves it, "drop" serves it
    and closes the connection without the reply, ("error", reason) answers ERROR reason
    without serving it, ("error_close", reason) the same and closes), put_data_hook (called
    with the upload's offset after each PUT_DATA is stored, outside the lock), get_extra=N
    (GET sends N bytes of zeros past the file's end; get_extra_sent counts what got out).

    events: a list of dicts (also printed as JSON lines when log is set)."""

    HANDSHAKE_TIMEOUT = 10.0

    def __init__(self, storage_dir, host="127.0.0.1", port=0, tls_key=None, mitm=False,
                 v3_only=False, forget=0, drop_upload_after=None, drop_times=1,
                 wrong_done_sha=0, max_chunk=262144, max_file_size=1 << 40, log=None,
                 fresh=False, **v3):
        super().__init__(storage_dir, host=host, port=port, **v3)
        os.makedirs(storage_dir, exist_ok=True)
        if not MIN_CHUNK <= max_chunk <= MAX_CHUNK:
            raise ValueError("max_chunk must be 65536 to 1048576")
        self.tls_key = tls_key or os.path.join(storage_dir, "server.pem")
        self.identity = Identity.generate("sealdrop-mitm") if mitm else \
            Identity.load_or_create(self.tls_key)
        self.v3_only, self.forget = v3_only, forget
        self.drop_upload_after, self.drop_times = drop_upload_after, drop_times
        self.wrong_done_sha = wrong_done_sha
        self.max_chunk, self.max_file_size = max_chunk, max_file_size
        self.partials = {}      # (id, name) -> partial upload dict
        self.get_extra, self.get_extra_sent = 0, 0
        self.faults = {}
        self.put_data_hook = None
        self.log = log
        self.events = []
        self.events_lock = threading.Lock()
        self.partial_dir = os.path.join(storage_dir, ".partial")
        os.makedirs(self.partial_dir, exist_ok=True)
        self.state_path = os.path.join(storage_dir, "state.json")
        if not fresh:
            self._load()
        self.ctx = self._context()

    def fingerprint(self):
        return self.identity.fingerprint()

    # -- persistent state: storage_dir/state.json -------------------------------------------

    def _save(self):
        """Write accounts, files and partial uploads (called under the lock after every
        change; temporary file and rename, so a kill -9 leaves the old or the new state).
        A partial's offset is recorded only after its bytes were written and flushed."""
        accounts = []
        for c in self.clients.values():
            accounts.append({
                "name": c["name"], "id": c["id"].hex(),
                "public_key": c["public_key"].hex() if c["public_key"] else None,
                "fingerprint": c.get("fingerprint"),
                "v3files": {f.hex(): e for f, e in c["files"].items()},
                "v4files": {n: {"size": e["size"], "uploaded": e["uploaded"],
                                "sha256": e["sha256"].hex()}
                            for n, e in c.get("v4files", {}).items()}})
        partials = [{"id": up["key"][0].hex(), "name": up["name"], "size": up["size"],
                     "offset": up["offset"], "path": up["path"]}
                    for up in self.partials.values()]
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"accounts": accounts, "partials": partials}, f)
        os.replace(tmp, self.state_path)

    def _load(self):
        """Read state.json if there is one. A partial's temporary file longer than its
        recorded offset is cut to it; a missing or shorter one drops the record."""
        try:
            with open(self.state_path) as f:
                st = json.load(f)
        except FileNotFoundError:
            return
        for a in st["accounts"]:
            c = {"id": bytes.fromhex(a["id"]), "name": a["name"], "aes_key": None,
                 "public_key": bytes.fromhex(a["public_key"]) if a["public_key"] else None,
                 "files": {bytes.fromhex(k): v for k, v in a["v3files"].items()},
                 "last_seen": time.time(), "fingerprint": a["fingerprint"],
                 "v4files": {n: {"size": e["size"], "uploaded": e["uploaded"],
                                 "sha256": bytes.fromhex(e["sha256"])}
                             for n, e in a["v4files"].items()}}
            if c["public_key"] is not None:
                c["rsa"] = sdpeer.RSAKey.public_from_spki(sdpeer._der_prefix(c["public_key"]))
            self.clients[c["name"]] = c
        for p in st["partials"]:
            try:
                held = os.path.getsize(p["path"])
            except OSError:
                continue
            if held < p["offset"]:
                os.remove(p["path"])
                continue
            sha = hashlib.sha256()
            with open(p["path"], "r+b") as f:
                f.truncate(p["offset"])
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    sha.update(block)
            key = (bytes.fromhex(p["id"]), p["name"])
            self.partials[key] = {"key": key, "name": p["name"], "size": p["size"],
                                  "offset": p["offset"], "sha": sha, "path": p["path"],
                                  "file": open(p["path"], "ab"), "owner": None, "data_in": 0,
                                  "plain_in": 0, "chunks": 0, "compressed": 0}
        self._event(event="state_loaded", accounts=len(self.clients),
                    partials=len(self.partials))

    def stop(self):
        super().stop()
        with self.lock:
            for up in self.partials.values():
                up["file"].close()  # the temporary files stay: resumable after a restart

    def _event(self, **ev):
        with self.events_lock:  # not self.lock: handlers log while holding it
            self.events.append(ev)
        if self.log is not None:
            self.log.write(json.dumps(ev, sort_keys=True) + "\n")
            self.log.flush()

    def _context(self):
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
        ctx.use_privatekey(crypto.PKey.from_cryptography_key(self.identity.key))
        ctx.use_certificate(crypto.X509.from_cryptography(self.identity.cert))
        ctx.check_privatekey()
        # Any self-signed client certificate: the account is found by its fingerprint.
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       lambda conn, cert, errno, depth, ok: True)
        ctx.set_options(SSL.OP_NO_TICKET)

        def select_alpn(conn, offered):
            if ALPN.encode() in offered:
                return ALPN.encode()
            raise _NoALPN()  # -> fatal alert no_application_protocol

        ctx.set_alpn_select_callback(select_alpn)
        return ctx

    def _new_client(self, name):
        # SPEC-v4.md 1: never an ID whose first byte is 0x16.
        cid = secrets.token_bytes(sdpeer.ID_SIZE)
        while cid[0] == 0x16:
            cid = secrets.token_bytes(sdpeer.ID_SIZE)
        self.clients[name] = {"id": cid, "name": name, "public_key": None, "aes_key": None,
                              "files": {}, "last_seen": time.time()}
        return cid

    # -- detection ---------------------------------------------------------------------------

    def _serve(self, conn):
        head = b""
        deadline = time.monotonic() + self.HANDSHAKE_TIMEOUT
        try:
            while len(head) < 6 and not self.stop_event.is_set() and \
                    time.monotonic() < deadline:
                try:
                    head = conn.recv(6, socket.MSG_PEEK)
                except socket.timeout:
                    continue
                if not head or head[0] != 0x16:
                    break
                if len(head) < 6:
                    time.sleep(0.01)
        except OSError:
            head = b""
        if _looks_like_client_hello(head):
            try:
                self._serve_tls(conn)
            finally:
                if not self.stop_event.is_set():
                    with self.lock:
                        if conn in self.conns:
                            self.conns.remove(conn)
                    conn.close()
            return
        super()._serve(conn)

    def _handle(self, hdr, payload, state):
        # Version 3 path: a version-4 code outside TLS gets 1607 and the connection closes.
        self._event(event="v3_request", code=hdr["code"], size=len(payload))
        if hdr["code"] in REQUEST_CODES:
            state["close"] = True
            return sdpeer.encode_response(sdpeer.ERROR, b"")
        reply = super()._handle(hdr, payload, state)
        with self.lock:
            self._save()
        return reply

    # -- one TLS connection --------------------------------------------------------------------

    def _serve_tls(self, conn):
        if self.v3_only:
            # An old server reads the ClientHello as a request header and answers 1607
            # (v3_only="close": it just closes).
            try:
                conn.recv(4096)
                if self.v3_only != "close":
                    conn.sendall(sdpeer.encode_response(sdpeer.ERROR, b""))
            except OSError:
                pass
            self._event(event="v3_only_refused", how="close" if self.v3_only == "close"
                        else "1607")
            return
        tls = SSL.Connection(self.ctx, conn)
        tls.set_accept_state()
        stream = TLSStream(tls, conn, self.POLL)
        try:
            stream.handshake(self.HANDSHAKE_TIMEOUT)
        except (SSL.Error, sdpeer.PeerError, OSError, _NoALPN) as e:
            self._event(event="handshake_failed", error=str(e) or type(e).__name__)
            return
        alpn = tls.get_alpn_proto_negotiated()
        peer = tls.get_peer_certificate()
        if alpn != ALPN.encode() or peer is None:
            # A client without ALPN never reaches the select callback: refuse here.
            self._event(event="handshake_refused", alpn=alpn.decode("latin-1"),
                        client_cert=peer is not None)
            stream.close()
            return
        fp = fingerprint_of_cert_der(crypto.dump_certificate(crypto.FILETYPE_ASN1, peer))
        self._event(event="tls", tls_version=tls.get_protocol_version_name(),
                    cipher=tls.get_cipher_name(), client_fingerprint=fp)
        state = {"fp": fp, "account": None, "nonce": None, "upload": None,
                 "taken_over": False, "data_in": 0, "frames_in": 0}
        state["stop"] = _ConnStop(self.stop_event, state)
        try:
            while not self.stop_event.is_set():
                reply = None
                try:
                    reply = self._tls_request(stream, state)
                except CloseConnection as c:
                    if c.reply is not None:
                        stream.sendall(c.reply)
                    stream.close()
                    return
                if reply is not None:
                    stream.sendall(reply)
        except (sdpeer.PeerError, OSError) as e:
            if state["taken_over"]:
                try:
                    stream.sendall(error4(BUSY, "upload taken over by another connection"))
                except OSError:
                    pass
            elif not isinstance(e, sdpeer.PeerEOF):
                self._event(event="connection_error", error=str(e))
        finally:
            self._release_upload(state)

    def _tls_request(self, stream, state):
        raw = sdpeer.recv_exact(stream, sdpeer.REQ_HEADER_SIZE, state["stop"])
        version, code, size = struct.unpack_from("<BHI", raw, sdpeer.ID_SIZE)
        if code == PUT_DATA:
            limit = PUT_DATA_HEADER + self.max_chunk + CHUNK_SLACK
        else:
            limit = MAX_SMALL
        if version != VERSION4 or code not in REQUEST_CODES:
            self._event(event="refused_code", code=code, version=version)
            raise CloseConnection(error4(BAD_REQUEST, "not a version-4 request"))
        if size > limit:
            self._event(event="refused_size", code=code, size=size)
            raise CloseConnection(error4(BAD_REQUEST, "payload too large"))
        try:
            payload = sdpeer.recv_exact(stream, size, state["stop"]) if size else b""
        except sdpeer.PeerEOF:
            raise sdpeer.PeerError("EOF before the payload") from None
        state["frames_in"] += sdpeer.REQ_HEADER_SIZE + size
        with self.lock:
            self.requests.append((code, sdpeer.ZERO_ID, size))
        r = Reader(payload)
        with self.lock:
            todo = self.faults.get(code)
            fault = todo.pop(0) if todo else None
        if fault is not None:
            self._event(event="fault", code=code, action=fault if isinstance(fault, str)
                        else list(fault))
            if fault == "drop":
                self._serve_request(code, r, state, stream)
                raise CloseConnection(None)
            if fault[0] == "error_close":
                raise CloseConnection(error4(fault[1], "fault switch"))
            return error4(fault[1], "fault switch")
        return self._serve_request(code, r, state, stream)

    def _serve_request(self, code, r, state, stream):
        try:
            if code in (REGISTER, LINK, PROVE, WHOAMI):
                return {REGISTER: self._v4_register, LINK: self._v4_link,
                        PROVE: self._v4_prove, WHOAMI: self._v4_whoami}[code](r, state)
            if state["account"] is None:
                return error4(NOT_REGISTERED, "REGISTER or LINK first")
            handler = {PUT_OPEN: self._put_open, PUT_DATA: self._put_data,
                       PUT_FINISH: self._put_finish, PUT_ABORT: self._put_abort,
                       LIST: self._list, GET: self._get, DELETE: self._delete}[code]
            return handler(r, state, stream)
        except sdpeer.PeerError as e:  # a malformed payload
            if code == PUT_DATA:
                raise CloseConnection(error4(BAD_REQUEST, str(e)))
            return error4(BAD_REQUEST, str(e))

    # -- accounts ------------------------------------------------------------------------------

    def _by_fp(self, fp):
        for c in self.clients.values():
            if c.get("fingerprint") == fp:
                return c
        return None

    def _forget(self, client):
        """Fault switch: drop client's account (under the lock); True if it did."""
        if client is None or self.forget <= 0:
            return False
        self.forget -= 1
        self.clients.pop(client["name"], None)
        self._save()
        self._event(event="forgot", name=client["name"])
        return True

    def _welcome(self, client, state, flow):
        state["account"] = client
        self._event(event="welcome", flow=flow, name=client["name"], id=client["id"].hex(),
                    client_fingerprint=state["fp"])
        return response4(WELCOME, client["id"] + pack_str(client["name"]))

    def _v4_register(self, r, state):
        spki = r.take(sdpeer.PUBKEY_SIZE)
        raw_name = r.str_bytes()
        r.done()
        with self.lock:
            if self._by_fp(state["fp"]) is not None:
                return error4(BAD_REQUEST, "certificate already bound to an account")
            if not sdpeer._valid_name(raw_name):
                return error4(BAD_REQUEST, "invalid name")
            name = raw_name.decode("utf-8")
            old = self.clients.get(name)
            if old is not None and old["public_key"] is not None:
                return error4(NAME_TAKEN, "name taken")
            try:
                pub = sdpeer.RSAKey.public_from_spki(sdpeer._der_prefix(spki))
            except ValueError:
                return error4(BAD_REQUEST, "public key is not an RSA SPKI")
            self._new_client(name)
            client = self.clients[name]
            client.update(public_key=spki, rsa=pub, fingerprint=state["fp"])
            self._save()
            return self._welcome(client, state, "register")

    def _v4_link(self, r, state):
        name = r.str()
        cid = r.take(sdpeer.ID_SIZE)
        r.done()
        state["nonce"] = None
        with self.lock:
            client = self.clients.get(name)
            if self._forget(client):
                client = None
            if client is None or client["id"] != cid or client["public_key"] is None:
                return error4(NOT_REGISTERED, "no such account")
            nonce = secrets.token_bytes(NONCE_SIZE)
            state["nonce"] = (client, nonce)
            return response4(CHALLENGE, client["rsa"].wrap(nonce))

    def _v4_prove(self, r, state):
        got = r.take(NONCE_SIZE)
        r.done()
        pending, state["nonce"] = state["nonce"], None  # single use, this connection only
        if pending is None:
            self._event(event="prove_refused", why="no challenge")
            return error4(NOT_PROVEN, "no challenge pending")
        client, nonce = pending
        if not hmac.compare_digest(got, nonce):
            self._event(event="prove_refused", why="wrong nonce")
            return error4(NOT_PROVEN, "wrong nonce")
        with self.lock:
            if self.clients.get(client["name"]) is not client:
                return error4(NOT_REGISTERED, "account gone")
            for other in self.clients.values():
                if other.get("fingerprint") == state["fp"]:
                    other["fingerprint"] = None
            client["fingerprint"] = state["fp"]
            self._save()
            return self._welcome(client, state, "link")

    def _v4_whoami(self, r, state):
        r.done()
        with self.lock:
            client = self._by_fp(state["fp"])
            if self._forget(client):
                client = None
            if client is None:
                return response4(UNKNOWN)
            return self._welcome(client, state, "whoami")

    # -- files ---------------------------------------------------------------------------------

    def _folder(self, client):
        return os.path.join(self.storage_dir, client["id"].hex())

    @staticmethod
    def _sanitize(raw_name):
        base = os.path.basename(raw_name.replace("\\", "/"))
        if base in ("", ".", "..") or "\0" in base or len(base.encode()) > 254 or \
                not base.isprintable():
            return None
        return base

    def _files(self, client):
        """name -> dict(path, size, uploaded, sha256 or None): version-4 files and the
        verified version-3 uploads of this account (under the lock)."""
        out = {}
        folder = self._folder(client)
        for field, entry in client["files"].items():
            if not entry.get("verified"):
                continue
            base = self._sanitize(field.decode("utf-8", "replace")) or "unnamed"
            path = os.path.join(folder, base)
            if os.path.exists(path):
                out[base] = {"path": path, "size": os.path.getsize(path),
                             "uploaded": int(os.path.getmtime(path)), "sha256": None,
                             "v3_field": field}
        for name, entry in client.setdefault("v4files", {}).items():
            out[name] = dict(entry, path=os.path.join(folder, name))
        return out

    def _release_upload(self, state):
        with self.lock:
            up, state["upload"] = state["upload"], None
            if up is not None and up.get("owner") is state:
                up["owner"] = None
                up["file"].flush()

    def _drop_partial(self, up):
        """Forget a partial upload and its temporary file (under the lock)."""
        self.partials.pop(up["key"], None)
        try:
            up["file"].close()
            os.remove(up["path"])
        except OSError:
            pass

    def _put_open(self, r, state, stream):
        size = r.u64()
        raw_name = r.str()
        r.done()
        client = state["account"]
        if size > self.max_file_size:
            return error4(TOO_LARGE, "file too large")
        name = self._sanitize(raw_name)
        if name is None:
            return error4(BAD_REQUEST, "invalid file name")
        self._release_upload(state)
        with self.lock:
            key = (client["id"], name)
            up = self.partials.get(key)
            if up is not None and up["size"] != size:
                self._drop_partial(up)
                up = None
            if up is not None and up["owner"] is not None and up["owner"] is not state:
                # Takeover: the older connection gets ERROR 8 and is closed.
                old = up["owner"]
                old["taken_over"] = True  # its reader notices within POLL seconds
                old["upload"] = None
                self._event(event="takeover", name=name)
            if up is None:
                path = os.path.join(self.partial_dir, "%s-%s" % (client["id"].hex(),
                                                                 secrets.token_hex(8)))
                up = {"key": key, "name": name, "size": size, "offset": 0,
                      "sha": hashlib.sha256(), "path": path, "file": open(path, "wb"),
                      "owner": None, "data_in": 0, "plain_in": 0, "chunks": 0,
                      "compressed": 0}
                self.partials[key] = up
            up["owner"] = state
            state["upload"] = up
            self._save()
            self._event(event="put_open", name=name, size=size, offset=up["offset"])
            return response4(PUT_STATE, struct.pack("<Q", up["offset"]) + up["sha"].digest()
                             + struct.pack("<I", self.max_chunk))

    def _owned_upload(self, state):
        up = state["upload"]
        if state["taken_over"]:
            raise CloseConnection(error4(BUSY, "upload taken over by another connection"))
        if up is None or up.get("owner") is not state:
            raise CloseConnection(error4(BAD_REQUEST, "no upload open"))
        return up

    def _put_data(self, r, state, stream):
        offset, flags, plain_len = r.u64(), r.u8(), r.u32()
        data = r.rest()
        with self.lock:
            up = self._owned_upload(state)
            if flags & ~FLAG_DEFLATE:
                raise CloseConnection(error4(BAD_REQUEST, "unknown flags"))
            if not 1 <= plain_len <= self.max_chunk or len(data) > self.max_chunk + \
                    CHUNK_SLACK:
                self._event(event="refused_chunk", plain_len=plain_len, data=len(data))
                raise CloseConnection(error4(BAD_REQUEST, "chunk over max_chunk"))
            if offset != up["offset"] or offset + plain_len > up["size"]:
                self._event(event="refused_offset", offset=offset, expected=up["offset"])
                raise CloseConnection(error4(MISMATCH, "offset %d, expected %d"
                                             % (offset, up["offset"])))
            if flags & FLAG_DEFLATE:
                d = zlib.decompressobj(-15)
                try:
                    # at most plain_len + 1 bytes out: a bomb costs nothing
                    plain = d.decompress(data, plain_len + 1)
                except zlib.error as e:
                    raise CloseConnection(error4(BAD_REQUEST, "inflate: %s" % e))
                if len(plain) != plain_len or d.unconsumed_tail or not d.eof:
                    self._event(event="refused_inflate", plain_len=plain_len,
                                got=len(plain), eof=d.eof)
                    raise CloseConnection(error4(BAD_REQUEST, "inflate yields %s bytes, "
                                                 "plain_len %d" % (
                                                     len(plain) if not d.unconsumed_tail
                                                     else "more", plain_len)))
            else:
                if len(data) != plain_len:
                    raise CloseConnection(error4(BAD_REQUEST, "data is not plain_len bytes"))
                plain = data
            drop = False
            if self.drop_upload_after is not None and self.drop_times > 0 and \
                    up["offset"] + len(plain) >= self.drop_upload_after:
                plain = plain[:max(0, self.drop_upload_after - up["offset"])]
                self.drop_times -= 1
                drop = True
            up["file"].write(plain)
            up["sha"].update(plain)
            up["offset"] += len(plain)
            up["data_in"] += len(data)
            up["plain_in"] += len(plain)
            up["chunks"] += 1
            up["compressed"] += flags & FLAG_DEFLATE
            up["file"].flush()
            self._save()
        if drop:
            self._event(event="dropped_upload", name=up["name"], offset=up["offset"])
            raise CloseConnection(None)
        if self.put_data_hook is not None:
            self.put_data_hook(up["offset"])
        return None

    def _put_finish(self, r, state, stream):
        sha = r.take(SHA_SIZE)
        r.done()
        client = state["account"]
        with self.lock:
            up = self._owned_upload(state)
            mine = up["sha"].digest()
            if up["offset"] != up["size"] or not hmac.compare_digest(sha, mine):
                self._drop_partial(up)
                state["upload"] = None
                self._save()
                self._event(event="put_mismatch", name=up["name"], offset=up["offset"],
                            size=up["size"])
                return error4(MISMATCH, "size or SHA-256 mismatch")
            up["file"].flush()
            os.fsync(up["file"].fileno())
            up["file"].close()
            folder = self._folder(client)
            os.makedirs(folder, exist_ok=True)
            final = os.path.join(folder, up["name"])
            os.replace(up["path"], final)
            self.partials.pop(up["key"], None)
            state["upload"] = None
            entry = {"size": up["size"], "uploaded": int(time.time()), "sha256": mine}
            client.setdefault("v4files", {})[up["name"]] = entry
            # a version-3 record of the same name is superseded
            for field in [f for f in client["files"]
                          if self._sanitize(f.decode("utf-8", "replace")) == up["name"]]:
                del client["files"][field]
            self._save()
            wrong = self.wrong_done_sha > 0
            if wrong:
                self.wrong_done_sha -= 1
        crc = cksum_file(final)
        sent = bytes([mine[0] ^ 0xFF]) + mine[1:] if wrong else mine
        self._event(event="put_done", name=up["name"], size=up["size"], sha256=mine.hex(),
                    cksum=crc, data_in=up["data_in"], plain_in=up["plain_in"],
                    chunks=up["chunks"], compressed_chunks=up["compressed"])
        return response4(PUT_DONE, struct.pack("<Q", up["size"]) + sent
                         + struct.pack("<I", crc) + pack_str(up["name"]))

    def _put_abort(self, r, state, stream):
        r.done()
        with self.lock:
            up = state["upload"]
            if up is not None and up.get("owner") is state:
                self._drop_partial(up)
            state["upload"] = None
            self._save()
        self._event(event="put_abort")
        return response4(OK)

    def _list(self, r, state, stream):
        r.done()
        with self.lock:
            files = self._files(state["account"])
        out = [struct.pack("<I", len(files))]
        for name in sorted(files):
            f = files[name]
            out.append(struct.pack("<QQ", f["size"], f["uploaded"])
                       + (f["sha256"] or b"\0" * SHA_SIZE) + pack_str(name))
        return response4(LISTING, b"".join(out))

    def _get(self, r, state, stream):
        offset = r.u64()
        name = r.str()
        r.done()
        with self.lock:
            f = self._files(state["account"]).get(name)
        if f is None:
            return error4(NOT_FOUND, "no such file")
        if offset > f["size"]:
            return error4(MISMATCH, "offset past the end")
        h = hashlib.sha256()
        with open(f["path"], "rb") as fh:
            pos = 0
            while True:
                block = fh.read(self.max_chunk)
                if not block:
                    break
                h.update(block)
                end = pos + len(block)
                if end > offset:
                    part = block[max(0, offset - pos):]
                    stream.sendall(response4(GET_DATA, struct.pack("<Q", max(pos, offset))
                                             + part))
                pos = end
        extra = self.get_extra  # fault switch: a hostile server sends more than the file
        while extra > 0:
            n = min(self.max_chunk, extra)
            stream.sendall(response4(GET_DATA, struct.pack("<Q", pos) + b"\0" * n))
            pos += n
            extra -= n
            self.get_extra_sent += n
        self._event(event="get", name=name, offset=offset, size=f["size"])
        return response4(GET_END, struct.pack("<Q", f["size"]) + h.digest())

    def _delete(self, r, state, stream):
        name = r.str()
        r.done()
        client = state["account"]
        with self.lock:
            f = self._files(client).get(name)
            if f is None:
                return error4(NOT_FOUND, "no such file")
            if "v3_field" in f:
                del client["files"][f["v3_field"]]
            else:
                del client["v4files"][name]
            try:
                os.remove(f["path"])
            except OSError:
                pass
            self._save()
        self._event(event="delete", name=name)
        return response4(OK)


# ---------------------------------------------------------------------------------------
# CLI

USAGE = """\
sdpeer4.py serve [--port N] [--bind ADDR] [--storage DIR] [--tls-key PEM] [--fresh]
                 [--mitm] [--v3-only [1607|close]] [--forget N] [--drop-upload-after N]
                 [--drop-times K] [--wrong-done-sha N] [--max-chunk N] [--max-file-size N]
    prints "listening on ADDR:PORT", then one JSON object a line per event
    (listening with the fingerprint, tls, welcome, put_open, put_done with data_in and
    plain_in, refused_*, prove_refused, handshake_failed, v3_request, ...)
sdpeer4.py fingerprint [--tls-key PEM]
sdpeer4.py COMMAND HOST:PORT [ARGS] [--dir DIR] [--name NAME] [--server-key SHA256:..]
           [--no-known-servers] [--timeout S] [--no-login] [--no-cert] [--no-alpn]
           [--alpn PROTO]... [--tls12] [--drop-after BYTES]
    COMMAND: login | whoami | list | register NAME | link [--wrong-nonce] [--prove-twice]
             | put FILE [--as NAME] [--compress no|yes|auto] [--chunk N] [--fault F]
             | abort FILE [--as NAME] | get NAME -o PATH [--offset N] | rm NAME
             | raw CODE [--version V] [--payload-hex HEX]
    F: wrong_offset | wrong_sha | bomb | oversize | short_inflate | bad_flags
    prints JSON lines: a "tls" event, then one "result" (ok, exit, error, reason, ...);
    exit 0 ok, 1 ERROR from the server / dropped, 2 TLS or connection failure,
    3 local file problem, 10 fingerprint mismatch (nothing sent)
"""


def _emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def _serve_cli(args):
    server = Server4(args.storage, host=args.bind, port=args.port, tls_key=args.tls_key,
                     mitm=args.mitm, v3_only=args.v3_only, forget=args.forget,
                     drop_upload_after=args.drop_upload_after, drop_times=args.drop_times,
                     wrong_done_sha=args.wrong_done_sha, max_chunk=args.max_chunk,
                     max_file_size=args.max_file_size, log=sys.stdout, fresh=args.fresh)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    port = server.start()
    print("listening on %s:%d" % (args.bind, port), flush=True)
    _emit({"event": "listening", "port": port, "fingerprint": server.fingerprint()})
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _client_cli(args):
    host, _, port = args.address.rpartition(":")
    workdir = args.dir
    known = None if args.no_known_servers else os.path.join(workdir, "known_servers")
    alpn = None if args.no_alpn else (args.alpn or [ALPN])
    c = Client4(host or "127.0.0.1", int(port), alpn=alpn, tls12=args.tls12,
                expect_fp=args.server_key, known_servers=known, timeout=args.timeout,
                drop_after=args.drop_after)
    result = {"event": "result", "command": args.cmd, "ok": False}
    status = EXIT_ERROR
    try:
        if args.cmd == "register":
            c.identity = Identity.generate()
            c.connect()
            _emit(dict(c.info, event="tls"))
            rsa_key = sdpeer.RSAKey.generate()
            w = c.register(rsa_key, args.name)
            write_me_info(os.path.join(workdir, "me.info"), args.name,
                          bytes.fromhex(w["id"]), rsa_key)
            c.identity.save(os.path.join(workdir, "me.key"))
            result.update(w)
        elif args.cmd == "link":
            me_key = os.path.join(workdir, "me.key")
            c.identity = Identity.load(me_key) if os.path.exists(me_key) else \
                Identity.generate()
            c.connect()
            _emit(dict(c.info, event="tls"))
            name, cid, rsa_key = read_me_info(os.path.join(workdir, "me.info"))
            w = c.link_prove(name, cid, rsa_key, wrong_nonce=args.wrong_nonce,
                             prove_twice=args.prove_twice)
            if not os.path.exists(me_key):
                c.identity.save(me_key)
            result.update(w)
        elif args.no_login or args.cmd == "raw":
            me_key = os.path.join(workdir, "me.key")
            if not args.no_cert:
                c.identity = Identity.load(me_key) if os.path.exists(me_key) else \
                    Identity.generate()
            c.connect()
            _emit(dict(c.info, event="tls"))
        else:
            if args.no_cert:
                c.connect()
                _emit(dict(c.info, event="tls"))
                w = c.whoami()  # the server's refusal surfaces here in TLS 1.3
                result["account"] = w
            else:
                w = ensure_account(c, workdir, args.name)
                _emit(dict(c.info, event="tls"))
                result["account"] = w
        if args.cmd in ("whoami",) and (args.no_login or args.no_cert):
            result["account"] = c.whoami()
        elif args.cmd == "whoami":
            pass
        elif args.cmd == "login":
            pass
        elif args.cmd == "raw":
            payload = bytes.fromhex(args.payload_hex)
            c.send_frame(request4(args.code, payload, args.version))
            code, payload = c.recv(strict=False)
            result.update(code=code, payload_hex=payload.hex(), version=c.last_version)
            if code == ERROR:
                rd = Reader(payload)
                result["error"] = {"reason": rd.u16(), "message": rd.str()}
        elif args.cmd == "put":
            with open(args.file, "rb") as f:
                data = f.read()
            res = c.upload(args.as_name or os.path.basename(args.file), data,
                           compress=args.compress, chunk=args.chunk, fault=args.fault)
            result.update(res)
            result["bytes_sent"] = c.bytes_sent
            if not res["verified"]:
                raise sdpeer.PeerError("PUT_DONE does not match: %r" % res["done"])
        elif args.cmd == "abort":
            with open(args.file, "rb") as f:
                data = f.read()
            st = c.put_open(len(data), args.as_name or os.path.basename(args.file))
            c.put_abort()
            result["offset_before"] = st["offset"]
        elif args.cmd == "list":
            result["files"] = c.list()
        elif args.cmd == "get":
            prefix = b""
            if args.offset:
                with open(args.output, "rb") as f:
                    prefix = f.read(args.offset)
                if len(prefix) != args.offset:
                    raise ValueError("%s holds fewer than %d bytes" % (args.output,
                                                                       args.offset))
            g = c.get(args.file_name, args.offset, prefix)
            result.update({k: v for k, v in g.items() if k != "data"})
            if not g["verified"]:
                raise sdpeer.PeerError("GET_END's SHA-256 or size does not match")
            tmp = args.output + ".part"
            with open(tmp, "wb") as f:
                f.write(g["data"])
            os.replace(tmp, args.output)
        elif args.cmd == "rm":
            c.delete(args.file_name)
        result["ok"] = True
        status = EXIT_OK
    except PinError as e:
        result.update(error="pin", message=str(e), expected=e.expected, got=e.got)
        status = EXIT_PIN
    except RemoteError as e:
        result.update(error="remote", reason=e.reason, message=e.message)
    except Dropped as e:
        result.update(error="dropped", message=str(e), bytes_sent=c.bytes_sent)
    except (ssl.SSLError, ConnectionError, sdpeer.PeerError, socket.timeout) as e:
        result.update(error="connection", message=str(e) or type(e).__name__,
                      connected=bool(c.info))
        status = EXIT_TLS
    except (OSError, ValueError) as e:
        result.update(error="local", message=str(e))
        status = EXIT_LOCAL
    finally:
        c.close()
    result["exit"] = status
    _emit(result)
    return status


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sdpeer4.py", usage=USAGE,
                                 description="independent peer of sealdrop version 4")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--port", type=int, default=0)
    sv.add_argument("--bind", default="127.0.0.1", metavar="ADDR")
    sv.add_argument("--storage", default="peer4-files")
    sv.add_argument("--tls-key", metavar="PEM", help="default STORAGE/server.pem")
    sv.add_argument("--mitm", action="store_true")
    sv.add_argument("--v3-only", nargs="?", const="1607", choices=("1607", "close"),
                    help="act as a version-3 server: a ClientHello gets 1607 (or a close)")
    sv.add_argument("--forget", type=int, default=0, metavar="N")
    sv.add_argument("--drop-upload-after", type=int, metavar="N")
    sv.add_argument("--drop-times", type=int, default=1, metavar="K")
    sv.add_argument("--wrong-done-sha", type=int, default=0, metavar="N")
    sv.add_argument("--max-chunk", type=int, default=262144)
    sv.add_argument("--max-file-size", type=int, default=1 << 40)
    sv.add_argument("--fresh", action="store_true", help="ignore STORAGE/state.json")
    fp = sub.add_parser("fingerprint")
    fp.add_argument("--tls-key", default="server.pem", metavar="PEM")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("address", metavar="HOST:PORT")
    common.add_argument("--dir", default=".", help="folder of me.info, me.key, known_servers")
    common.add_argument("--name", help="account name when there is no me.info")
    common.add_argument("--server-key", metavar="SHA256:...")
    common.add_argument("--no-known-servers", action="store_true")
    common.add_argument("--timeout", type=float, default=10.0)
    common.add_argument("--no-login", action="store_true",
                        help="skip WHOAMI/LINK/REGISTER (requests before WELCOME)")
    common.add_argument("--no-cert", action="store_true")
    common.add_argument("--no-alpn", action="store_true")
    common.add_argument("--alpn", action="append", metavar="PROTO")
    common.add_argument("--tls12", action="store_true")
    common.add_argument("--drop-after", type=int, metavar="BYTES")
    for cmd in ("login", "whoami", "list"):
        sub.add_parser(cmd, parents=[common])
    rg = sub.add_parser("register", parents=[common])
    rg.add_argument("name")
    lk = sub.add_parser("link", parents=[common])
    lk.add_argument("--wrong-nonce", action="store_true")
    lk.add_argument("--prove-twice", action="store_true")
    for cmd in ("put", "abort"):
        pt = sub.add_parser(cmd, parents=[common])
        pt.add_argument("file")
        pt.add_argument("--as", dest="as_name", metavar="NAME")
        pt.add_argument("--compress", choices=("no", "yes", "auto"), default="no")
        pt.add_argument("--chunk", type=int)
        pt.add_argument("--fault", choices=("wrong_offset", "wrong_sha", "bomb", "oversize",
                                            "short_inflate", "bad_flags"))
    gt = sub.add_parser("get", parents=[common])
    gt.add_argument("file_name", metavar="NAME")
    gt.add_argument("-o", "--output", required=True)
    gt.add_argument("--offset", type=int, default=0)
    rm = sub.add_parser("rm", parents=[common])
    rm.add_argument("file_name", metavar="NAME")
    rw = sub.add_parser("raw", parents=[common])
    rw.add_argument("code", type=int)
    rw.add_argument("--version", type=int, default=VERSION4)
    rw.add_argument("--payload-hex", default="")
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        return _serve_cli(args)
    if args.cmd == "fingerprint":
        print(Identity.load_or_create(args.tls_key).fingerprint())
        return 0
    return _client_cli(args)


if __name__ == "__main__":
    sys.exit(main())

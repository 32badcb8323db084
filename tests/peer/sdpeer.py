#!/usr/bin/python3
"""sdpeer: an independent Python implementation of the sealdrop wire protocol (version 3).

Written from ../shared/SPEC.md alone, sharing no code or constants with the C tree, so that
tests can check our C server and client against a second implementation. It holds the
framing, the crypto (python3-cryptography), the five 828 sender layouts, a client
(PeerClient), a threaded reference server with fault switches (PeerServer) and a small CLI:

    sdpeer.py serve [--port N] [--bind ADDR] [--storage DIR] [--wrong-crc N] [--deny-reconnect] ...
    sdpeer.py upload HOST:PORT NAME FILE [--variant V] [--packet-size N]

Everything is bounded: sockets carry timeouts, threads are joined with timeouts.
"""

import argparse
import base64
import errno
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ---------------------------------------------------------------------------------------
# Constants (SPEC.md sections 1-4)

VERSION = 3

REGISTER = 825
PUBLIC_KEY = 826
RECONNECT = 827
SEND_FILE = 828
CRC_OK = 900
CRC_RETRY = 901
CRC_FAIL = 902
REQUEST_CODES = (REGISTER, PUBLIC_KEY, RECONNECT, SEND_FILE, CRC_OK, CRC_RETRY, CRC_FAIL)

REGISTERED = 1600
REGISTER_FAILED = 1601
AES_KEY = 1602
FILE_CRC = 1603
ACK = 1604
RECONNECTED = 1605
RECONNECT_DENIED = 1606
ERROR = 1607

REQ_HEADER_SIZE = 23
RESP_HEADER_SIZE = 7
ID_SIZE = 16
NAME_SIZE = 255
PUBKEY_SIZE = 160
WRAPPED_SIZE = 128
AES_KEY_SIZE = 32
BLOCK = 16
FILE_HEADER_SIZE = 4 + 4 + 2 + 2 + NAME_SIZE  # 267
ZERO_ID = b"\0" * ID_SIZE

# Requests of a fixed size; 828 is FILE_HEADER_SIZE + content.
REQUEST_SIZES = {REGISTER: NAME_SIZE, PUBLIC_KEY: NAME_SIZE + PUBKEY_SIZE, RECONNECT: NAME_SIZE,
                 CRC_OK: NAME_SIZE, CRC_RETRY: NAME_SIZE, CRC_FAIL: NAME_SIZE}
RESPONSE_SIZES = {REGISTERED: ID_SIZE, REGISTER_FAILED: 0, AES_KEY: ID_SIZE + WRAPPED_SIZE,
                  FILE_CRC: ID_SIZE + 4 + NAME_SIZE + 4, ACK: ID_SIZE,
                  RECONNECTED: ID_SIZE + WRAPPED_SIZE, RECONNECT_DENIED: ID_SIZE, ERROR: 0}

# The largest 828 content this peer holds in memory (it buffers a packet whole).
MAX_CONTENT = 1 << 30
# Payloads of unknown codes (or wrong sizes) up to this are read and answered with 1607;
# anything larger breaks framing and closes the connection.
MAX_SMALL_PAYLOAD = 4096
# The client retries an upload at most this many times in the CRC loop (SPEC 5).
MAX_ATTEMPTS = 4

VARIANTS = ("split", "split0", "padded", "padded0", "single", "perpacket")


class PeerError(Exception):
    """A protocol-level failure: EOF, timeout, bad framing or an unexpected message."""


class PeerEOF(PeerError):
    """The peer closed the connection cleanly between two messages."""


class UploadError(Exception):
    """An inconsistent 828 upload (the server answers 1607 and discards it)."""


# ---------------------------------------------------------------------------------------
# Framing

def encode_request(client_id, code, payload, version=VERSION):
    """Return the bytes of one request: client_id[16] version u8 code u16 size u32 payload."""
    client_id = bytes(client_id)
    if len(client_id) != ID_SIZE:
        raise ValueError("client_id must be 16 bytes")
    payload = bytes(payload)
    return client_id + struct.pack("<BHI", version, code, len(payload)) + payload


def encode_response(code, payload, version=VERSION):
    """Return the bytes of one response: version u8 code u16 size u32 payload."""
    payload = bytes(payload)
    return struct.pack("<BHI", version, code, len(payload)) + payload


class ByteStream:
    """Something with recv(n) over a bytes object, so the readers can parse recordings."""

    def __init__(self, data):
        self.data = memoryview(bytes(data))
        self.pos = 0

    def recv(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return bytes(chunk)

    def at_eof(self):
        return self.pos >= len(self.data)


def recv_exact(sock, n, stop=None):
    """Read exactly n bytes. Raises PeerEOF on EOF before the first byte, PeerError on EOF
    after it or on timeout. With stop (a threading.Event), socket timeouts are polls: the
    read goes on until stop is set (the server uses short timeouts to notice stop())."""
    parts = []
    got = 0
    while got < n:
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except socket.timeout:
            if stop is not None and not stop.is_set():
                continue
            raise PeerError("timeout after %d of %d bytes" % (got, n)) from None
        except OSError as e:
            raise PeerError("connection error: %s" % e) from None
        if not chunk:
            if got == 0:
                raise PeerEOF("connection closed")
            raise PeerError("EOF after %d of %d bytes" % (got, n))
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_request_header(sock, stop=None):
    """Read a 23-byte request header and return it as a dict."""
    raw = recv_exact(sock, REQ_HEADER_SIZE, stop)
    version, code, size = struct.unpack_from("<BHI", raw, ID_SIZE)
    return {"client_id": raw[:ID_SIZE], "version": version, "code": code, "payload_size": size}


def request_size_ok(code, size, max_content=MAX_CONTENT):
    """True when size is exactly what SPEC.md allows for this request code."""
    if code == SEND_FILE:
        return FILE_HEADER_SIZE <= size <= FILE_HEADER_SIZE + max_content
    return REQUEST_SIZES.get(code) == size


def read_request(sock, max_content=MAX_CONTENT, stop=None):
    """Read one request strictly: known code and exact payload size, else PeerError.
    Returns (header dict, payload bytes)."""
    hdr = read_request_header(sock, stop)
    if hdr["code"] not in REQUEST_CODES:
        raise PeerError("unknown request code %d" % hdr["code"])
    if not request_size_ok(hdr["code"], hdr["payload_size"], max_content):
        raise PeerError("request %d with payload size %d" % (hdr["code"], hdr["payload_size"]))
    try:
        payload = recv_exact(sock, hdr["payload_size"], stop)
    except PeerEOF:
        raise PeerError("EOF before the payload") from None
    return hdr, payload


def read_response(sock, stop=None):
    """Read one response strictly: known code and exact payload size, else PeerError.
    Returns (header dict, payload bytes)."""
    raw = recv_exact(sock, RESP_HEADER_SIZE, stop)
    version, code, size = struct.unpack("<BHI", raw)
    if code not in RESPONSE_SIZES:
        raise PeerError("unknown response code %d" % code)
    if RESPONSE_SIZES[code] != size:
        raise PeerError("response %d with payload size %d" % (code, size))
    try:
        payload = recv_exact(sock, size, stop) if size else b""
    except PeerEOF:
        raise PeerError("EOF before the payload") from None
    return {"version": version, "code": code, "payload_size": size}, payload


def name_field(name):
    """A string (str as UTF-8, or bytes) as a 255-byte zero-padded field; at most 254 bytes."""
    raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    if len(raw) > NAME_SIZE - 1:
        raise ValueError("field longer than 254 bytes")
    return raw + b"\0" * (NAME_SIZE - len(raw))


def field_bytes(field):
    """The bytes of a string field up to its NUL; PeerError when there is no NUL."""
    field = bytes(field)
    end = field.find(b"\0")
    if end < 0:
        raise PeerError("string field without NUL")
    return field[:end]


def decode_file_packet(payload, swapped=False):
    """Split an 828 payload into its fields. swapped: the u16 at offset 8 is total_packets
    (the per-packet variant). The content is a memoryview into payload."""
    if len(payload) < FILE_HEADER_SIZE:
        raise PeerError("828 payload shorter than 267 bytes")
    content_size, orig, u8, u10 = struct.unpack_from("<IIHH", payload, 0)
    number, total = (u10, u8) if swapped else (u8, u10)
    return {"content_size": content_size, "orig_file_size": orig, "u16_at_8": u8,
            "u16_at_10": u10, "packet_number": number, "total_packets": total,
            "file_name_field": bytes(payload[12:12 + NAME_SIZE]),
            "content": memoryview(payload)[FILE_HEADER_SIZE:]}


def decode_file_crc(payload):
    """Fields of a 1603 payload as a dict (file_name as str, undecodable bytes replaced)."""
    if len(payload) != RESPONSE_SIZES[FILE_CRC]:
        raise PeerError("1603 payload of %d bytes" % len(payload))
    content_size, = struct.unpack_from("<I", payload, ID_SIZE)
    cks, = struct.unpack_from("<I", payload, ID_SIZE + 4 + NAME_SIZE)
    name = field_bytes(payload[ID_SIZE + 4:ID_SIZE + 4 + NAME_SIZE])
    return {"client_id": bytes(payload[:ID_SIZE]), "content_size": content_size,
            "file_name": name.decode("utf-8", "replace"), "cksum": cks}


# ---------------------------------------------------------------------------------------
# Crypto (SPEC.md section 4)

def _oaep():
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(),
                        label=None)


def _is_probable_prime(n, rounds=40):
    """Miller-Rabin with random bases."""
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = 2 + secrets.randbelow(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _rsa_prime(bits, e):
    # Top two bits set so that p*q has exactly 2*bits bits; p-1 coprime with e.
    while True:
        c = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if (c - 1) % e != 0 and _is_probable_prime(c):
            return c


class RSAKey:
    """An RSA key pair, or a public key alone (from public_from_spki)."""

    def __init__(self, private=None, public=None):
        self.private = private
        self.public = public if public is not None else private.public_key()

    @classmethod
    def generate(cls, e=17, bits=1024):
        """A fresh key with public exponent e. python3-cryptography only generates e = 3 or
        65537, so the primes are made here and the key is built from its numbers."""
        half = bits // 2
        while True:
            p, q = _rsa_prime(half, e), _rsa_prime(bits - half, e)
            if p != q and (p * q).bit_length() == bits:
                break
        if p < q:
            p, q = q, p
        d = pow(e, -1, (p - 1) * (q - 1))
        pub = rsa.RSAPublicNumbers(e, p * q)
        priv = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), pub)
        return cls(priv.private_key())

    @classmethod
    def from_der(cls, der):
        """Load a private key from DER: PKCS#8 PrivateKeyInfo or PKCS#1 RSAPrivateKey."""
        key = serialization.load_der_private_key(bytes(der), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls(key)

    @classmethod
    def from_base64(cls, text):
        """Load a private key from base64 of its DER; whitespace (line breaks) is skipped."""
        if isinstance(text, str):
            text = text.encode("ascii")
        compact = b"".join(bytes(text).split())
        return cls.from_der(base64.b64decode(compact, validate=True))

    @classmethod
    def public_from_spki(cls, der):
        """A public-only key from DER SubjectPublicKeyInfo."""
        key = serialization.load_der_public_key(bytes(der))
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("not an RSA public key")
        return cls(public=key)

    @property
    def n(self):
        return self.public.public_numbers().n

    @property
    def e(self):
        return self.public.public_numbers().e

    def spki(self):
        """The public key as DER SubjectPublicKeyInfo (160 bytes for RSA-1024, e = 17)."""
        return self.public.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    def pkcs8_der(self):
        """The private key as PKCS#8 PrivateKeyInfo DER."""
        return self.private.private_bytes(serialization.Encoding.DER,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    def pkcs8_base64(self):
        """base64 of pkcs8_der() on one line (what our client writes into me.info)."""
        return base64.b64encode(self.pkcs8_der()).decode("ascii")

    def wrap(self, aes_key):
        """RSA-OAEP (SHA-1, MGF1-SHA-1, no label) encryption of aes_key: 128 bytes."""
        return self.public.encrypt(bytes(aes_key), _oaep())

    def unwrap(self, blob):
        """RSA-OAEP decryption with the private key; ValueError when it fails."""
        if self.private is None:
            raise ValueError("public key only")
        return self.private.decrypt(bytes(blob), _oaep())


def _aes(key):
    if len(key) != AES_KEY_SIZE:
        raise ValueError("AES key must be 32 bytes")
    return Cipher(algorithms.AES(bytes(key)), modes.CBC(b"\0" * BLOCK))


def aes_encrypt(key, data):
    """AES-256-CBC with a zero IV and PKCS#7 padding (1000 bytes give 1008, 0 give 16)."""
    pad = BLOCK - len(data) % BLOCK
    enc = _aes(key).encryptor()
    return enc.update(bytes(data) + bytes([pad]) * pad) + enc.finalize()


def aes_decrypt(key, data):
    """Inverse of aes_encrypt; ValueError on a bad length or bad PKCS#7 padding."""
    if len(data) == 0 or len(data) % BLOCK:
        raise ValueError("ciphertext length %d is not a positive multiple of 16" % len(data))
    dec = _aes(key).decryptor()
    plain = dec.update(bytes(data)) + dec.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    return plain[:-pad]


# ---------------------------------------------------------------------------------------
# cksum (SPEC.md section 5): CRC-32, polynomial 0x04C11DB7, MSB first, initial 0, then the
# length LSB first, complemented. The table is derived bit by bit from that definition.

POLY = 0x04C11DB7
MASK32 = 0xFFFFFFFF


def _crc_step_bits(crc, byte):
    crc ^= byte << 24
    for _ in range(8):
        crc = ((crc << 1) ^ POLY) & MASK32 if crc & 0x80000000 else (crc << 1) & MASK32
    return crc


_TABLE = [_crc_step_bits(0, i) for i in range(256)]


def _length_bytes(n):
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    return bytes(out)


def cksum_bitwise(data):
    """cksum exactly as the definition reads, one bit at a time (slow; for checking)."""
    crc = 0
    for b in bytes(data) + _length_bytes(len(data)):
        crc = _crc_step_bits(crc, b)
    return ~crc & MASK32


def cksum(data):
    """The POSIX cksum of data (equals GNU `cksum`'s first field), byte-table driven."""
    crc = 0
    t = _TABLE
    for b in bytes(data):
        crc = ((crc << 8) & MASK32) ^ t[(crc >> 24) ^ b]
    for b in _length_bytes(len(data)):
        crc = ((crc << 8) & MASK32) ^ t[(crc >> 24) ^ b]
    return ~crc & MASK32


# ---------------------------------------------------------------------------------------
# 828 layouts (SPEC.md section 5)

def _file_packet(content_size, orig, u8, u10, name, content):
    return struct.pack("<IIHH", content_size, orig, u8, u10) + name + bytes(content)


def packetize(data, aes_key, file_name, variant="split", packet_size=8192):
    """The 828 payloads that a sender of the given variant sends for plaintext data:
    'split'    whole-file ciphertext cut into packet_size pieces (last shorter), numbered 1..N;
    'split0'   the same numbered 0..N-1;
    'padded'   the same but every packet packet_size bytes, the last zero-filled past
               content_size; 'padded0' the same numbered from 0;
    'single'   the whole ciphertext in one packet (1 of 1);
    'perpacket' each packet_size chunk of plaintext encrypted on its own, content_size =
               that packet's ciphertext size, total_packets written before packet_number.
    """
    if variant not in VARIANTS:
        raise ValueError("unknown variant %r" % variant)
    if packet_size < 1:
        raise ValueError("packet_size must be positive")
    data = bytes(data)
    if len(data) > MASK32:
        raise ValueError("file too large for the u32 size field")
    name = name_field(file_name)
    out = []
    if variant == "perpacket":
        chunks = [data[i:i + packet_size] for i in range(0, len(data), packet_size)] or [b""]
        if len(chunks) > 0xFFFF:
            raise ValueError("more than 65535 packets")
        for i, chunk in enumerate(chunks):
            ct = aes_encrypt(aes_key, chunk)
            out.append(_file_packet(len(ct), len(data), len(chunks), i + 1, name, ct))
        return out
    ct = aes_encrypt(aes_key, data)
    if variant == "single":
        return [_file_packet(len(ct), len(data), 1, 1, name, ct)]
    pieces = [ct[i:i + packet_size] for i in range(0, len(ct), packet_size)]
    if len(pieces) > 0xFFFF:
        raise ValueError("more than 65535 packets")
    first = 0 if variant in ("split0", "padded0") else 1
    for i, piece in enumerate(pieces):
        if variant in ("padded", "padded0"):
            piece = piece + b"\0" * (packet_size - len(piece))
        out.append(_file_packet(len(ct), len(data), first + i, len(pieces), name, piece))
    return out


class Reassembler:
    """Server-side reassembly of one upload from its 828 payloads, any of the five layouts,
    told apart from the packets alone. feed() returns None until the last packet, then a dict
    (plaintext, content_size = total ciphertext bytes, file_name bytes, layout). Any
    inconsistency raises UploadError; the caller then discards this object."""

    def __init__(self, aes_key):
        self.key = bytes(aes_key)
        self.layout = None
        self.count = 0
        self.parts = []
        self.received = 0

    def feed(self, payload):
        if len(payload) < FILE_HEADER_SIZE:
            raise UploadError("828 payload shorter than its header")
        content_size, orig, u8, u10 = struct.unpack_from("<IIHH", payload, 0)
        try:
            name = field_bytes(payload[12:12 + NAME_SIZE])
        except PeerError as e:
            raise UploadError(str(e)) from None
        content = bytes(payload[FILE_HEADER_SIZE:])
        if not name:
            raise UploadError("empty file name")
        if self.layout is None:
            # A whole-stream sender's first packet is number 0 or 1; a per-packet sender
            # writes the total first, so a first u16 above 1 means per-packet.
            if u8 > 1:
                self.layout = "perpacket"
                self.total, self.first = u8, u10
            else:
                self.layout = "stream"
                self.first, self.total = u8, u10
            if self.first not in (0, 1) or self.total < 1:
                raise UploadError("bad first packet number/total")
            self.name, self.orig = name, orig
            self.content_size = content_size
        if name != self.name or orig != self.orig:
            raise UploadError("file name or size changed mid-upload")
        if self.layout == "perpacket":
            number, total = u10, u8
        else:
            number, total = u8, u10
        if total != self.total or number != self.first + self.count:
            raise UploadError("packet %d of %d out of order" % (number, total))
        self.count += 1
        last = self.count == self.total
        if self.layout == "perpacket":
            if content_size != len(content):
                raise UploadError("per-packet content_size differs from the content")
            try:
                self.parts.append(aes_decrypt(self.key, content))
            except ValueError as e:
                raise UploadError(str(e)) from None
            self.received += len(content)
            if not last:
                return None
            plain = b"".join(self.parts)
            total_ct = self.received
        else:
            if content_size != self.content_size:
                raise UploadError("content_size changed mid-upload")
            self.parts.append(content)
            self.received += len(content)
            if not last:
                if self.received > content_size:
                    raise UploadError("more bytes than announced")
                return None
            if self.received < content_size:
                raise UploadError("fewer bytes than announced")
            # The padded layout fills its last packet with zeros past content_size, to the
            # size of the others: strip that excess, and reject any other surplus.
            whole = b"".join(self.parts)
            if self.received > content_size:
                if any(whole[content_size:]) or (
                        self.total > 1 and len(content) != len(self.parts[0])):
                    raise UploadError("more bytes than announced")
            ct = whole[:content_size]
            try:
                plain = aes_decrypt(self.key, ct)
            except ValueError as e:
                raise UploadError(str(e)) from None
            total_ct = content_size
        if len(plain) != self.orig:
            raise UploadError("plaintext is %d bytes, orig_file_size says %d"
                              % (len(plain), self.orig))
        return {"plaintext": plain, "content_size": total_ct, "file_name": self.name,
                "layout": self.layout}


def reassemble(payloads, aes_key):
    """Reassemble a list of 828 payloads; returns the final dict of Reassembler.feed()."""
    r = Reassembler(aes_key)
    result = None
    for i, p in enumerate(payloads):
        if result is not None:
            raise UploadError("packets after the last one")
        result = r.feed(p)
    if result is None:
        raise UploadError("upload incomplete")
    return result


# ---------------------------------------------------------------------------------------
# Client

class PeerClient:
    """A blocking client of the protocol. Every call is bounded by timeout (seconds).
    The client ID used in request headers is remembered after register/reconnect."""

    def __init__(self, host, port, timeout=10.0):
        self.host, self.port, self.timeout = host, int(port), timeout
        self.sock = None
        self.client_id = ZERO_ID
        self.aes_key = None
        self.rsa_key = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        """Open the TCP connection (closing any previous one)."""
        self.close()
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise PeerError("connect to %s:%d: %s" % (self.host, self.port, e)) from None
        self.sock.settimeout(self.timeout)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def send_raw(self, data):
        """Send bytes as they are (connects first if needed)."""
        if self.sock is None:
            self.connect()
        try:
            self.sock.sendall(bytes(data))
        except OSError as e:
            raise PeerError("send: %s" % e) from None

    def request(self, code, payload, client_id=None):
        """Send one request under client_id (default: the remembered ID)."""
        cid = self.client_id if client_id is None else client_id
        self.send_raw(encode_request(cid, code, payload))

    def recv(self):
        """Read one response strictly: (code, payload); PeerError on EOF, timeout or bad
        framing (an unknown code or a payload size other than the spec's)."""
        if self.sock is None:
            raise PeerError("not connected")
        hdr, payload = read_response(self.sock)
        return hdr["code"], payload

    def _expect_id(self, code, payload):
        if payload[:ID_SIZE] != self.client_id:
            raise PeerError("response %d carries client ID %s, expected %s"
                            % (code, payload[:ID_SIZE].hex(), self.client_id.hex()))

    def register(self, name, header_id=ZERO_ID):
        """825. Returns (code, client_id) on 1600, else (code, None)."""
        self.request(REGISTER, name_field(name), client_id=header_id)
        code, payload = self.recv()
        if code == REGISTERED:
            self.client_id = payload
            return code, payload
        return code, None

    def send_public_key(self, name, rsa_key):
        """826 with rsa_key's SPKI. Returns (code, aes_key) on 1602 (unwrapped), else
        (code, None)."""
        self.request(PUBLIC_KEY, name_field(name) + rsa_key.spki())
        code, payload = self.recv()
        if code != AES_KEY:
            return code, None
        self._expect_id(code, payload)
        self.rsa_key = rsa_key
        self.aes_key = rsa_key.unwrap(payload[ID_SIZE:])
        return code, self.aes_key

    def reconnect(self, name, client_id, rsa_key):
        """827 under client_id. Returns (1605, aes_key, None), (1606, None, id_in_1606) or
        (code, None, None). A non-zero ID in 1606 becomes the remembered ID (a pending
        registration that a later 826 may use)."""
        self.client_id = bytes(client_id)
        self.request(RECONNECT, name_field(name))
        code, payload = self.recv()
        if code == RECONNECTED:
            self._expect_id(code, payload)
            self.rsa_key = rsa_key
            self.aes_key = rsa_key.unwrap(payload[ID_SIZE:])
            return code, self.aes_key, None
        if code == RECONNECT_DENIED:
            if payload != ZERO_ID:
                self.client_id = payload
            return code, None, payload
        return code, None, None

    def send_packets(self, file_name, data, aes_key, variant="split", packet_size=8192):
        """Send every 828 of one upload without waiting for a reply."""
        for p in packetize(data, aes_key, file_name, variant, packet_size):
            self.request(SEND_FILE, p)

    def upload(self, file_name, data, aes_key, variant="split", packet_size=8192):
        """Send one upload and wait for its 1603, skipping stray 1604s (SPEC 5). Returns
        dict(code, client_id, content_size, file_name, cksum); the last four are None when
        the reply is not 1603."""
        self.send_packets(file_name, data, aes_key, variant, packet_size)
        for _ in range(8):
            code, payload = self.recv()
            if code != ACK:
                break
        else:
            raise PeerError("only 1604s after an upload")
        if code == FILE_CRC:
            fields = decode_file_crc(payload)
            fields["code"] = code
            return fields
        return {"code": code, "client_id": None, "content_size": None, "file_name": None,
                "cksum": None}

    def crc_ok(self, file_name):
        """900; returns the reply code."""
        self.request(CRC_OK, name_field(file_name))
        return self.recv()[0]

    def crc_retry(self, file_name):
        """901; no reply is awaited."""
        self.request(CRC_RETRY, name_field(file_name))

    def crc_fail(self, file_name):
        """902; returns the reply code."""
        self.request(CRC_FAIL, name_field(file_name))
        return self.recv()[0]

    def full_session(self, name, file_name, data, variant="split", packet_size=8192,
                     rsa_key=None):
        """Register, send a key, upload with the CRC loop (900, or 901 and again, 902 after
        the 4th mismatch). Returns dict(code = the last reply code, client_id, rsa_key,
        aes_key, attempts, content_size, cksum, file_name, step = where it stopped)."""
        if self.sock is None:
            self.connect()
        res = {"code": None, "client_id": None, "rsa_key": None, "aes_key": None,
               "attempts": 0, "content_size": None, "cksum": None, "file_name": None,
               "step": "register"}
        code, cid = self.register(name)
        res["code"], res["client_id"] = code, cid
        if code != REGISTERED:
            return res
        key = rsa_key or RSAKey.generate()
        res["rsa_key"], res["step"] = key, "key"
        code, aes = self.send_public_key(name, key)
        res["code"], res["aes_key"] = code, aes
        if code != AES_KEY:
            return res
        res["step"] = "upload"
        expected = cksum(data)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            res["attempts"] = attempt
            r = self.upload(file_name, data, aes, variant, packet_size)
            res["code"] = r["code"]
            if r["code"] != FILE_CRC:
                return res
            res["content_size"], res["cksum"], res["file_name"] = (
                r["content_size"], r["cksum"], r["file_name"])
            if r["cksum"] == expected:
                res["step"] = "crc_ok"
                res["code"] = self.crc_ok(file_name)
                return res
            if attempt < MAX_ATTEMPTS:
                self.crc_retry(file_name)
        res["step"] = "crc_fail"
        res["code"] = self.crc_fail(file_name)
        return res


# ---------------------------------------------------------------------------------------
# Reference server

def _valid_name(raw):
    # SPEC 6: 1 to 254 bytes of printable UTF-8, no control characters.
    if not 1 <= len(raw) <= NAME_SIZE - 1:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def _der_prefix(field):
    """The DER element at the start of a zero-padded field (a key shorter than 160 bytes is
    followed by zeros); ValueError if the length does not fit or the rest is not zeros."""
    if len(field) < 2:
        raise ValueError("short DER")
    first = field[1]
    if first < 0x80:
        end = 2 + first
    else:
        nlen = first & 0x7F
        if not 1 <= nlen <= 2 or len(field) < 2 + nlen:
            raise ValueError("bad DER length")
        end = 2 + nlen + int.from_bytes(field[2:2 + nlen], "big")
    if end > len(field) or any(field[end:]):
        raise ValueError("DER does not fit the field")
    return bytes(field[:end])


class PeerServer:
    """A threaded reference server (one thread per connection, state in dicts).

    Attributes: port; requests: list of (code, client_id, payload_size) in arrival order;
    stored: dict file_name (str) -> bytes of the last decrypted upload; clients: dict name
    (str) -> dict(id, name, public_key, rsa, aes_key, files, last_seen); files maps the
    file-name field's bytes to dict(verified, cksum, size). Fault switches (all off by
    default): wrong_crc=N (a wrong cksum in the first N 1603s), error_replies={code: count}
    (1607 to the first count requests of code), deny_reconnect (every 827 gets 1606 with a
    fresh pending ID; the name's old record is dropped), drop_on=code (close on it),
    stall_on=code (that request and all later ones on its connection get no answer),
    ack_901 (answer 901 with 1604), name_taken (1601 to every 825), ack_payload=bytes (the
    payload of the 1604 that answers 900 and 902, instead of the client ID), ack_cut=N (that
    1604 announces 255 payload bytes, sends the ID's first N, and the connection closes).
    """

    POLL = 0.2           # socket timeout used to poll the stop flag
    JOIN_TIMEOUT = 5.0   # per thread, when stopping

    def __init__(self, storage_dir, host="127.0.0.1", port=0, wrong_crc=0, error_replies=None,
                 deny_reconnect=False, drop_on=None, stall_on=None, ack_901=False,
                 name_taken=False, max_content=MAX_CONTENT, ack_payload=None, ack_cut=None):
        self.storage_dir = storage_dir
        self.host, self.port = host, port
        self.wrong_crc = wrong_crc
        self.error_replies = dict(error_replies or {})
        self.deny_reconnect = deny_reconnect
        self.drop_on, self.stall_on = drop_on, stall_on
        self.ack_901, self.name_taken = ack_901, name_taken
        self.max_content = max_content
        self.ack_payload, self.ack_cut = ack_payload, ack_cut
        self.requests = []
        self.stored = {}
        self.clients = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.listener = None
        self.accept_thread = None
        self.threads = []
        self.conns = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Listen and serve in the background; returns the port."""
        os.makedirs(self.storage_dir, exist_ok=True)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A restart on the port of a server just stopped: its accept thread may hold the old
        # listener for up to one POLL (or a join timeout under load); wait for it, bounded.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.listener.bind((self.host, self.port))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or not self.port or time.monotonic() > deadline:
                    self.listener.close()
                    raise
                time.sleep(0.1)
        self.listener.listen(64)
        self.listener.settimeout(self.POLL)
        self.port = self.listener.getsockname()[1]
        self.accept_thread = threading.Thread(target=self._accept_loop, name="sdpeer-accept",
                                              daemon=True)
        self.accept_thread.start()
        return self.port

    def stop(self):
        """Close the listener and every connection; join all threads (bounded)."""
        self.stop_event.set()
        if self.accept_thread is not None:
            self.accept_thread.join(self.JOIN_TIMEOUT)
        if self.listener is not None:
            self.listener.close()
        with self.lock:
            conns = list(self.conns)
            threads = list(self.threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(self.JOIN_TIMEOUT)
        for c in conns:
            c.close()

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(self.POLL)
            t = threading.Thread(target=self._serve, args=(conn,), name="sdpeer-conn",
                                 daemon=True)
            with self.lock:
                self.conns.append(conn)
                self.threads.append(t)
            t.start()

    # -- one connection ------------------------------------------------------------------

    def _serve(self, conn):
        state = {"upload": None, "stalled": False}
        try:
            while not self.stop_event.is_set():
                hdr = read_request_header(conn, self.stop_event)
                code, size = hdr["code"], hdr["payload_size"]
                with self.lock:
                    self.requests.append((code, hdr["client_id"], size))
                limit = FILE_HEADER_SIZE + self.max_content if code == SEND_FILE \
                    else MAX_SMALL_PAYLOAD
                if size > limit:
                    return  # framing cannot be trusted any more: close
                try:
                    payload = recv_exact(conn, size, self.stop_event) if size else b""
                except PeerEOF:
                    return
                if state["stalled"]:
                    continue
                if code == self.drop_on:
                    return
                if code == self.stall_on:
                    state["stalled"] = True
                    continue
                reply = self._handle(hdr, payload, state)
                if reply is not None:
                    conn.sendall(reply)
                if state.get("close"):  # a subclass's handler asked to end the connection
                    return
        except (PeerError, OSError):
            pass
        finally:
            # stop() closes sockets it knows; a connection ending on its own closes here.
            if not self.stop_event.is_set():
                with self.lock:
                    if conn in self.conns:
                        self.conns.remove(conn)
                conn.close()

    def _handle(self, hdr, payload, state):
        """Answer one request: the response bytes, or None for no reply."""
        code = hdr["code"]
        with self.lock:
            known = self._client_by_id(hdr["client_id"]) if code != REGISTER else None
            if known is not None:
                known["last_seen"] = time.time()  # SPEC 6: every request of a known client
            left = self.error_replies.get(code, 0)
            if left > 0:
                self.error_replies[code] = left - 1
                if code == SEND_FILE:
                    state["upload"] = None
                return encode_response(ERROR, b"")
            if not request_size_ok(code, len(payload), self.max_content):
                if code == SEND_FILE:
                    state["upload"] = None
                return encode_response(ERROR, b"")
            handler = {REGISTER: self._register, PUBLIC_KEY: self._public_key,
                       RECONNECT: self._reconnect, SEND_FILE: self._send_file,
                       CRC_OK: self._crc, CRC_RETRY: self._crc, CRC_FAIL: self._crc}[code]
            return handler(hdr, payload, state)

    def _client_by_id(self, cid):
        for c in self.clients.values():
            if c["id"] == cid:
                return c
        return None

    def _new_client(self, name):
        cid = secrets.token_bytes(ID_SIZE)
        self.clients[name] = {"id": cid, "name": name, "public_key": None, "aes_key": None,
                              "files": {}, "last_seen": time.time()}
        return cid

    @staticmethod
    def _name(payload):
        try:
            raw = field_bytes(payload[:NAME_SIZE])
        except PeerError:
            return None
        return raw.decode("utf-8") if _valid_name(raw) else None

    def _register(self, hdr, payload, state):
        name = self._name(payload)
        if self.name_taken or name is None:
            return encode_response(REGISTER_FAILED, b"")
        old = self.clients.get(name)
        if old is not None and old["public_key"] is not None:
            return encode_response(REGISTER_FAILED, b"")
        return encode_response(REGISTERED, self._new_client(name))

    def _issue_key(self, client, pub):
        client["aes_key"] = secrets.token_bytes(AES_KEY_SIZE)
        return client["id"] + pub.wrap(client["aes_key"])

    def _public_key(self, hdr, payload, state):
        name = self._name(payload)
        client = self.clients.get(name) if name is not None else None
        if client is None or client["id"] != hdr["client_id"] or \
                client["public_key"] is not None:
            return encode_response(ERROR, b"")
        spki = payload[NAME_SIZE:NAME_SIZE + PUBKEY_SIZE]
        try:
            pub = RSAKey.public_from_spki(_der_prefix(spki))
        except ValueError:
            return encode_response(ERROR, b"")
        client["public_key"] = spki
        client["rsa"] = pub
        return encode_response(AES_KEY, self._issue_key(client, pub))

    def _reconnect(self, hdr, payload, state):
        name = self._name(payload)
        if name is None:
            return encode_response(ERROR, b"")
        client = self.clients.get(name)
        if client is None or self.deny_reconnect:
            # Unknown name (or the fault switch): a pending registration with a new ID.
            return encode_response(RECONNECT_DENIED, self._new_client(name))
        if client["id"] == hdr["client_id"] and client["public_key"] is not None:
            return encode_response(RECONNECTED, self._issue_key(client, client["rsa"]))
        return encode_response(RECONNECT_DENIED, hdr["client_id"])

    def _send_file(self, hdr, payload, state):
        client = self._client_by_id(hdr["client_id"])
        if client is None or client["aes_key"] is None:
            state["upload"] = None
            return encode_response(ERROR, b"")
        if state["upload"] is None or state["upload"][0] is not client:
            state["upload"] = (client, Reassembler(client["aes_key"]))
        try:
            done = state["upload"][1].feed(payload)
        except UploadError:
            state["upload"] = None
            return encode_response(ERROR, b"")
        if done is None:
            return None
        state["upload"] = None
        plain = done["plaintext"]
        fname = done["file_name"].decode("utf-8", "replace")
        base = os.path.basename(fname.replace("\\", "/"))
        if base in ("", ".", ".."):
            base = "unnamed"
        folder = os.path.join(self.storage_dir, client["id"].hex())
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, base), "wb") as f:
            f.write(plain)
        self.stored[fname] = plain
        crc = cksum(plain)
        client["files"][done["file_name"]] = {"verified": False, "cksum": crc,
                                              "size": len(plain)}
        if self.wrong_crc > 0:
            self.wrong_crc -= 1
            crc ^= 0x5A5A5A5A
        return encode_response(FILE_CRC, client["id"] + struct.pack("<I", done["content_size"])
                               + payload[12:12 + NAME_SIZE] + struct.pack("<I", crc))

    def _crc(self, hdr, payload, state):
        code = hdr["code"]
        client = self._client_by_id(hdr["client_id"])
        if client is None:
            return encode_response(ERROR, b"")
        try:
            fname = field_bytes(payload[:NAME_SIZE])
        except PeerError:
            return encode_response(ERROR, b"")
        if code == CRC_RETRY:
            return encode_response(ACK, client["id"]) if self.ack_901 else None
        entry = client["files"].get(fname)
        if entry is None:
            return encode_response(ERROR, b"")
        if code == CRC_OK:
            entry["verified"] = True
        if self.ack_cut is not None:
            state["close"] = True
            return struct.pack("<BHI", VERSION, ACK, 255) + client["id"][:self.ack_cut]
        if self.ack_payload is not None:
            return encode_response(ACK, self.ack_payload)
        return encode_response(ACK, client["id"])


# ---------------------------------------------------------------------------------------
# CLI

def _serve_cli(args):
    faults = {"wrong_crc": args.wrong_crc, "deny_reconnect": args.deny_reconnect,
              "ack_901": args.ack_901, "name_taken": args.name_taken,
              "drop_on": args.drop_on, "stall_on": args.stall_on}
    if args.error_reply:
        faults["error_replies"] = {}
        for spec in args.error_reply:
            code, _, count = spec.partition(":")
            faults["error_replies"][int(code)] = int(count or 1)
    server = PeerServer(args.storage, host=args.bind, port=args.port, **faults)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    port = server.start()
    print("listening on %s:%d" % (args.bind, port), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _upload_cli(args):
    host, _, port = args.address.rpartition(":")
    with open(args.file, "rb") as f:
        data = f.read()
    with PeerClient(host or "127.0.0.1", int(port), timeout=args.timeout) as c:
        c.connect()
        res = c.full_session(args.name, os.path.basename(args.file), data,
                             variant=args.variant, packet_size=args.packet_size)
    print("%s: last reply %s after %d attempt(s), cksum %s"
          % (res["step"], res["code"], res["attempts"], res["cksum"]))
    return 0 if res["code"] == ACK and res["step"] == "crc_ok" else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sdpeer.py",
                                 description="independent peer of the sealdrop protocol")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="run the reference server on 127.0.0.1")
    sv.add_argument("--port", type=int, default=0)
    sv.add_argument("--bind", default="127.0.0.1", metavar="ADDR")
    sv.add_argument("--storage", default="peer-files")
    sv.add_argument("--wrong-crc", type=int, default=0, metavar="N")
    sv.add_argument("--deny-reconnect", action="store_true")
    sv.add_argument("--ack-901", action="store_true")
    sv.add_argument("--name-taken", action="store_true")
    sv.add_argument("--drop-on", type=int, metavar="CODE")
    sv.add_argument("--stall-on", type=int, metavar="CODE")
    sv.add_argument("--error-reply", action="append", metavar="CODE[:COUNT]")
    up = sub.add_parser("upload", help="register, send a key and upload one file")
    up.add_argument("address", metavar="HOST:PORT")
    up.add_argument("name")
    up.add_argument("file")
    up.add_argument("--variant", choices=VARIANTS, default="split")
    up.add_argument("--packet-size", type=int, default=8192)
    up.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        return _serve_cli(args) if args.cmd == "serve" else _upload_cli(args)
    except (PeerError, OSError, ValueError) as e:
        print("sdpeer: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

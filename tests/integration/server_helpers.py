"""server_helpers: what the test_server_*.py tests share: a server in a fresh folder, database
queries with python's sqlite3, rows checked against their files and `sealdrop-db check`, a
streaming 828 sender (the file never sits in memory), memory figures of the server process,
and "a normal client is still served" checks."""

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import struct
import socket
import subprocess

import harness  # noqa: F401  (sets sys.path for sdpeer)
import sdpeer
import sdpeer4
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


@contextlib.contextmanager
def server(args=(), prefix="sealdrop-srv-"):
    """A started sealdrop-server in a fresh folder; yields (server, folder). Stopped (SIGTERM,
    then SIGKILL) and the folder removed afterwards."""
    with harness.tmpdir(prefix) as d:
        s = harness.Server(d, args=list(args))
        s.start()
        try:
            yield s, d
        finally:
            s.stop()


def db_path(folder):
    return os.path.join(folder, "defensive.db")


def db_target(folder):
    """What `sealdrop-db --db` takes for the server database of folder: its SQLite file, or
    with SEALDROP_TEST_DB=pg its PostgreSQL database (harness.pg_db_for)."""
    if harness.TEST_DB == "pg":
        return harness.pg_db_for(os.path.realpath(folder))
    return db_path(folder)


def db_tool_args(folder):
    """The options of `sealdrop-db` for the server of folder, with either backend: the
    database, and the storage folder (beside a SQLite file by default, but not beside a
    PostgreSQL database)."""
    return ["--db", db_target(folder), "--storage", os.path.join(folder, "files")]


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, (bytes, bytearray)):
        return "'\\x%s'::bytea" % bytes(v).hex()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'%s'" % str(v).replace("'", "''")


def _pg_value(v):
    """A JSON value from PostgreSQL as python's sqlite3 would give it: bytea as bytes,
    booleans as 0/1, timestamps as 'YYYY-MM-DD HH:MM:SS'."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        if v.startswith("\\x"):
            try:
                return bytes.fromhex(v[2:])
            except ValueError:
                return v
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", v):
            return v.replace("T", " ")
    return v


# SQLite's datetime('now'[, 'N minutes']) in the tests' SQL, as PostgreSQL's UTC timestamp.
_DATETIME_RE = re.compile(r"datetime\('now'(?:\s*,\s*'([^']*)')?\)")


def _pg_datetime(m):
    now = "date_trunc('second', now() AT TIME ZONE 'UTC')"
    return "(%s + interval '%s')" % (now, m.group(1)) if m.group(1) else "(%s)" % now


def _pg_sql(sql, params):
    sql = _DATETIME_RE.sub(_pg_datetime, sql)
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError("parameters do not match: %s" % sql)
    out = parts[0]
    for p, rest in zip(params, parts[1:]):
        out += _pg_literal(p) + rest
    return out


# SQLite statements the tests use that PostgreSQL spells otherwise: the same question asked
# of PostgreSQL (it checks its own pages; what can go wrong there is our rows' rules).
PG_EQUIVALENT = {
    "PRAGMA integrity_check":
        "SELECT CASE WHEN (SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM "
        "clients c WHERE c.ID = f.ID)) + (SELECT count(*) FROM uploads WHERE \"Offset\" > Size)"
        " = 0 THEN 'ok' ELSE 'rows that break the rules' END AS integrity_check",
}


def query(folder, sql, params=()):
    """Rows of sql on the server's database (read while the server runs: WAL allows it).
    With SEALDROP_TEST_DB=pg, the server's PostgreSQL database through psql (same SQL where
    it is standard)."""
    if harness.TEST_DB == "pg":
        text = harness.pg_psql(harness.pg_db_for(os.path.realpath(folder)),
                               "SELECT json_agg(row_to_json(q)) FROM (%s) q" %
                               _pg_sql(PG_EQUIVALENT.get(sql, sql), params))
        rows = json.loads(text) if text.strip() else None
        return [tuple(_pg_value(v) for v in r.values()) for r in rows or []]
    con = sqlite3.connect("file:%s?mode=ro" % db_path(folder), uri=True, timeout=10)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def execute(folder, sql, params=()):
    """A write to the server's database (tests use it to age LastSeen)."""
    if harness.TEST_DB == "pg":
        harness.pg_psql(harness.pg_db_for(os.path.realpath(folder)), _pg_sql(sql, params))
        return
    con = sqlite3.connect(db_path(folder), timeout=10)
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def client_row(folder, client_id):
    rows = query(folder, "SELECT ID, Name, PublicKey, LastSeen, AESKey FROM clients WHERE ID = ?",
                 (bytes(client_id),))
    return rows[0] if rows else None


def file_row(folder, client_id, file_name):
    rows = query(folder, "SELECT ID, FileName, PathName, Verified FROM files "
                 "WHERE ID = ? AND FileName = ?", (bytes(client_id), file_name))
    return rows[0] if rows else None


def stored_rows(folder, client_id):
    """The files rows of client_id: file name -> (PathName, Size, CRC, Verified, SHA256 as
    bytes or None)."""
    return {r[0]: (r[1], r[2], r[3], r[4], None if r[5] is None else bytes(r[5]))
            for r in query(folder, "SELECT FileName, PathName, Size, CRC, Verified, SHA256 "
                           "FROM files WHERE ID = ?", (bytes(client_id),))}


def assert_rows_describe_files(test, folder, client_id, where):
    """Every row of client_id with Verified = 1 describes exactly the bytes at its PathName:
    size, cksum, and SHA-256 when the row has one. Returns stored_rows()."""
    rows = stored_rows(folder, client_id)
    for fname, (path, size, crc, verified, digest) in rows.items():
        if not verified:
            continue
        full = os.path.join(folder, "files", path)
        test.assertTrue(os.path.isfile(full), "%s: %s verified, file missing" % (where, fname))
        with open(full, "rb") as f:
            data = f.read()
        got = (len(data), sdpeer4.cksum_fast(data))
        if digest is not None:
            got += (hashlib.sha256(data).digest(),)
        test.assertEqual(got, (size, crc) + (() if digest is None else (digest,)),
                         "%s: the verified row of %s does not describe its file"
                         % (where, fname))
    return rows


def assert_db_check(test, folder, where):
    """`sealdrop-db check` on the server database and storage of folder exits 0."""
    r = subprocess.run([harness.DB_BIN] + db_tool_args(folder) + ["check"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, text=True)
    test.assertEqual(r.returncode, 0, "%s: sealdrop-db check:\n%s" % (where, r.stdout))


def registered(port, name, timeout=20.0):
    """A PeerClient connected to port that registered name and sent a fresh RSA key; its
    client_id, rsa_key and aes_key are set. Raises AssertionError if the server refuses."""
    # The key is made before connecting (see assert_serves: a short --idle-timeout).
    key = sdpeer.RSAKey.generate()
    pc = sdpeer.PeerClient("127.0.0.1", port, timeout=timeout)
    pc.connect()
    code, cid = pc.register(name)
    if code != sdpeer.REGISTERED:
        pc.close()
        raise AssertionError("register %r: %d" % (name, code))
    code, aes = pc.send_public_key(name, key)
    if code != sdpeer.AES_KEY:
        pc.close()
        raise AssertionError("public key %r: %d" % (name, code))
    return pc


def stream_upload(pc, file_name, path, packet_size=1 << 20, name_bytes=None):
    """Sends the file at path as one CBC stream in packets of packet_size ciphertext bytes
    (numbered from 1), encrypting as it reads: memory stays small whatever the size. Returns
    the reply like PeerClient.upload."""
    size = os.path.getsize(path)
    ct_size = (size // 16 + 1) * 16
    total = max(1, -(-ct_size // packet_size))
    if total > 0xFFFF:
        raise ValueError("packet_size too small for this file")
    name = sdpeer.name_field(file_name) if name_bytes is None else name_bytes
    enc = Cipher(algorithms.AES(pc.aes_key), modes.CBC(b"\0" * 16)).encryptor()
    pad = sympad.PKCS7(128).padder()
    pending = bytearray()
    number = 1

    def send(content):
        nonlocal number
        head = struct.pack("<IIHH", ct_size, size, number, total) + name
        pc.send_raw(struct.pack("<16sBHI", bytes(pc.client_id), 3, sdpeer.SEND_FILE,
                                len(head) + len(content)) + head)
        pc.send_raw(content)
        number += 1

    with open(path, "rb") as f:
        while True:
            chunk = f.read(packet_size)
            if not chunk:
                break
            pending += enc.update(pad.update(chunk))
            while len(pending) >= packet_size:
                send(bytes(pending[:packet_size]))
                del pending[:packet_size]
    pending += enc.update(pad.finalize()) + enc.finalize()
    while pending:
        send(bytes(pending[:packet_size]))
        del pending[:packet_size]
    code, payload = pc.recv()
    if code == sdpeer.FILE_CRC:
        fields = sdpeer.decode_file_crc(payload)
        fields["code"] = code
        return fields
    return {"code": code}


def proc_status(pid, field):
    """A kB figure (VmRSS, VmHWM, ...) from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


STARTUP_LOCK = ".sealdrop-startup.lock"  # server/storage.h: in the storage folder, no upload


def files_under(folder):
    """Every regular file below folder (relative paths), but the servers' start-up lock."""
    out = []
    for root, _dirs, names in os.walk(folder):
        for n in names:
            if n != STARTUP_LOCK:
                out.append(os.path.relpath(os.path.join(root, n), folder))
    return sorted(out)


def assert_serves(test, port, name=None, size=1000):
    """A complete normal session (register, key, upload, 900) on a new connection works."""
    data = harness.gen_bytes(size, seed=size + 7)
    name = name or "probe-%s" % os.urandom(4).hex()
    # The key is made before connecting: made between 825 and 826 on a loaded machine it can
    # take longer than a short --idle-timeout of the server under test.
    key = sdpeer.RSAKey.generate()
    with sdpeer.PeerClient("127.0.0.1", port, timeout=20) as pc:
        r = pc.full_session(name, "probe.bin", data, rsa_key=key)
    test.assertEqual(r["step"], "crc_ok", r)
    test.assertEqual(r["code"], sdpeer.ACK)
    test.assertEqual(r["cksum"], sdpeer.cksum(data))


def raw_connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_all_until_close(sock, limit=1 << 20):
    """Bytes until the peer closes (bounded by the socket timeout and limit)."""
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("the server did not close the connection")
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)

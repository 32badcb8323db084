#!/usr/bin/env python3
"""bench.py: sealdrop's benchmarks (`make bench`). Each figure is reported next to a limit
measured in the same run on the same machine: our CRC against GNU cksum, one upload against
AES-256-CBC on one core and against scp, server memory against file size, many connections
and concurrent uploads, registrations per second. Nothing here passes or fails on speed; it
prints a table and writes bench/results.txt.

Environment: SEALDROP_BIN (programs), SEALDROP_TOOLS (sdbench), BENCH_MB (size of the large
file, default 1024), BENCH_CONNS (idle connections, default 2000), BENCH_UPLOADS (concurrent
uploads, default 200), BENCH_SCP=0 to skip the scp comparison.
"""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "peer"))
import sdpeer  # noqa: E402  the independent Python implementation of the protocol

BIN = os.environ.get("SEALDROP_BIN", os.path.join(TOP, "bin"))
TOOLS = os.environ.get("SEALDROP_TOOLS", os.path.join(TOP, "build", "tests", "tools"))
MB = int(os.environ.get("BENCH_MB", "1024"))
CONNS = int(os.environ.get("BENCH_CONNS", "2000"))
UPLOADS = int(os.environ.get("BENCH_UPLOADS", "200"))
results = []


def report(name, value, limit=None, note=""):
    line = f"{name:<44} {value:>14}"
    if limit is not None:
        line += f"   limit {limit:>14}"
    if note:
        line += f"   {note}"
    print(line, flush=True)
    results.append(line)


def timed(cmd, **kw):
    t = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Server:
    """The real server on a free loopback port, in its own folder."""

    def __init__(self, workdir, *args):
        self.workdir = workdir
        self.log = open(os.path.join(workdir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "sealdrop-server"), "--bind", "127.0.0.1", "--port", "0", *args],
            cwd=workdir, stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            self.log.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log.read())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def make_big_file(path, mb):
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        for _ in range(mb):
            dst.write(src.read(1 << 20))


def bench_crc_and_aes(big):
    sdbench = os.path.join(TOOLS, "sdbench")
    size_mb = os.path.getsize(big) / 1e6
    subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    gnu = min(timed(["cksum", big], stdout=subprocess.DEVNULL) for _ in range(2))
    out = subprocess.run([sdbench, "cksum", big], capture_output=True, text=True, check=True).stdout
    ours = float(re.search(r"([\d.]+)\s*MB/s", out).group(1))
    report("cksum CRC (ours vs GNU cksum)", f"{ours:.0f} MB/s", f"{size_mb / gnu:.0f} MB/s",
           f"ratio {ours / (size_mb / gnu):.2f}")
    out = subprocess.run([sdbench, "aes", big], capture_output=True, text=True, check=True).stdout
    aes = float(re.search(r"([\d.]+)\s*MB/s", out).group(1))
    report("AES-256-CBC encrypt, one core", f"{aes:.0f} MB/s")
    return aes


def bench_disk(big, tmp):
    """Context for the upload figure: copying the file with one fsync at the end (a virtual
    disk with its own cache makes this noisy; the server starts writeback as it goes)."""
    copy = os.path.join(tmp, "disk-copy.bin")
    os.sync()
    t = time.monotonic()
    with open(big, "rb") as src, open(copy, "wb") as dst:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    mbs = os.path.getsize(big) / 1e6 / (time.monotonic() - t)
    os.unlink(copy)
    os.sync()
    report("disk: copy of the file with fsync", f"{mbs:.0f} MB/s")
    return mbs


def bench_upload(big, aes_mbs, disk_mbs, tmp):
    srvdir = os.path.join(tmp, "srv")
    cli = os.path.join(tmp, "cli")
    os.makedirs(srvdir)
    os.makedirs(cli)
    srv = Server(srvdir)
    try:
        with open(os.path.join(cli, "transfer.info"), "w") as f:
            f.write(f"127.0.0.1:{srv.port}\nBench User\n{big}\n")
        rss0 = vm_kib(srv.proc.pid, "VmRSS")
        t = time.monotonic()
        res = subprocess.run(["/usr/bin/time", "-f", "%M", os.path.join(BIN, "sealdrop-client"),
                              "--quiet"], cwd=cli, capture_output=True, text=True)
        elapsed = time.monotonic() - t
        if res.returncode != 0:
            raise RuntimeError("client failed: " + res.stderr)
        client_kib = int(res.stderr.strip().splitlines()[-1])
        hwm = vm_kib(srv.proc.pid, "VmHWM")
        mbs = os.path.getsize(big) / 1e6 / elapsed
        report(f"one {MB} MiB upload on loopback", f"{mbs:.0f} MB/s", f"{aes_mbs:.0f} MB/s",
               f"ratio to AES {mbs / aes_mbs:.2f}; includes register and the final fsync "
               f"(disk copy with fsync: {disk_mbs:.0f} MB/s)")
        report("server peak RSS during the upload", f"{hwm // 1024} MiB",
               note=f"file {MB} MiB, RSS before {rss0 // 1024} MiB")
        report("client peak RSS during the upload", f"{client_kib // 1024} MiB", note=f"file {MB} MiB")
        return mbs
    finally:
        srv.stop()


def bench_scp(big, ours_mbs, tmp):
    """scp of the same file to a throw-away sshd on loopback, for comparison."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if os.environ.get("BENCH_SCP", "1") == "0" or not os.path.exists(sshd):
        report("scp on loopback", "skipped", note="no sshd (apt-get install openssh-server)")
        return
    d = os.path.join(tmp, "ssh")
    os.makedirs(d)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/host"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/user"], check=True)
    shutil.copy(f"{d}/user.pub", f"{d}/authorized_keys")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with open(f"{d}/sshd_config", "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/pid\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\nUsePAM no\n"
                "StrictModes no\nSubsystem sftp /usr/lib/openssh/sftp-server\n")
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([sshd, "-D", "-f", f"{d}/sshd_config"])
    try:
        time.sleep(0.5)
        t = time.monotonic()
        subprocess.run(["scp", "-q", "-P", str(port), "-i", f"{d}/user", "-o", "StrictHostKeyChecking=no",
                        "-o", f"UserKnownHostsFile={d}/known", big, f"127.0.0.1:{d}/copy"], check=True)
        mbs = os.path.getsize(big) / 1e6 / (time.monotonic() - t)
        report("scp of the same file on loopback", f"{mbs:.0f} MB/s", note=f"sealdrop/scp {ours_mbs / mbs:.2f}")
    finally:
        proc.terminate()
        proc.wait(10)


def bench_connections(tmp):
    srvdir = os.path.join(tmp, "conns")
    os.makedirs(srvdir)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(CONNS, hard - 100)
    srv = Server(srvdir, "--max-connections", str(n + 1000))
    socks = []
    try:
        rss0 = vm_kib(srv.proc.pid, "VmRSS")
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            socks.append(s)
        time.sleep(0.5)
        # One full session while all of them are open: the server still serves.
        c = sdpeer.PeerClient("127.0.0.1", srv.port, timeout=30)
        r = c.full_session("Busy Day", "x.bin", b"x" * 1000, rsa_key=sdpeer.RSAKey.generate())
        c.close()
        rss1 = vm_kib(srv.proc.pid, "VmRSS")
        per = (rss1 - rss0) * 1024 / n
        report(f"{n} idle connections: server RSS per connection", f"{per / 1024:.1f} KiB",
               note=f"and a session among them ended {r['code']}")
    finally:
        for s in socks:
            s.close()
        srv.stop()

    srvdir = os.path.join(tmp, "uploads")
    os.makedirs(srvdir)
    srv = Server(srvdir)
    try:
        data = os.urandom(1 << 20)
        crc = sdpeer.cksum(data)
        key = sdpeer.RSAKey.generate()  # the Python peer's key generation is slow: share one
        ok = []
        lock = threading.Lock()

        def one(i):
            try:
                c = sdpeer.PeerClient("127.0.0.1", srv.port, timeout=120)
                r = c.full_session(f"user {i}", f"f{i}.bin", data, packet_size=65536,
                                   rsa_key=key)
                c.close()
                with lock:
                    ok.append(r["cksum"] == crc and r["code"] == 1604)
            except Exception:  # counted as a failure below
                with lock:
                    ok.append(False)

        t = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(UPLOADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        el = time.monotonic() - t
        report(f"{UPLOADS} concurrent 1 MiB uploads", f"{sum(ok)}/{UPLOADS} CRC ok",
               note=f"{el:.1f} s, {UPLOADS / el:.0f} sessions/s (Python clients)")
    finally:
        srv.stop()


def _register_many(args):
    """One client process: registrations (825 + 826, each on its own connection) for a while."""
    port, prefix, spki_der, seconds = args
    key = sdpeer.RSAKey.from_der(spki_der)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        c = sdpeer.PeerClient("127.0.0.1", port, timeout=30)
        code, _ = c.register(f"{prefix} {n}")
        code2, _ = c.send_public_key(f"{prefix} {n}", key)
        c.close()
        if code != 1600 or code2 != 1602:
            raise RuntimeError(f"registration answered {code} {code2}")
        n += 1
    return n


def bench_registrations(tmp):
    import multiprocessing
    out = subprocess.run([os.path.join(TOOLS, "sdbench"), "keys"], capture_output=True, text=True,
                         check=True).stdout
    rsa = float(re.search(r"([\d.]+) /s", out).group(1))
    srvdir = os.path.join(tmp, "regs")
    os.makedirs(srvdir)
    srv = Server(srvdir)
    key = sdpeer.RSAKey.generate()
    procs = 4
    try:
        t = time.monotonic()
        cpu0 = cpu_seconds(srv.proc.pid)
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            counts = pool.map(_register_many, [(srv.port, f"reg{i}", key.pkcs8_der(), 3.0)
                                               for i in range(procs)])
        el = time.monotonic() - t
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        rate = sum(counts) / el
        report(f"registrations (825 + 826), {procs} client processes", f"{rate:.0f} /s",
               note="the Python clients and the server share the 2 cores")
        report("  server CPU per registration -> one core's capacity",
               f"{sum(counts) / cpu:.0f} /s", f"{rsa:.0f} /s",
               "limit: RSA work alone (SPKI parse, OAEP wrap; sdbench keys)")
    finally:
        srv.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="sealdrop-bench.")
    try:
        big = os.path.join(tmp, "big.bin")
        print(f"making a {MB} MiB file in {tmp} ...", flush=True)
        make_big_file(big, MB)
        aes = bench_crc_and_aes(big)
        disk = bench_disk(big, tmp)
        ours = bench_upload(big, aes, disk, tmp)
        bench_scp(big, ours, tmp)
        bench_connections(tmp)
        bench_registrations(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(TOP, "bench", "results.txt"), "w") as f:
        f.write("\n".join(results) + "\n")
    print("\nwritten to bench/results.txt")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench.py: sealdrop's benchmarks (`make bench`, issue 12). Every figure is printed next to a
limit measured in the same run on the same machine by our own tools (tests/tools/sdbench,
tests/tools/sdload), as a ratio, with the issue's target beside it. Nothing here passes or
fails on speed; it prints a table and writes bench/results.txt.

Sections: the unavoidable cost per GiB (AES-256-CBC and AES-256-GCM both ways, SHA-256, cksum,
memcpy, writing into a folder); a large version-3 upload (client --protocol 3) to tmpfs and to
disk (each side's CPU seconds per GiB against its unavoidable cost, wall-clock throughput, scp
of the same file); the same file over version 4 (client --protocol 4 --compress no: the file is
random) to tmpfs and to disk, then downloaded (`get NAME -o PATH`), each side's CPU per GiB
against GCM + SHA-256 + cksum + 2 memcpy; the bytes the server receives again after a dropped
connection (a relay cuts the upload at a known byte count, the client resumes by itself);
TLS 1.3 handshakes (both certificates, + WHOAMI) per server CPU-second and server memory per
idle TLS connection (the Python peer's ssl client: only the server's CPU and memory are read);
registrations (with what bounds them: a session without database or RSA work, a bare TCP
connection, the database writes alone) and 1,000 concurrent 1 MiB uploads from the C load
generator; memory per idle version-3 connection.

CPU time is user + system: /proc/<pid>/stat for the server, wait4's rusage for the client,
CLOCK_PROCESS_CPUTIME_ID inside the tools. CPU figures stay meaningful when other programs
share the machine; wall-clock figures do not, so the load average is printed with the table.

Environment: SEALDROP_BIN (programs), SEALDROP_TOOLS (sdbench, sdload), BENCH_MB (the large
file, default 1024), BENCH_REPEAT (runs of each large upload, the best reported, default 2),
BENCH_LIMIT_MB (bytes per in-memory limit, default BENCH_MB),
BENCH_UPLOADS (concurrent 1 MiB uploads, default 1000), BENCH_HANDSHAKES (TLS handshakes,
default 2000), BENCH_TLS_CONNS (idle TLS connections, default 1000), BENCH_RESEND_MB (the file
cut by the relay, default 256), BENCH_BIG=1 (also a version-4 upload of BENCH_BIG_MB, default
4 GiB + 1 MiB, to disk: the server's peak RSS), BENCH_REGS (registrations, default
5000), BENCH_REG_RUNS (runs of the registrations and of what bounds them, the medians
reported, default 3), BENCH_CONNS (idle connections, default 2000), BENCH_SCP=0 (skip scp),
BENCH_TMPFS (a tmpfs folder, default /dev/shm), BENCH_DISK (a folder on disk, default TMPDIR
or /var/tmp).
Every server started here gets --max-registrations-per-minute 0 when its --help lists it.
"""
import os
import platform
import re
import resource
import select
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
import sdpeer4  # noqa: E402  its version 4 (TLS 1.3, Ed25519 certificates)

BIN = os.environ.get("SEALDROP_BIN", os.path.join(TOP, "bin"))
TOOLS = os.environ.get("SEALDROP_TOOLS", os.path.join(TOP, "build", "tests", "tools"))
SDBENCH = os.path.join(TOOLS, "sdbench")
SDLOAD = os.path.join(TOOLS, "sdload")
MB = int(os.environ.get("BENCH_MB", "1024"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "2")))
LIMIT_MB = int(os.environ.get("BENCH_LIMIT_MB", str(MB)))
UPLOADS = int(os.environ.get("BENCH_UPLOADS", "1000"))
REGS = int(os.environ.get("BENCH_REGS", "5000"))
REG_RUNS = max(1, int(os.environ.get("BENCH_REG_RUNS", "3")))
CONNS = int(os.environ.get("BENCH_CONNS", "2000"))
HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "2000"))
TLS_CONNS = int(os.environ.get("BENCH_TLS_CONNS", "1000"))
RESEND_MB = int(os.environ.get("BENCH_RESEND_MB", "256"))
BIG_MB = int(os.environ.get("BENCH_BIG_MB", str(4 * 1024 + 1)))
TMPFS = os.environ.get("BENCH_TMPFS", "/dev/shm")
DISK = os.environ.get("BENCH_DISK", os.environ.get("TMPDIR", "/var/tmp"))
GIB = float(1 << 30)
DASH = "\u2013"

lines = []


def out(text=""):
    print(text, flush=True)
    lines.append(text)


def row(figure, value, limit=None, ratio=None, target=None, note=""):
    """One line of the table: the figure, what was measured, the limit from this run, their
    ratio, the issue's target, a note. None prints as a dash."""
    cell = lambda v: DASH if v is None else v  # noqa: E731
    out(f"{figure:<50} {cell(value):>15} {cell(limit):>15} {cell(ratio):>6} "
        f"{target or '':>9}  {note}".rstrip())


def section(title):
    out()
    out(f"## {title}")
    out(f"{'figure':<50} {'measured':>15} {'limit':>15} {'ratio':>6} {'target':>9}  note")


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else None


# ---- processes ----

def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run_measured(cmd, cwd=None):
    """Runs cmd; returns (exit status, wall seconds, CPU seconds, peak RSS KiB, stdout, stderr)
    from wait4's rusage of that child alone."""
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        t = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=so, stderr=se, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        return (proc.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
                so.read().decode(errors="replace"), se.read().decode(errors="replace"))


def tool(*args):
    """Runs sdbench; returns {name: (bytes, cpu, wall, extra dict)} of its figure lines."""
    res = subprocess.run([SDBENCH, *args], capture_output=True, text=True, check=True).stdout
    figures = {}
    for line in res.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[1].startswith("bytes="):
            continue
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        figures[parts[0]] = (int(kv["bytes"]), float(kv["cpu"]), float(kv["wall"]), kv)
    return figures


_EXTRA = None


def server_extra_args():
    """Options every benchmark server gets: no registration rate limit (sdload registers
    thousands a minute), when this server has that option (issue 9's limits)."""
    global _EXTRA
    if _EXTRA is None:
        res = subprocess.run([os.path.join(BIN, "sealdrop-server"), "--help"],
                             capture_output=True, text=True)
        _EXTRA = (["--max-registrations-per-minute", "0"]
                  if "--max-registrations-per-minute" in res.stdout + res.stderr else [])
    return _EXTRA


class Server:
    """The real server on a free loopback port, in its own folder (database and files)."""

    def __init__(self, workdir, *args):
        args = (*server_extra_args(), *args)
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.log = open(os.path.join(workdir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            # Every benchmark registers from 127.0.0.1, thousands a minute: the per-address
            # limit (default 120 a minute) would refuse them, and it is not what is measured.
            [os.path.join(BIN, "sealdrop-server"), "--bind", "127.0.0.1", "--port", "0",
             "--max-registrations-per-minute", "0", *args],
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

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def fs_type(path):
    """The file system type of the mount holding path (from /proc/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, parts[2]
    return kind


def make_big_file(path, mb):
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        for _ in range(mb):
            dst.write(src.read(1 << 20))


# ---- the machine ----

def machine_header():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    have = [x for x in ("aes", "vaes", "pclmulqdq", "vpclmulqdq", "sha_ni", "avx2") if x in flags]
    out(f"# sealdrop `make bench`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    out(f"machine: nproc {os.cpu_count()}, CPU {model} ({' '.join(have)}), "
        f"kernel {platform.release()}, load average at start {os.getloadavg()[0]:.2f}")
    out(f"storage: tmpfs {TMPFS} ({fs_type(TMPFS)}), disk {DISK} ({fs_type(DISK)}); "
        f"large file {MB} MiB")
    out("Figures are ratios to limits measured in the same run on this machine (sdbench, "
        "sdload); targets are issue 12's.")
    out("Costs are CPU seconds (user + system) per GiB; rates per CPU-second are what one core "
        "does; wall-clock figures share the cores with whatever else runs.")


# ---- unavoidable costs ----

def per_gib(fig):
    return fig[1] / (fig[0] / GIB)


def mbs_cpu(fig):
    return fig[0] / 1e6 / fig[1]


def bench_limits(big, dirs):
    """The unavoidable cost per GiB; returns a dict of seconds per GiB (and copy MB/s)."""
    section("Unavoidable cost per GiB (sdbench, one core, this run)")
    f = tool("limits", str(LIMIT_MB))
    L = {}
    for name, label in (("memcpy", "memcpy (1 MiB slices from 64 MiB)"),
                        ("cksum", "cksum, ours (in memory)"),
                        ("aes-cbc-encrypt", "AES-256-CBC encrypt (protocol/crypto.c)"),
                        ("aes-cbc-decrypt", "AES-256-CBC decrypt (protocol/crypto.c)"),
                        ("aes-gcm-encrypt", "AES-256-GCM encrypt (GnuTLS, 16 KiB records)"),
                        ("aes-gcm-decrypt", "AES-256-GCM decrypt (GnuTLS, 16 KiB records)"),
                        ("sha256-gcrypt", "SHA-256 (libgcrypt, crypto_sha256)"),
                        ("sha256-gnutls", "SHA-256 (GnuTLS)")):
        L[name] = per_gib(f[name])
        row(label, f"{L[name]:.3f} s/GiB", note=f"{mbs_cpu(f[name]):.0f} MB/s per CPU-second")
    L["sha256"] = min(L["sha256-gcrypt"], L["sha256-gnutls"])

    # Our cksum against GNU's over the same file (both read() it from the page cache).
    subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)
    ours = min(per_gib(tool("cksum", big)["cksum-file"]) for _ in range(2))
    L["cksum-file"] = ours
    gnu = min(run_measured(["cksum", big])[2] for _ in range(2)) / (os.path.getsize(big) / GIB)
    row("cksum of the file, ours / GNU cksum", f"{ours:.3f} s/GiB", f"{gnu:.3f} s/GiB",
        fmt_ratio(ours, gnu), "<= 1", "both read() the file from the page cache")

    # Writing the same bytes into a new file of each folder, best of two (the first writes into
    # memory this virtual machine may not have touched yet: see the touch row).
    for kind, d in dirs.items():
        for sync in ("", "-fsync"):
            figs = [tool("write", d, str(MB), *(["fsync"] if sync else []))[f"write{sync}"]
                    for _ in range(2)]
            cpu = min(per_gib(x) for x in figs)
            wall = max(x[0] / 1e6 / x[2] for x in figs)
            L[f"write{sync}-{kind}"] = cpu
            row(f"write {MB} MiB into a new file, {kind}{', fsync' if sync else ''}",
                f"{cpu:.3f} s/GiB", note=f"{wall:.0f} MB/s wall (best of 2)")
    figs = [tool("copy", big, dirs["disk"])["copy-fsync"] for _ in range(2)]
    L["copy-disk-mbs"] = max(x[0] / 1e6 / x[2] for x in figs)
    row(f"copy the {MB} MiB file on disk with fsync", f"{L['copy-disk-mbs']:.0f} MB/s",
        note="wall clock, best of 2: the disk's limit for an upload to disk")
    t = tool("touch", "256")["touch"]
    row("first write to newly mapped memory (page faults)", f"{per_gib(t):.3f} s/GiB",
        note="context: what memory new to a process costs in this VM (free page reporting "
        "is on here); reused memory costs about a memcpy")
    return L


# ---- version 3 upload ----

def bench_upload(big, kind, d, L, scratch):
    """One BENCH_MB upload with the server's folder in d; returns the figures."""
    cli = os.path.join(scratch, f"cli-{kind}")
    os.makedirs(cli)
    small = os.path.join(cli, "small.bin")
    with open(small, "wb") as f:
        f.write(os.urandom(1000))
    srv = Server(os.path.join(d, f"srv-{kind}"))
    try:
        client = [os.path.join(BIN, "sealdrop-client"), "--quiet", "--protocol", "3"]
        # Register first with a small file: the large upload then reconnects (827), so its
        # figures hold no RSA key generation.
        with open(os.path.join(cli, "transfer.info"), "w") as f:
            f.write(f"127.0.0.1:{srv.port}\nBench User\n{small}\n")
        if run_measured(client, cwd=cli)[0] != 0:
            raise RuntimeError("the registering upload failed")
        with open(os.path.join(cli, "transfer.info"), "w") as f:
            f.write(f"127.0.0.1:{srv.port}\nBench User\n{big}\n")
        cpu0 = srv.cpu()
        rc, wall, ccpu, cmaxrss, _, err = run_measured(client, cwd=cli)
        scpu = srv.cpu() - cpu0
        if rc != 0:
            raise RuntimeError(f"client failed ({rc}): {err}")
        gib = os.path.getsize(big) / GIB
        return {"mbs": os.path.getsize(big) / 1e6 / wall, "wall": wall,
                "client": ccpu / gib, "server": scpu / gib, "client_kib": cmaxrss,
                "server_kib": vm_kib(srv.pid, "VmHWM")}
    finally:
        srv.stop()
        shutil.rmtree(os.path.join(d, f"srv-{kind}"), ignore_errors=True)
        shutil.rmtree(cli, ignore_errors=True)


def bench_v3_uploads(big, dirs, L, scratch):
    section(f"Version 3: one {MB} MiB upload on loopback (sealdrop-client -> sealdrop-server)")
    aes_mbs = GIB / 1e6 / L["aes-cbc-encrypt"]  # MB per CPU-second of one core
    up = {}
    for kind, d in dirs.items():
        runs = [bench_upload(big, kind, d, L, scratch) for _ in range(REPEAT)]
        # Best of REPEAT for each figure: other programs on the machine only ever slow it.
        up[kind] = {key: (max if key == "mbs" else min)(r[key] for r in runs)
                    for key in runs[0]}
    t, k = up["tmpfs"], up["disk"]
    client_lim = L["aes-cbc-encrypt"] + L["cksum-file"]
    row("client CPU per GiB, v3 upload (tmpfs run)", f"{t['client']:.3f} s/GiB",
        f"{client_lim:.3f} s/GiB", fmt_ratio(t["client"], client_lim), "<= 1.15",
        f"limit: AES-CBC encrypt + cksum of the file (read included); best of {REPEAT}")
    row("client CPU per GiB, v3 upload (disk run)", f"{k['client']:.3f} s/GiB",
        f"{client_lim:.3f} s/GiB", fmt_ratio(k["client"], client_lim), "<= 1.15")
    for kind, u in up.items():
        lim = L["aes-cbc-decrypt"] + L["cksum"] + L[f"write-fsync-{kind}"]
        row(f"server CPU per GiB, v3 upload to {kind}", f"{u['server']:.3f} s/GiB",
            f"{lim:.3f} s/GiB", fmt_ratio(u["server"], lim), "<= 1.3",
            f"limit: AES-CBC decrypt + cksum + write with fsync into {kind}")
    row("v3 upload to tmpfs / AES-CBC encrypt on one core", f"{t['mbs']:.0f} MB/s",
        f"{aes_mbs:.0f} MB/s", fmt_ratio(t["mbs"], aes_mbs), ">= 0.7",
        f"{MB} MiB in {t['wall']:.2f} s wall, with reconnect, CRC and the final fsync; "
        "limit per CPU-second")
    row("v3 upload to disk / disk copy with fsync", f"{k['mbs']:.0f} MB/s",
        f"{L['copy-disk-mbs']:.0f} MB/s", fmt_ratio(k["mbs"], L["copy-disk-mbs"]), ">= 0.9",
        f"{MB} MiB in {k['wall']:.2f} s wall")
    row("server peak RSS during the upload (tmpfs / disk)",
        f"{t['server_kib'] // 1024} / {k['server_kib'] // 1024} MiB", note=f"file {MB} MiB")
    row("client peak RSS during the upload (tmpfs / disk)",
        f"{t['client_kib'] // 1024} / {k['client_kib'] // 1024} MiB", note=f"file {MB} MiB")
    return up


def bench_scp(big, ours_mbs, scratch):
    """scp of the same file to a throw-away sshd on loopback, into a folder on disk."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if os.environ.get("BENCH_SCP", "1") == "0" or not os.path.exists(sshd):
        why = ("BENCH_SCP=0" if os.path.exists(sshd)
               else "no sshd (`make bench` installs openssh-server)")
        row("sealdrop v3 / scp, same file", f"{ours_mbs:.0f} MB/s", None, None, ">= 3",
            f"scp skipped: {why}")
        return None
    d = os.path.join(scratch, "ssh")
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
        subprocess.run(["scp", "-q", "-P", str(port), "-i", f"{d}/user", "-o",
                        "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={d}/known", big,
                        f"127.0.0.1:{d}/copy"], check=True)
        mbs = os.path.getsize(big) / 1e6 / (time.monotonic() - t)
        row("sealdrop v3 / scp, same file (both to disk)", f"{ours_mbs:.0f} MB/s",
            f"{mbs:.0f} MB/s", fmt_ratio(ours_mbs, mbs), ">= 3", "limit column: scp")
        return mbs
    finally:
        proc.terminate()
        proc.wait(10)


# ---- version 4 ----

CLIENT = os.path.join(BIN, "sealdrop-client")


class V4Client:
    """A sealdrop-client folder registered (version 4) with a server: me.key, known_servers."""

    def __init__(self, folder, port, name="Bench User"):
        self.folder, self.port, self.name = folder, port, name
        os.makedirs(folder, exist_ok=True)
        small = os.path.join(folder, "small.bin")
        with open(small, "wb") as f:
            f.write(os.urandom(1000))
        self.transfer(small)
        rc, _, _, _, _, err = self.run()
        if rc != 0:
            raise RuntimeError(f"the registering version-4 upload failed ({rc}): {err}")

    def transfer(self, path):
        with open(os.path.join(self.folder, "transfer.info"), "w") as f:
            f.write(f"127.0.0.1:{self.port}\n{self.name}\n{path}\n")

    def run(self, *args):
        return run_measured([CLIENT, "--quiet", "--protocol", "4", "--compress", "no", *args],
                            cwd=self.folder)


def v4_transfers(big, kind, d, scratch, download):
    """One BENCH_MB version-4 upload with the server's folder in d (and, with download, one
    download of it into d): wall, each side's CPU per GiB, the server's peak RSS."""
    srv = Server(os.path.join(d, f"srv4-{kind}"))
    cli = os.path.join(scratch, f"cli4-{kind}")
    try:
        c = V4Client(cli, srv.port)
        c.transfer(big)
        gib = os.path.getsize(big) / GIB
        cpu0 = srv.cpu()
        rc, wall, ccpu, cmaxrss, _, err = c.run()
        scpu = srv.cpu() - cpu0
        if rc != 0:
            raise RuntimeError(f"version-4 upload failed ({rc}): {err}")
        r = {"mbs": os.path.getsize(big) / 1e6 / wall, "wall": wall, "client": ccpu / gib,
             "server": scpu / gib, "server_kib": vm_kib(srv.pid, "VmHWM"),
             "client_kib": cmaxrss}
        if download:
            dst = os.path.join(d, "got.bin")
            cpu0 = srv.cpu()
            rc, wall, ccpu, _, _, err = c.run("get", os.path.basename(big), "-o", dst)
            scpu = srv.cpu() - cpu0
            if rc != 0 or os.path.getsize(dst) != os.path.getsize(big):
                raise RuntimeError(f"version-4 download failed ({rc}): {err}")
            os.unlink(dst)
            r.update({"get_mbs": os.path.getsize(big) / 1e6 / wall, "get_wall": wall,
                      "get_client": ccpu / gib, "get_server": scpu / gib})
        return r
    finally:
        srv.stop()
        shutil.rmtree(os.path.join(d, f"srv4-{kind}"), ignore_errors=True)
        shutil.rmtree(cli, ignore_errors=True)


class Relay:
    """A TCP relay on 127.0.0.1 in front of a server. It counts the bytes it forwards from
    client to server per connection, and cuts the first connection (both sides) once `cut`
    bytes have been forwarded (cut=None: never), then calls on_cut() if given (which may set
    target_port for the next connections)."""

    def __init__(self, target_port, cut=None, on_cut=None):
        self.target_port, self.cut, self.on_cut = target_port, cut, on_cut
        self.up = []  # bytes forwarded client -> server, per connection, in accept order
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            i = len(self.up)
            self.up.append(0)
            t = threading.Thread(target=self._relay, args=(conn, i), daemon=True)
            t.start()
            self.threads.append(t)

    def _relay(self, client, i):
        limit = self.cut if i == 0 else None
        server = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        try:
            while not self.stopping.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for src in ready:
                    data = src.recv(1 << 18)
                    if not data:
                        return
                    if src is server:
                        client.sendall(data)
                        continue
                    if limit is not None and self.up[i] + len(data) >= limit:
                        server.sendall(data[:limit - self.up[i]])
                        self.up[i] = limit
                        if self.on_cut is not None:
                            self.on_cut(self)
                        return
                    server.sendall(data)
                    self.up[i] += len(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self):
        self.stopping.set()
        self.listener.close()
        for t in self.threads:
            t.join(5)


def v4_resent(scratch, d):
    """Bytes the server receives again after a drop: the same upload through the relay once
    whole, once cut at a known byte count, and once cut with the server killed (SIGKILL) and
    restarted on the same folder at the cut; the client resumes by itself (--retries).
    resent = (bytes over all connections of the cut upload) - bytes of the whole upload."""
    mb = min(MB, RESEND_MB)
    src = os.path.join(scratch, "resend.bin")
    make_big_file(src, mb)
    cut = 100 * (1 << 20) + 12345 if mb > 128 else (mb << 20) // 2 + 12345
    workdir = os.path.join(d, "srv4-resend")
    srv = [Server(workdir)]

    def kill_and_restart(relay):
        srv[0].proc.kill()
        srv[0].proc.wait()
        srv[0].log.close()
        srv[0] = Server(workdir)
        relay.target_port = srv[0].port

    try:
        figs = {}
        for label, at, hook in (("whole", None, None), ("cut", cut, None),
                                ("kill", cut, kill_and_restart)):
            # Registered directly; only the upload goes through the relay.
            c = V4Client(os.path.join(scratch, f"cli4-resend-{label}"), srv[0].port,
                         f"Bench {label}")
            relay = Relay(srv[0].port, at, hook)
            try:
                c.port = relay.port
                c.transfer(src)
                rc, wall, _, _, _, err = c.run("--retries", "5")
                if rc != 0:
                    raise RuntimeError(f"version-4 upload through the relay ({label}): {err}")
            finally:
                relay.stop()
            figs[label] = list(relay.up)
        whole = sum(figs["whole"])
        return {"mb": mb, "cut_at": cut, "whole": whole,
                **{label: {"after": sum(figs[label][1:]), "connections": len(figs[label]),
                           "resent": sum(figs[label]) - whole} for label in ("cut", "kill")}}
    finally:
        srv[0].stop()
        shutil.rmtree(workdir, ignore_errors=True)
        os.unlink(src)


def tls_context(scratch):
    """An ssl context of the Python peer: TLS 1.3, ALPN sealdrop/4, an Ed25519 client
    certificate (made once: every connection reuses it)."""
    ident = sdpeer4.Identity.generate("bench")
    return sdpeer4.Client4("127.0.0.1", 1, identity=ident)._context()


def tls_connect(ctx, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK waits
    try:
        return ctx.wrap_socket(raw, server_hostname=None)
    except BaseException:
        raw.close()
        raise


def whoami(port, sock):
    c = sdpeer4.Client4("127.0.0.1", port)
    c.sock = sock
    return c.whoami()


def v4_handshakes(scratch, d):
    """TLS 1.3 handshakes (both certificates) + one WHOAMI each, from THREADS client threads
    of the Python peer; the server's CPU per handshake from /proc."""
    ctx = tls_context(scratch)
    srv = Server(os.path.join(d, "srv4-hs"))
    done, failed = [0], []
    lock = threading.Lock()

    def worker(n):
        for _ in range(n):
            try:
                s = tls_connect(ctx, srv.port)
                try:
                    whoami(srv.port, s)
                finally:
                    s.close()
                with lock:
                    done[0] += 1
            except (OSError, sdpeer.PeerError) as e:
                with lock:
                    failed.append(repr(e))

    try:
        threads = 4
        cpu0, t = srv.cpu(), time.monotonic()
        ws = [threading.Thread(target=worker, args=(HANDSHAKES // threads,))
              for _ in range(threads)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        wall, cpu = time.monotonic() - t, srv.cpu() - cpu0
    finally:
        srv.stop()
        shutil.rmtree(os.path.join(d, "srv4-hs"), ignore_errors=True)
    return {"ok": done[0], "n": threads * (HANDSHAKES // threads), "cpu": cpu, "wall": wall,
            "failed": failed[:1]}


def v4_idle_tls(scratch, d):
    """Server RSS per idle TLS connection: N connections that finished the handshake (both
    certificates) and send nothing more; one WHOAMI on a further connection meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(TLS_CONNS, hard - 100)
    ctx = tls_context(scratch)
    srv = Server(os.path.join(d, "srv4-idle"), "--max-connections", str(n + 1000))
    socks = []
    try:
        # One connection first so that the libraries' one-time allocations are in rss0.
        s = tls_connect(ctx, srv.port)
        whoami(srv.port, s)
        s.close()
        time.sleep(0.3)
        rss0 = vm_kib(srv.pid, "VmRSS")
        for _ in range(n):
            socks.append(tls_connect(ctx, srv.port))
        time.sleep(0.5)
        s = tls_connect(ctx, srv.port)
        who = whoami(srv.port, s)
        s.close()
        rss1 = vm_kib(srv.pid, "VmRSS")
        return {"n": n, "per": (rss1 - rss0) / n, "rss0": rss0, "rss1": rss1,
                "who": "UNKNOWN" if who is None else "WELCOME"}
    finally:
        for s in socks:
            s.close()
        srv.stop()
        shutil.rmtree(os.path.join(d, "srv4-idle"), ignore_errors=True)


def v4_big_rss(scratch, d):
    """Server peak RSS during one version-4 upload of a BIG_MB file (BENCH_BIG=1: 4 GiB + 1
    MiB, over the 4 GiB of version 3) to disk; None when BENCH_BIG is not set."""
    if os.environ.get("BENCH_BIG", "0") != "1":
        return None
    src = os.path.join(scratch, "huge.bin")
    make_big_file(src, BIG_MB)
    try:
        r = v4_transfers(src, "big", d, scratch, False)
        return r
    finally:
        os.unlink(src)


def bench_v4(big, dirs, L, v3, scp_mbs, scratch):
    section(f"Version 4 (TLS 1.3): one {MB} MiB upload and download on loopback "
            "(sealdrop-client --protocol 4 --compress no)")
    v4_limit = L["aes-gcm-encrypt"] + L["sha256"] + L["cksum"] + 2 * L["memcpy"]
    v4_limit_srv = L["aes-gcm-decrypt"] + L["sha256"] + L["cksum"] + 2 * L["memcpy"]
    up = {}
    for kind, d in dirs.items():
        # The download too is best of REPEAT: its .part file takes pages new to this VM,
        # whose first touch (the page-fault row) made the client's CPU for the same download
        # vary 1.9-3.9 s/GiB between runs.
        runs = [v4_transfers(big, kind, d, scratch, kind == "tmpfs") for _ in range(REPEAT)]
        up[kind] = {key: (max if key.endswith("mbs") else min)(r[key] for r in runs if key in r)
                    for key in runs[0]}
    t, k = up["tmpfs"], up["disk"]
    row("v4 upload / v3 upload, same file (tmpfs)", f"{t['mbs']:.0f} MB/s",
        f"{v3['tmpfs']['mbs']:.0f} MB/s", fmt_ratio(t["mbs"], v3["tmpfs"]["mbs"]), ">= 1.0",
        f"v4 {t['wall']:.2f} s, v3 {v3['tmpfs']['wall']:.2f} s wall; best of {REPEAT} each; "
        "limit column: v3")
    row("v4 upload / v3 upload, same file (disk)", f"{k['mbs']:.0f} MB/s",
        f"{v3['disk']['mbs']:.0f} MB/s", fmt_ratio(k["mbs"], v3["disk"]["mbs"]), ">= 1.0",
        f"v4 {k['wall']:.2f} s, v3 {v3['disk']['wall']:.2f} s wall")
    row("sealdrop v4 / scp, same file (both to disk)", f"{k['mbs']:.0f} MB/s",
        None if scp_mbs is None else f"{scp_mbs:.0f} MB/s", fmt_ratio(k["mbs"], scp_mbs), "",
        "limit column: scp" if scp_mbs else "scp skipped (see above)")
    row("client CPU per GiB, v4 upload (tmpfs run)", f"{t['client']:.3f} s/GiB",
        f"{v4_limit:.3f} s/GiB", fmt_ratio(t["client"], v4_limit), "<= 1.5",
        "limit: GCM encrypt + SHA-256 + cksum + 2 memcpy")
    for kind, u in up.items():
        row(f"server CPU per GiB, v4 upload to {kind}", f"{u['server']:.3f} s/GiB",
            f"{v4_limit_srv:.3f} s/GiB", fmt_ratio(u["server"], v4_limit_srv), "<= 1.5",
            "limit: GCM decrypt + SHA-256 + cksum + 2 memcpy"
            + ("" if kind == "tmpfs" else f" (writing into {kind}: "
               f"{L['write-fsync-' + kind]:.3f} s/GiB more, not in the limit)"))
    row(f"v4 download of the {MB} MiB file (tmpfs to tmpfs)", f"{t['get_mbs']:.0f} MB/s",
        note=f"{t['get_wall']:.2f} s wall (sealdrop-client get NAME -o PATH), best of {REPEAT}")
    own = L["aes-gcm-encrypt"] + L["memcpy"]
    row("server CPU per GiB, v4 download", f"{t['get_server']:.3f} s/GiB",
        f"{v4_limit:.3f} s/GiB", fmt_ratio(t["get_server"], v4_limit), "<= 1.5",
        "limit: GCM encrypt + SHA-256 + cksum + 2 memcpy; the server sends the SHA-256 "
        f"stored at upload, so its own floor is GCM encrypt + 1 memcpy = {own:.3f} s/GiB "
        f"(ratio {fmt_ratio(t['get_server'], own)})")
    row("client CPU per GiB, v4 download", f"{t['get_client']:.3f} s/GiB",
        f"{v4_limit_srv:.3f} s/GiB", fmt_ratio(t["get_client"], v4_limit_srv), "<= 1.5",
        "limit: GCM decrypt + SHA-256 + cksum + 2 memcpy")
    big_r = v4_big_rss(scratch, dirs["disk"])
    if big_r:
        row(f"server peak RSS during a {BIG_MB} MiB v4 upload (disk)",
            f"{big_r['server_kib'] / 1024:.1f} MiB",
            note=f"{big_r['mbs']:.0f} MB/s; client peak RSS {big_r['client_kib'] / 1024:.1f} MiB")
    else:
        row(f"server peak RSS during a {MB} MiB v4 upload (tmpfs / disk)",
            f"{t['server_kib'] / 1024:.1f} / {k['server_kib'] / 1024:.1f} MiB",
            note="the 4 GiB figure needs BENCH_BIG=1 (a 4 GiB + 1 MiB file, not in the "
            "default run)")
    r = v4_resent(scratch, dirs["tmpfs"])
    for label, what in (("cut", "connection cut"), ("kill", "cut, server kill -9")):
        x = r[label]
        row(f"bytes resent after a drop, v4 ({what})", f"{x['resent'] / 2**20:.2f} MiB",
            "64 MiB", fmt_ratio(x["resent"], 64 << 20), "<= 1",
            f"{r['mb']} MiB file cut after {r['cut_at']} bytes up; {x['connections']} "
            f"connections; the server got {x['after']} bytes after it, the whole upload "
            f"{r['whole']}")
    h = v4_handshakes(scratch, dirs["tmpfs"])
    rate = h["ok"] / h["cpu"] if h["cpu"] > 0 else 0
    row("TLS 1.3 handshakes per server CPU-second", f"{rate:.0f} /s", None, None, ">= 1000",
        f"{h['ok']}/{h['n']} handshakes + WHOAMI, both certificates (Ed25519), 4 Python "
        f"client threads; {h['cpu'] / max(h['ok'], 1) * 1e6:.0f} us server CPU each; "
        f"{h['ok'] / h['wall']:.0f} /s wall" + (f"; {h['failed'][0]}" if h["failed"] else ""))
    r = v4_idle_tls(scratch, dirs["tmpfs"])
    row(f"server RSS per idle TLS connection ({r['n']} open)", f"{r['per']:.1f} KiB", None,
        None, "<= 48 KiB", f"handshake done, then idle; a WHOAMI among them got {r['who']}; "
        f"RSS {r['rss0'] / 1024:.1f} -> {r['rss1'] / 1024:.1f} MiB")


# ---- many sessions: the C load generator ----

def sdload(port, *args):
    """Runs sdload; returns (its figures as a dict, exit status, stderr)."""
    rc, wall, cpu, _, so, se = run_measured([SDLOAD, "-p", str(port), *args])
    figs = {}
    for line in so.splitlines():
        figs.update(dict(p.split("=", 1) for p in line.split()[1:] if "=" in p))
    return figs, rc, se.strip()


def server_cpu_per_session(d, label, *args):
    """A new server in d/label, sdload with args against it; returns (server CPU seconds per
    session that succeeded, sdload's figures, its exit status, its stderr)."""
    srv = Server(os.path.join(d, label))
    try:
        cpu0 = srv.cpu()
        figs, rc, err = sdload(srv.port, *args)
        cpu = srv.cpu() - cpu0
    finally:
        srv.stop()
        shutil.rmtree(os.path.join(d, label), ignore_errors=True)
    return cpu / max(int(figs.get("ok", 0)), 1), figs, rc, err


def bench_registrations(d):
    section("Registrations and concurrency (sdload: one C process, non-blocking connections)")
    keys = tool("keys")["keys"]
    rsa_rate = int(keys[3]["count"]) / keys[1]  # per CPU-second
    rsa = 1 / rsa_rate
    # The registrations, and what bounds them measured alongside: the same sessions without
    # the database or RSA work (two 825s with an invalid name, answered 1601), a TCP
    # connection with no request, and the database writes of a registration without the
    # network (sdbench db, one connection). Each REG_RUNS times, interleaved, medians: the
    # parts are compared with each other, so they should see the same machine.
    runs = {"reg": [], "floor": [], "conn": [], "ins": [], "upd": []}
    for _ in range(REG_RUNS):
        per_reg, figs, rc, err = server_cpu_per_session(d, "srv-regs", "-c", "64", "-k", "4",
                                                         "register", str(REGS))
        runs["reg"].append((per_reg, figs, rc, err))
        runs["floor"].append(server_cpu_per_session(d, "srv-floor", "-c", "64", "refused",
                                                    str(REGS)))
        runs["conn"].append(server_cpu_per_session(d, "srv-conn", "-c", "64", "connect",
                                                   str(REGS)))
        dbf = tool("db", d, str(REGS))
        runs["ins"].append(dbf["db-register"][1] / REGS)
        runs["upd"].append(dbf["db-set-keys"][1] / REGS)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    per_reg, figs, rc, err = med(runs["reg"])
    floor, ffigs, frc, ferr = med(runs["floor"])
    conn, cfigs, crc, cerr = med(runs["conn"])
    ins, upd = med(runs["ins"]), med(runs["upd"])
    ok = int(figs.get("ok", 0))
    wall = float(figs.get("wall", 0) or 1e-9)
    per_cpu = 1 / per_reg if ok else 0
    row(f"registrations (825 + 826), {REGS} sessions, 64 open", f"{ok / wall:.0f} /s",
        note=f"{ok}/{REGS} ok, wall clock; sdload used {float(figs.get('cpu', 0)):.2f} s CPU; "
        f"the run of median server CPU of {REG_RUNS}" + (f"; {err}" if rc else ""))
    row("registrations per server CPU-second / RSA work alone", f"{per_cpu:.0f} /s",
        f"{rsa_rate:.0f} /s", fmt_ratio(per_cpu, rsa_rate), ">= 0.5",
        f"{per_reg * 1e6:.0f} us server CPU per registration (median of {REG_RUNS}: "
        f"{', '.join(f'{r[0] * 1e6:.0f}' for r in runs['reg'])}) against "
        f"{rsa * 1e6:.0f} us (SPKI parse + key + OAEP wrap)")
    share = lambda x: f"{100 * x / per_reg:.0f}% of a registration" if ok else ""  # noqa: E731
    row("  server CPU per session, two refused 825s", f"{floor * 1e6:.0f} us",
        note=f"{ffigs.get('ok', 0)}/{REGS} ok; a registration's connection, requests, replies "
        f"and log lines without its database or RSA work; {share(floor)}"
        + (f"; {ferr}" if frc else ""))
    row("  server CPU per TCP connection, no request", f"{conn * 1e6:.0f} us",
        note=f"{cfigs.get('ok', 0)}/{REGS} ok; accept, epoll, end of input, close, 2 log lines; "
        f"{share(conn)}" + (f"; {cerr}" if crc else ""))
    row("  database writes per registration (sdbench db)", f"{(ins + upd) * 1e6:.0f} us",
        note=f"825 INSERT {ins * 1e6:.0f} us + 826 UPDATE {upd * 1e6:.0f} us, each its own "
        f"commit (SQLite WAL, synchronous NORMAL, tmpfs), one connection; {share(ins + upd)}")
    rest = per_reg - floor - (ins + upd) - rsa
    row("  registration - (session + database + RSA)", f"{rest * 1e6:.0f} us",
        note=f"{per_reg * 1e6:.0f} - ({floor * 1e6:.0f} + {(ins + upd) * 1e6:.0f} + "
        f"{rsa * 1e6:.0f}) us: the handlers' own work, two workers' SQLite connections "
        "re-reading each other's commits, and the noise of medians taken apart")


def bench_concurrent_uploads(d):
    srv = Server(os.path.join(d, "srv-burst"))
    try:
        rss0 = vm_kib(srv.pid, "VmRSS")
        cpu0 = srv.cpu()
        figs, rc, err = sdload(srv.port, "-s", str(1 << 20), "-c", str(UPLOADS), "upload",
                               str(UPLOADS))
        cpu = srv.cpu() - cpu0
        hwm = vm_kib(srv.pid, "VmHWM")
        time.sleep(1.0)  # the server reaps the closed connections
        rss1 = vm_kib(srv.pid, "VmRSS")
    finally:
        srv.stop()
        shutil.rmtree(os.path.join(d, "srv-burst"), ignore_errors=True)
    ok, crc_ok = int(figs.get("ok", 0)), int(figs.get("crc_ok", 0))
    wall = float(figs.get("wall", 0) or 1e-9)
    row(f"{UPLOADS} concurrent 1 MiB uploads: CRCs right", f"{crc_ok}/{UPLOADS}", None, None,
        "all", f"{ok} sessions ended 1604" + (f"; {err}" if rc else ""))
    row("  sessions per second (wall clock)", f"{UPLOADS / wall:.0f} /s",
        note=f"{wall:.2f} s; sdload used {float(figs.get('cpu', 0)):.2f} s CPU "
        "(it encrypts every file: the 2 cores are shared)")
    row("  server CPU per session", f"{cpu / max(UPLOADS, 1) * 1e3:.2f} ms",
        note=f"{cpu:.2f} s for {UPLOADS} MiB: {cpu / (UPLOADS / 1024):.3f} s/GiB incl. 2 RSA")
    row("  server peak RSS (VmHWM)", f"{hwm / 1024:.1f} MiB", None, None, "< 64 MiB",
        f"RSS before {rss0 / 1024:.1f} MiB")
    row("  server RSS after the burst has closed", f"{rss1 / 1024:.1f} MiB")


def bench_idle(d):
    """Memory per idle version-3 connection: plain sockets that never send a byte."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(CONNS, hard - 100)
    srv = Server(os.path.join(d, "srv-idle"), "--max-connections", str(n + 1000))
    socks = []
    try:
        rss0 = vm_kib(srv.pid, "VmRSS")
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        time.sleep(0.5)
        # One full session while all of them are open: the server still serves.
        c = sdpeer.PeerClient("127.0.0.1", srv.port, timeout=30)
        r = c.full_session("Busy Day", "x.bin", b"x" * 1000, rsa_key=sdpeer.RSAKey.generate())
        c.close()
        rss1 = vm_kib(srv.pid, "VmRSS")
        per = (rss1 - rss0) / n
        row(f"server RSS per idle v3 connection ({n} open)", f"{per:.1f} KiB", None, None,
            "<= 8 KiB", f"a session among them ended {r['code']}")
    finally:
        for s in socks:
            s.close()
        srv.stop()
        shutil.rmtree(os.path.join(d, "srv-idle"), ignore_errors=True)


def main():
    for p in (SDBENCH, SDLOAD):
        if not os.access(p, os.X_OK):
            sys.exit(f"bench: {p} is not built (make {os.path.relpath(p, TOP)})")
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="sealdrop-bench.", dir=DISK)
    shm = tempfile.mkdtemp(prefix="sealdrop-bench.", dir=TMPFS)
    dirs = {"tmpfs": shm, "disk": scratch}
    try:
        machine_header()
        big = os.path.join(scratch, "big.bin")
        make_big_file(big, MB)
        L = bench_limits(big, dirs)
        v3 = bench_v3_uploads(big, dirs, L, scratch)
        scp_mbs = bench_scp(big, v3["disk"]["mbs"], scratch)
        bench_v4(big, dirs, L, v3, scp_mbs, scratch)
        bench_registrations(shm)
        bench_concurrent_uploads(shm)
        bench_idle(shm)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    out()
    out(f"(servers for registrations, concurrency and idle connections ran on tmpfs; "
        f"the whole run took {time.monotonic() - started:.0f} s, load average at the end "
        f"{os.getloadavg()[0]:.2f})")
    with open(os.path.join(TOP, "bench", "results.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\nwritten to bench/results.txt")


if __name__ == "__main__":
    main()

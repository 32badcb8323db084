#!/bin/sh
# demo.sh: the one-command tour of sealdrop (`make demo`). In a scratch folder it starts a
# server on a free loopback port and shows version 4 (TLS 1.3, the server's key pinned by
# its fingerprint), a version-3 user whose account version 4 then links, a reconnect, an
# upload cut by the network that resumes by itself, a listing and a download, the version-3
# CRC retry, the database, and every stored file against its original.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/${BINDIR:-bin}"
case "${BINDIR:-bin}" in /*) bin=$BINDIR ;; esac
for b in sealdrop-server sealdrop-client sealdrop-db; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run 'make' first" >&2; exit 1; }
done
python=${PYTHON:-python3}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sealdrop-demo.XXXXXX")
srv="$scratch/server"
mkdir -p "$srv"
server_pid=""
relay_pid=""
cleanup() {
	for p in $relay_pid $server_pid; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	[ -z "${multi_cleanup:-}" ] || sh -c "$multi_cleanup" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; echo "demo: scratch folder kept at $scratch" >&2; exit 1; }

# wait_port LOG: prints the port of the first "listening on 127.0.0.1:PORT" line of LOG.
wait_port() {
	i=0
	while [ $i -lt 100 ]; do
		p=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Starts the server in $srv with extra options; sets $port from its "listening on" line.
start_server() {
	: > "$srv/server.log"
	(cd "$srv" && exec "$bin/sealdrop-server" --bind 127.0.0.1 --port 0 "$@" 2>>server.log) &
	server_pid=$!
	port=$(wait_port "$srv/server.log") || { cat "$srv/server.log" >&2; fail "server did not start"; }
	echo "server pid $server_pid listening on 127.0.0.1:$port (log: $srv/server.log)"
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || fail "server exited with status $?"
	server_pid=""
}

# make_user DIR NAME SIZE [PORT]: a client folder with transfer.info and a file of SIZE bytes.
make_user() {
	mkdir -p "$1"
	f=$(echo "$2" | tr 'A-Z ' 'a-z-').bin
	head -c "$3" /dev/urandom > "$1/$f"
	printf '127.0.0.1:%s\n%s\n%s\n' "${4:-$port}" "$2" "$f" > "$1/transfer.info"
}

run_client() { # DIR [options]
	dir=$1; shift
	(cd "$dir" && "$bin/sealdrop-client" "$@") || fail "client in $dir exited with status $?"
}

step "Starting the server in $srv"
start_server
fp=$("$bin/sealdrop-server" --db "$srv/defensive.db" --fingerprint) || fail "--fingerprint"
echo "the server's key fingerprint (sealdrop-server --fingerprint): $fp"

step "Version 4: Alice and Bob register and upload over TLS 1.3; the client pins the server's key"
make_user "$scratch/alice" "Alice" 150000
make_user "$scratch/bob" "Bob" 2000000
run_client "$scratch/alice" --verbose
run_client "$scratch/bob"
for u in alice bob; do
	pinned=$(cut -d' ' -f2 "$scratch/$u/known_servers")
	[ "$pinned" = "$fp" ] || fail "$u pinned $pinned, the server's key is $fp"
	echo "$u pinned $pinned = the server's fingerprint"
done

step "Carol uses version 3, as every existing client does; her first version-4 run links her account"
make_user "$scratch/carol" "Carol Example" 1
run_client "$scratch/carol" --protocol 3
id_v3=$(sed -n 2p "$scratch/carol/me.info")
run_client "$scratch/carol"
[ "$(sed -n 2p "$scratch/carol/me.info")" = "$id_v3" ] || fail "Carol's ID changed"
echo "carol keeps her ID $id_v3 over both versions"

step "Alice runs again: she reconnects with me.info and me.key and uploads again"
run_client "$scratch/alice"

step "Dave's upload is cut by the network after 4 MiB: his client reconnects and resumes"
# A relay in front of the server that cuts its first connection after 4 MiB from the client.
"$python" -c '
import socket, sys, threading
target, cut = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(8)
ls.settimeout(120)
print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
def pipe(a, b, limit):
    n = 0
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if limit and n + len(d) >= limit:
                b.sendall(d[:limit - n])
                print("relay: cut the connection after %d bytes" % limit, flush=True)
                break
            n += len(d)
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
first = True
while True:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    s = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pipe, args=(c, s, cut if first else 0), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, 0), daemon=True).start()
    first = False
' "$port" $((4 << 20)) > "$scratch/relay.log" 2>&1 &
relay_pid=$!
relay_port=$(wait_port "$scratch/relay.log") || fail "the relay did not start"
make_user "$scratch/dave" "Dave" $((48 << 20)) "$relay_port"
(cd "$scratch/dave" && "$bin/sealdrop-client" 2>&1) | tee "$scratch/dave/client.log" | grep -v '^\s*$' || true
grep -q "resuming dave.bin at byte" "$scratch/dave/client.log" || fail "Dave's upload did not resume"
grep -q "relay: cut" "$scratch/relay.log" || fail "the relay did not cut the connection"
cat "$scratch/relay.log" | grep -v listening

step "Alice lists her files and downloads hers back"
run_client "$scratch/alice" list
run_client "$scratch/alice" get alice.bin -o "$scratch/alice/alice.downloaded"
cmp "$scratch/alice/alice.bin" "$scratch/alice/alice.downloaded" || fail "the download differs"
echo "alice.downloaded is identical to alice.bin"

step "Version 3's CRC loop: the server restarted with a CRC corrupted once (test-only option)"
stop_server
start_server --test-corrupt-crc 1
sed -i "1s/.*/127.0.0.1:$port/" "$scratch/bob/transfer.info"
run_client "$scratch/bob" --protocol 3 --verbose

step "The database (sealdrop-db clients, sealdrop-db files)"
(cd "$srv" && "$bin/sealdrop-db" clients && echo && "$bin/sealdrop-db" files)

step "Every stored file against its original"
for u in alice bob carol dave; do
	id=$(sed -n 2p "$scratch/$u/me.info")
	f=$(sed -n 3p "$scratch/$u/transfer.info")
	rel=$(sqlite3 -readonly "$srv/defensive.db" \
		"SELECT PathName FROM files WHERE hex(ID) = upper('$id') AND FileName = '$f' AND Verified = 1")
	[ -n "$rel" ] || fail "no verified row for $u's $f"
	stored="$srv/files/$rel"
	cmp "$scratch/$u/$f" "$stored" || fail "$stored differs from the original"
	sum=$(cksum < "$stored" | cut -d' ' -f1)
	recorded=$(sqlite3 -readonly "$srv/defensive.db" \
		"SELECT CRC FROM files WHERE PathName = '$rel' AND Verified = 1")
	[ "$sum" = "$recorded" ] || fail "$stored: cksum $sum, database says '$recorded'"
	printf '%-6s %s  cksum %s = verified CRC in the database\n' "$u" "identical" "$sum"
done
(cd "$srv" && "$bin/sealdrop-db" check) || fail "sealdrop-db check found problems"

step "Stopping the server"
stop_server
echo "server stopped cleanly"

printf '\nDemo finished. Everything is in %s\n' "$scratch"
echo "  server/defensive.db   the database (try: sqlite3 $srv/defensive.db 'select Name, hex(ID) from clients')"
echo "  server/files/         the stored files, one folder per client ID"
echo "  server/server.log     the server's log; server.key, server.crt its version-4 identity"
echo "  alice/ bob/ ...       each client's transfer.info, me.info, priv.key, me.key, known_servers"

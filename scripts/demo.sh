#!/bin/sh
# demo.sh: the one-command tour of sealdrop (`make demo`). In a scratch folder it starts a
# server on a free loopback port, registers three users who upload one file each, reconnects
# one of them, restarts the server with a corrupted CRC once so the client's retry shows,
# inspects the database, checks every stored file against its original, and stops the server.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/${BINDIR:-bin}"
case "${BINDIR:-bin}" in /*) bin=$BINDIR ;; esac
for b in sealdrop-server sealdrop-client sealdrop-db; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run 'make' first" >&2; exit 1; }
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sealdrop-demo.XXXXXX")
srv="$scratch/server"
mkdir -p "$srv"
server_pid=""
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT INT TERM

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; echo "demo: scratch folder kept at $scratch" >&2; exit 1; }

# Starts the server in $srv with extra options; sets $port from its "listening on" line.
start_server() {
	: > "$srv/server.log"
	(cd "$srv" && exec "$bin/sealdrop-server" --bind 127.0.0.1 --port 0 "$@" 2>>server.log) &
	server_pid=$!
	port=""
	i=0
	while [ $i -lt 100 ]; do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$srv/server.log" | head -n 1)
		[ -n "$port" ] && break
		kill -0 "$server_pid" 2>/dev/null || { cat "$srv/server.log" >&2; fail "server did not start"; }
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$port" ] || fail "server did not report its port"
	echo "server pid $server_pid listening on 127.0.0.1:$port (log: $srv/server.log)"
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || fail "server exited with status $?"
	server_pid=""
}

# make_user DIR NAME SIZE: a client folder with transfer.info and a file of SIZE random bytes.
make_user() {
	mkdir -p "$1"
	head -c "$3" /dev/urandom > "$1/$(echo "$2" | tr 'A-Z ' 'a-z-').bin"
	printf '127.0.0.1:%s\n%s\n%s\n' "$port" "$2" "$(echo "$2" | tr 'A-Z ' 'a-z-').bin" > "$1/transfer.info"
}

run_client() { # DIR [options]
	dir=$1; shift
	(cd "$dir" && "$bin/sealdrop-client" --protocol 3 "$@") || fail "client in $dir exited with status $?"
}

step "Starting the server in $srv"
start_server

step "Three users register and upload a file each"
make_user "$scratch/alice" "Alice" 150000
make_user "$scratch/bob" "Bob" 2000000
make_user "$scratch/carol" "Carol Example" 1
for u in alice bob carol; do
	echo "--- $u"
	run_client "$scratch/$u" --verbose
done

step "Alice runs again: she reconnects with me.info and uploads again"
run_client "$scratch/alice" --verbose

step "Restarting the server with a CRC corrupted once (test-only option): Bob's retry"
stop_server
start_server --test-corrupt-crc 1
sed -i "1s/.*/127.0.0.1:$port/" "$scratch/bob/transfer.info"
run_client "$scratch/bob" --verbose

step "The database (sealdrop-db clients, sealdrop-db files)"
(cd "$srv" && "$bin/sealdrop-db" clients && echo && "$bin/sealdrop-db" files)

step "Every stored file against its original"
for u in alice bob carol; do
	id=$(sed -n 2p "$scratch/$u/me.info")
	f=$(sed -n 3p "$scratch/$u/transfer.info")
	stored="$srv/files/$id/$f"
	cmp "$scratch/$u/$f" "$stored" || fail "$stored differs from the original"
	sum=$(cksum < "$stored" | cut -d' ' -f1)
	recorded=$(sqlite3 -readonly "$srv/defensive.db" \
		"SELECT CRC FROM files WHERE PathName = '$id/$f' AND Verified = 1")
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
echo "  server/server.log     the server's log"
echo "  alice/ bob/ carol/    each client's transfer.info, me.info, priv.key and file"

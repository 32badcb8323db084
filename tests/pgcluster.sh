#!/bin/sh
# pgcluster.sh: a throw-away PostgreSQL cluster for the tests (tests/run.sh starts one for the
# whole run). `pgcluster.sh start DIR` creates DIR (owned by the postgres user, as the server
# refuses to run as root), runs initdb and pg_ctl there, listening only on a Unix socket in
# DIR, and prints the libpq connection string of its `postgres` database; on failure it prints
# why on stderr and exits 1. `pgcluster.sh stop DIR` stops it and removes DIR.
# PG_BINDIR overrides where initdb and pg_ctl are (default: the newest /usr/lib/postgresql/*).
set -u
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pgcluster.sh start|stop DIR" >&2; exit 2; }
bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
# As root, run PostgreSQL's programs as the postgres user; as anyone else, as oneself.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
start)
	[ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] ||
		{ echo "no PostgreSQL server programs (initdb, pg_ctl) in '$bindir'" >&2; exit 1; }
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "no postgres user to run the server as" >&2; exit 1
	fi
	mkdir -p "$dir" || exit 1
	[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
	# A port number only names the socket file (no TCP listener); pick one from our pid.
	port=$(( 20000 + $$ % 20000 ))
	if ! as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 \
		--no-locale >"$dir/initdb.log" 2>&1; then
		echo "initdb failed: $(tail -n 3 "$dir/initdb.log")" >&2; exit 1
	fi
	# fsync off: a test cluster need not survive a power cut, and it makes tests faster.
	echo "-k $dir -c listen_addresses= -p $port -c fsync=off -c max_connections=200" \
		>"$dir/options"
	if ! as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o \
		"$(cat "$dir/options")" start >/dev/null 2>&1; then
		echo "pg_ctl start failed: $(tail -n 3 "$dir/server.log" 2>/dev/null)" >&2; exit 1
	fi
	echo "host=$dir port=$port user=postgres dbname=postgres" ;;
stop)
	[ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop \
		>/dev/null 2>&1
	rm -rf "$dir" ;;
restart) # as a database restart in production: every connection is cut
	as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o \
		"$(cat "$dir/options")" start >/dev/null 2>&1 ;;
*) echo "usage: pgcluster.sh start|stop|restart DIR" >&2; exit 2 ;;
esac

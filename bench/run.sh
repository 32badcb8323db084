#!/bin/sh
# run.sh: `make bench`: builds the benchmark tools (sdbench, sdload) and runs bench/bench.py on
# the real programs, then bench/bench_pg.py (several servers on PostgreSQL).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$top/$1" ;; esac; }
BUILD=$(abspath "${BUILD:-build}")
make -s BUILD="$BUILD" "$BUILD/tests/tools/sdbench" "$BUILD/tests/tools/sdload"
export SEALDROP_BIN="$(abspath "${BINDIR:-bin}")" SEALDROP_TOOLS="$BUILD/tests/tools"
"${PYTHON:-/usr/bin/python3}" bench/bench.py
# Several servers on PostgreSQL against one on SQLite (bench/bench_pg.py; kept apart from
# bench.py so that the two evolve independently).
exec "${PYTHON:-/usr/bin/python3}" bench/bench_pg.py

#!/bin/sh
# run.sh: `make bench`: builds the benchmark tools (sdbench, sdload) and runs bench/bench.py on
# the real programs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$top/$1" ;; esac; }
BUILD=$(abspath "${BUILD:-build}")
make -s BUILD="$BUILD" "$BUILD/tests/tools/sdbench" "$BUILD/tests/tools/sdload"
SEALDROP_BIN=$(abspath "${BINDIR:-bin}") SEALDROP_TOOLS="$BUILD/tests/tools" \
	exec "${PYTHON:-/usr/bin/python3}" bench/bench.py

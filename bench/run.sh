#!/bin/sh
# run.sh: `make bench`: builds the benchmark tool and runs bench/bench.py on the real programs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/tests/tools/sdbench"
SEALDROP_BIN="$top/${BINDIR:-bin}" SEALDROP_TOOLS="$top/$BUILD/tests/tools" \
	exec "${PYTHON:-/usr/bin/python3}" bench/bench.py

#!/bin/sh
# run.sh: runs every test program of sealdrop and ends with one summary line
# "N passed, N failed". Arguments choose groups: unit, fuzz, integration (default: all).
# ONLY=pattern runs only the programs whose name contains pattern. VALGRIND=1 runs the unit
# tests under valgrind (errors and leaks fail them).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
# A sanitizer build (SEALDROP_SAN set, as `make SAN=... test` does) has its programs in bin-san/.
if [ -n "${SEALDROP_SAN:-}" ]; then BINDIR=${BINDIR:-bin-san}; else BINDIR=${BINDIR:-bin}; fi
PYTHON=${PYTHON:-/usr/bin/python3}
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$top/$1" ;; esac; }
export SEALDROP_BIN="$(abspath "$BINDIR")"
export SEALDROP_TOP="$top"
export SEALDROP_TOOLS="$(abspath "$BUILD")/tests/tools"
export SEALDROP_FIXTURES="${SEALDROP_FIXTURES:-$(cd "$top/../shared/fixtures" 2>/dev/null && pwd)}"
export PYTHON PYTHONDONTWRITEBYTECODE=1
# Sanitizer builds: libgcrypt keeps a buffer of its entropy gatherer only in its secure memory
# pool, which LeakSanitizer does not scan; valgrind (which does) calls it still reachable.
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
groups=${*:-unit fuzz integration}

# One throw-away PostgreSQL cluster for the whole run (tests/pgcluster.sh): the db tests and
# the server tests on PostgreSQL read SEALDROP_TEST_PG (a libpq keyword string of its
# `postgres` database; each test creates its own databases). When it cannot start, those tests
# report SKIPPED with the reason and the run goes on. SEALDROP_TEST_PG=off: never start one.
pg_dir=""
case " $groups " in *" unit "*|*" integration "*)
	if [ "${SEALDROP_TEST_PG:-}" = off ]; then
		unset SEALDROP_TEST_PG
		export SEALDROP_TEST_PG_WHY="SEALDROP_TEST_PG=off"
	elif [ -z "${SEALDROP_TEST_PG:-}" ]; then
		pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/sealdrop-pg.XXXXXX")
		pg_why_file="$pg_dir.why"
		if pg_info=$(sh "$top/tests/pgcluster.sh" start "$pg_dir" 2>"$pg_why_file"); then
			export SEALDROP_TEST_PG="$pg_info" SEALDROP_TEST_PG_DIR="$pg_dir"
			echo "PostgreSQL test cluster: $pg_info"
		else
			export SEALDROP_TEST_PG_WHY="$(cat "$pg_why_file")"
			echo "PostgreSQL tests SKIPPED: $SEALDROP_TEST_PG_WHY"
			sh "$top/tests/pgcluster.sh" stop "$pg_dir"; pg_dir=""
		fi
		rm -f "$pg_why_file"
	fi ;;
esac
pg_cleanup() { [ -n "$pg_dir" ] && sh "$top/tests/pgcluster.sh" stop "$pg_dir"; pg_dir=""; }
trap 'pg_cleanup' EXIT
trap 'pg_cleanup; exit 130' INT TERM
passed=0
failed=0
failures=""

run_one() { # name, command...
	name=$1; shift
	case "$name" in *"${ONLY:-}"*) ;; *) return ;; esac
	echo "=== $name"
	start=$(date +%s)
	if "$@"; then
		passed=$((passed + 1)); echo "--- PASS $name ($(( $(date +%s) - start ))s)"
	else
		failed=$((failed + 1)); failures="$failures $name"
		echo "--- FAIL $name ($(( $(date +%s) - start ))s)"
	fi
}

for g in $groups; do
	case $g in
	unit)
		for t in "$BUILD"/tests/test_*; do
			case "$t" in *.o|*.d) continue ;; esac
			[ -x "$t" ] || continue
			if [ "${VALGRIND:-}" = 1 ]; then
				run_one "valgrind $(basename "$t")" valgrind -q --error-exitcode=99 \
					--leak-check=full --errors-for-leak-kinds=definite "$t"
			else
				run_one "$(basename "$t")" "$t"
			fi
		done ;;
	fuzz)
		for t in "$BUILD"/tests/replay_fuzz_*; do
			[ -x "$t" ] || continue
			n=${t##*/replay_}
			run_one "corpus $n" "$t" tests/fuzz/corpus/"$n"
		done ;;
	integration)
		for t in tests/integration/test_*.py; do
			[ -f "$t" ] || continue
			run_one "$(basename "$t" .py)" "$PYTHON" "$t"
		done ;;
	*) echo "run.sh: unknown group '$g' (unit, fuzz, integration)" >&2; exit 2 ;;
	esac
done
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

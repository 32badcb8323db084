#!/bin/sh
# deps.sh: installs the Debian packages that building and testing sealdrop need, only those
# missing (apt-get update once, then apt-get install -y). Does nothing when all are present.
# With the argument `bench`, also the benchmarks' tools; with `fuzz`, clang for libFuzzer.
set -eu
need="gcc make pkg-config libgcrypt20-dev libtasn1-6-dev libsqlite3-dev zlib1g-dev \
libgnutls28-dev libcmocka-dev python3 python3-cryptography python3-openssl gnutls-bin sqlite3 \
valgrind libpq-dev postgresql"
# `deps.sh bench` adds what the benchmarks compare against (scp to a throw-away sshd).
[ "${1:-}" = bench ] && need="$need openssh-server openssh-client"
# `deps.sh fuzz` adds clang and its libFuzzer runtime.
[ "${1:-}" = fuzz ] && need="$need clang libclang-rt-dev"
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
		|| missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q $missing

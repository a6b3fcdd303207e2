#!/bin/sh
# run.sh - the README's first command: installs what is missing (Debian
# packages only, including make and the compiler), builds, and starts a local
# realm with a mounted client. Extra arguments go to `encore local up`.
set -eu
cd "$(dirname "$0")/.."
if ! command -v bash >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || { echo "run.sh: make is missing; run as root" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bash make
fi
scripts/install-deps.sh
make -j"$(nproc)" all
exec build/bin/encore local up "$@"

#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages Encore needs to build,
# run, test and benchmark. Installs only what is missing; needs root.
set -euo pipefail

# Build: compiler, pkg-config, and the libraries (DESIGN section 11):
#   libfuse3-dev  FUSE low-level API for encore-client; fuse3 for fusermount3
#   liblmdb-dev   metadata (server), cache index (client)
#   libsodium-dev randomness, password hashes and AEAD (later issues)
#   libinih-dev   configuration files
#   libjson-c-dev --json output and the control protocol
#   libcmocka-dev unit tests; clang + libclang-rt-14-dev: libFuzzer, sanitizers
# Tests: python3-pytest (integration), iproute2 + nftables (network namespaces, partitions),
#   psmisc (fuser), util-linux (setpriv), lmdb-utils (mdb_stat for debugging).
pkgs=(build-essential pkg-config libfuse3-dev fuse3 liblmdb-dev lmdb-utils libsodium-dev
	libinih-dev libjson-c-dev libcmocka-dev clang libclang-rt-14-dev llvm python3-pytest
	iproute2 nftables psmisc util-linux procps clang-format)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo $0)" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Builds custody out of tree in ./build (configure once, then make).
# Usage: scripts/build.sh [configure options...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null
fi
mkdir -p build
cd build
if [ ! -f Makefile ] || [ ../configure -nt config.status ]; then
	../configure -q --enable-strict "$@"
fi
make -s -j"$(nproc)"

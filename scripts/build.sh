#!/usr/bin/env bash
# Installs what is missing, configures and builds vidfuse (Release) into ${VIDFUSE_BUILD_DIR:-build}.
# Only the `vidfuse` command unless VIDFUSE_BUILD_TESTS=ON (scripts/test.sh sets it).
# Extra arguments go to CMake (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch for a LibTorch of your own).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
tests=${VIDFUSE_BUILD_TESTS:-OFF}
bash "$root/scripts/install-deps.sh"
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ] ||
  ! grep -q "^VIDFUSE_BUILD_TESTS:BOOL=$tests\$" "$build/CMakeCache.txt"; then
  mkdir -p "$build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIDFUSE_BUILD_TESTS="$tests" \
    "$@" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
  grep -E "^-- vidfuse:" "$build.configure.log" >&2 || true
fi
# One short line per finished step with the elapsed time, then the compiler's own messages (a
# clean build takes minutes: it should not look stuck). A build failure fails this script:
# PIPESTATUS is read before anything else runs.
set +e
NINJA_STATUS="build [%f/%t, %es] " cmake --build "$build" -j"$(nproc)" 2>&1 |
  sed -uE 's#^(build \[[^]]*\] )(Building CXX object|Linking CXX [a-z ]+) (CMakeFiles/[^/]+/)?#\1#'
status=${PIPESTATUS[0]}
set -e
exit "$status"

#!/usr/bin/env bash
# Builds vidfuse and runs the whole test suite with CTest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
VIDFUSE_BUILD_TESTS=ON bash "$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"

#!/usr/bin/env bash
# Installs what is missing, configures and builds vidfuse (Release) into ${VIDFUSE_BUILD_DIR:-build}.
# Extra arguments go to CMake (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch for a CUDA LibTorch).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
  grep -E "^-- vidfuse:|Warning" "$build.configure.log" >&2 || true
fi
cmake --build "$build" -j"$(nproc)" 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Building|Linking)" || true
test "${PIPESTATUS[0]}" -eq 0

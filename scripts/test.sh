#!/usr/bin/env bash
# Builds vidfuse and runs the whole test suite: the C++ tests (CTest), then the library as users
# install it: the C++ package and the Python package into the project's environment
# (scripts/install-python.sh), a program built against the package (scripts/check-example.sh) and
# the Python package's tests (pytest).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
venv=${VIDFUSE_VENV:-$root/.venv}
VIDFUSE_BUILD_TESTS=ON bash "$root/scripts/build.sh"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@")
VIDFUSE_BUILD_TESTS=ON bash "$root/scripts/install-python.sh"
bash "$root/scripts/check-example.sh"
VIDFUSE_CLI="$build/vidfuse" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests"

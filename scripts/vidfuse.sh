#!/usr/bin/env bash
# Builds vidfuse if needed (installing what is missing), then runs it: `bash scripts/vidfuse.sh demo`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh" >&2
exec "$build/vidfuse" "$@"

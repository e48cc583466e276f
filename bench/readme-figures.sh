#!/usr/bin/env bash
# Re-measures every figure of the README's Performance table with one vidfuse binary, one JSON
# line per measurement: `bash bench/readme-figures.sh [path/to/vidfuse] > figures.jsonl`.
# Run it for two builds on the same idle machine to compare them side by side.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build/vidfuse}
run() { echo "bench: $*" >&2; "$bin" bench "$@" --json 2>/dev/null || echo "{\"bench\":\"$1\",\"error\":\"exit $?\"}"; }
run dinov3 --iters 5
run i3d --iters 5
run decode
run extract --videos 12
run extract --videos 12 --dtype bf16
run fusion --iters 2
"$bin" bench attention --help >/dev/null 2>&1 && run attention
exit 0

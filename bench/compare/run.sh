#!/usr/bin/env bash
# vidfuse side by side with today's Python stack (torch 2.x + transformers, ONNX Runtime,
# OpenVINO, PyAV / torchcodec / decord): `bash bench/compare/run.sh [path/to/vidfuse] [compare.py
# options]`. Sets up the peers' environment (bench/compare/.venv) first, then prints one table and
# leaves it with the raw JSON lines in compare-out/ (compare.md, compare.jsonl). Run it on an idle
# machine: it takes about 30 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/build/vidfuse
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then bin=$1; shift; fi
[ -x "$bin" ] || { echo "compare: no vidfuse binary at $bin (bash scripts/build.sh)" >&2; exit 1; }
bash "$here/setup.sh"
venv=${COMPARE_VENV:-$here/.venv}
exec "$venv/bin/python" "$here/compare.py" --vidfuse "$bin" "$@"

#!/usr/bin/env bash
# Sets up the peers' side of the comparison: a virtual environment of its own
# (bench/compare/.venv, or $COMPARE_VENV) with today's Python stack from the package index.
# Each peer is installed on its own, so one that fails to install is recorded
# (.venv/peer-install.log) and reported as a row that says so, never silently dropped.
# Idempotent and quiet: a second run only checks what is there.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${COMPARE_VENV:-$here/.venv}
# torch is pinned to the LibTorch vidfuse builds against, so both sides run the same kernels
# version; the others are whatever is current on the index.
PEERS=(
  "torch==2.15.0" numpy safetensors "transformers>=5" onnx onnxscript onnxruntime openvino
  av torchcodec decord
)
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log="$venv/peer-install.log"
: >"$log"
for spec in "${PEERS[@]}"; do
  name=${spec%%[<>=]*}
  stamp="$venv/.installed-$name"
  [ -e "$stamp" ] && continue
  echo "compare setup: installing $spec" >&2
  if "$venv/bin/python" -m pip install -q --disable-pip-version-check "$spec" >>"$log" 2>&1; then
    touch "$stamp"
  else
    echo "compare setup: $spec failed to install (see $log); its rows will say so" >&2
    echo "FAILED $spec" >>"$log"
  fi
done
exit 0

#!/usr/bin/env bash
# Installs everything vidfuse needs to build, test and benchmark:
#   1. Debian packages (toolchain, FFmpeg, OpenCV, gloo headers, test libraries, oneDNN for the
#      DINOv3 CPU kernels: the wheel's own oneDNN is linked with hidden symbols);
#   2. LibTorch 2.x, taken from the `torch` wheel (CUDA-enabled) in a project-local virtual
#      environment (.venv, or $VIDFUSE_VENV), never the system Python.
# Idempotent and quiet: when everything is present it returns in well under a second.
# VIDFUSE_TORCH_SPEC overrides the pinned wheel (e.g. "torch==2.15.0"); set VIDFUSE_NO_TORCH=1 to
# skip step 2 when building against a LibTorch of your own (-DCMAKE_PREFIX_PATH=...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  python3-venv libgloo-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  libopencv-video-dev libopencv-contrib-dev libopencv-imgcodecs-dev
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpng-dev libjpeg-dev
  libdnnl-dev
)
# python3-venv only matters where python3 is Debian's (pyenv and others bring venv with them).
python3 -c "import venv, ensurepip" 2>/dev/null && PACKAGES=("${PACKAGES[@]/python3-venv/}")

missing=()
for p in ${PACKAGES[@]}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${VIDFUSE_NO_TORCH:-0}" = 1 ] && exit 0
# The pinned LibTorch: the wheel's CMake package, headers and libraries (libtorch_cuda included,
# with the CUDA runtime libraries it needs from the nvidia-* wheels).
spec=${VIDFUSE_TORCH_SPEC:-torch==2.15.0}
venv=${VIDFUSE_VENV:-$root/.venv}
stamp="$venv/.vidfuse-torch"
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; }; then
  echo "install-deps: installing $spec into $venv (LibTorch for C++; about 5 GB, a few minutes)" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$spec" >/dev/null
  "$venv/bin/python" - <<'PY' >/dev/null 2>&1
import torch, torch.utils
assert torch.utils.cmake_prefix_path
PY
  echo "$spec" >"$stamp"
fi

# What the Python package (python/) builds and tests with, pinned: its build backend, the array
# and image types it accepts, pytest, and safetensors (to read stores as the Python stack does).
py_spec="numpy==2.4.6 pillow==13.0.0 pytest==9.2.0 scikit-build-core==1.1.2 safetensors==0.8.0"
py_stamp="$venv/.vidfuse-python"
[ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_spec" ] && exit 0
echo "install-deps: installing the Python package's build and test requirements into $venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check $py_spec >/dev/null
echo "$py_spec" >"$py_stamp"

#!/usr/bin/env bash
# Builds examples/embed_images against the installed C++ package (find_package(vidfuse) from
# ${VIDFUSE_VENV:-.venv}, where scripts/install-python.sh installs it) and runs it on the tiny
# DINOv3 parity fixture with two images. Exit status 0 when it printed the expected shape.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VIDFUSE_VENV:-$root/.venv}
out=${VIDFUSE_BUILD_DIR:-$root/build}/example
model="$root/../shared/fixtures/dinov3/tiny-mlp"
cmake -S "$root/examples/embed_images" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$venv" >"$out.configure.log" 2>&1 || { cat "$out.configure.log"; exit 1; }
cmake --build "$out" >"$out.build.log" 2>&1 || { cat "$out.build.log"; exit 1; }
"$venv/bin/vidfuse" synth --out "$out/images" --clips 2 --actions 1 --objects 2 --frames 8 >/dev/null 2>&1
video=$(ls "$out"/images/videos/* | head -1)
"$venv/bin/vidfuse" frames "$video" --sampler segment --segments 2 --out "$out/frames" >/dev/null 2>&1
images=("$out"/frames/*.png)
printed=$("$out/embed_images" "$model" "${images[0]}" "${images[1]}")
echo "example: $printed"
[[ "$printed" == "patch_tokens [2, 14, 14, 96] cls [2, 96] on cpu" ]] ||
  [[ "$printed" == "patch_tokens [2, 14, 14, 96] cls [2, 96] on cuda"* ]]

#!/usr/bin/env bash
# The GPU check, for the day a GPU machine is lent (one H100/H200-class GPU; under 8 minutes):
#   1. parity on CUDA against the reference fixtures: DINOv3 (SDPA and per-head, fp32 and bf16,
#      fused and not), I3D RGB and flow (fp32, fp32 fused, bf16 fused); fusion training steps on
#      CUDA equal to the same steps on the CPU; pinned / side-stream uploads intact;
#   2. the benchmarks on the GPU next to its own GEMM rate measured in the same run:
#      bench attention | dinov3 | i3d | fusion | extract, all with --device cuda;
#   3. training on CUDA fed from a packed store (bench store's SSv2-shaped synthetic store): the
#      train record's samples/s and data_wait share;
#   4. the library on CUDA: the Python package's tests with device "auto" taking the GPU (the
#      extractors, extraction and trained models; parity with the command), and the C++ example.
# Uses a prebuilt tree when one is there (VIDFUSE_BUILD_DIR, default build/, with vidfuse and
# vidfuse_tests), otherwise builds it. Results go to $OUT (the device tool's folder) or
# gpu-check-out/: nvidia-smi.txt, tests.log, tests.xml, bench.jsonl, summary.txt.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VIDFUSE_BUILD_DIR:-$root/build}
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
start=$(date +%s)
say() { echo "gpu-check [$(($(date +%s) - start)) s] $*" | tee -a "$out/summary.txt"; }

if ! nvidia-smi >"$out/nvidia-smi.txt" 2>&1; then
  say "no GPU here (nvidia-smi failed): nothing to check"
  exit 2
fi
say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"

if [ ! -x "$build/vidfuse" ] || [ ! -x "$build/vidfuse_tests" ]; then
  say "building (Release, tests on) in $build"
  VIDFUSE_BUILD_DIR=$build VIDFUSE_BUILD_TESTS=ON bash "$root/scripts/build.sh" >"$out/build.log" 2>&1 ||
    { say "build failed: see build.log"; tail -40 "$out/build.log"; exit 1; }
fi
bin=$build/vidfuse
"$bin" info >"$out/info.txt" 2>&1 || true

say "parity and training on CUDA"
status=0
(cd "$build" && timeout 300 ./vidfuse_tests \
  --gtest_filter='*Cuda*:DeviceStager.*:Attention.*' --gtest_output="xml:$out/tests.xml") \
  >"$out/tests.log" 2>&1 || status=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED  \]|rel error" "$out/tests.log" | tee -a "$out/summary.txt"
if grep -q "SKIPPED" "$out/tests.log"; then say "warning: CUDA tests were skipped: is LibTorch built with CUDA?"; status=1; fi
say "tests exit status $status"

say "benchmarks on CUDA"
run_bench() {
  say "bench $*"
  timeout 120 "$bin" bench "$@" --device cuda --json >>"$out/bench.jsonl" 2>>"$out/bench.log" ||
    say "  failed ($?): see bench.log"
}
run_bench attention --dtype both
run_bench dinov3 --dtype both --batch 64 --iters 10
run_bench i3d --dtype both --batch 4 --iters 5
run_bench fusion --precision both --batch 32 --iters 10
run_bench extract --dtype bf16

say "training on CUDA from a packed store"
store_dir=${TMPDIR:-/tmp}/vidfuse-gpu-store
if timeout 240 "$bin" bench store --dir "$store_dir" --videos 1024 --json >>"$out/bench.jsonl" \
  2>>"$out/bench.log"; then
  # A list manifest of the store's ids (labels spread over SSv2's 174 classes).
  ls "$store_dir/loose" | grep '\.safetensors$' |
    awk '{ printf "%s.mp4 %d\n", substr($0, 1, length($0) - 12), NR % 174 }' >"$out/packed-train.txt"
  timeout 180 "$bin" train --store "$store_dir/packed" --train "$out/packed-train.txt" \
    --device cuda --precision bf16 --batch-size 64 --max-steps 100 \
    --output "$out/train-packed" >"$out/train-packed.log" 2>&1 ||
    say "  train from the packed store failed ($?): see train-packed.log"
  grep '"type":"train"' "$out/train-packed/log.jsonl" 2>/dev/null | tail -1 | tee -a "$out/summary.txt"
else
  say "  bench store failed: see bench.log"
fi
tail -n +1 "$out/bench.jsonl" | cut -c1-400 >>"$out/summary.txt"

say "the library on CUDA (Python package, C++ example)"
{ VIDFUSE_BUILD_DIR=$build VIDFUSE_BUILD_TESTS=ON bash "$root/scripts/install-python.sh" &&
  VIDFUSE_BUILD_DIR=$build bash "$root/scripts/check-example.sh" &&
  VIDFUSE_CLI="$bin" timeout 300 "${VIDFUSE_VENV:-$root/.venv}/bin/python" -m pytest -q \
    -p no:cacheprovider "$root/python/tests"; } >"$out/python.log" 2>&1 || status=$?
tail -5 "$out/python.log" | tee -a "$out/summary.txt"
say "done (tests exit status $status)"
exit $status

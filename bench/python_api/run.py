"""The Python API next to the command on the same work, same process setup, same machine:
  1. DINOv3 ViT-B/16 (random weights in the real layout), batch 8 at 224 px: images/s of
     vidfuse.SemanticExtractor called on 8 uint8 images (preprocessing included) against
     `vidfuse bench dinov3 --weights` (the model forward alone) in the same run;
  2. extraction: vidfuse.extract against `vidfuse extract` on the same synthetic videos with the
     built-in backbones, videos/s from each summary.
Rounds alternate the two sides. One JSON line per row on stdout; the ratio is python / command.

    .venv/bin/python bench/python_api/run.py [--vidfuse build/vidfuse] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import vidfuse

ROOT = Path(__file__).resolve().parents[2]


def write_vitb16(folder: Path) -> Path:
    """Random weights with every name and shape of facebook/dinov3-vitb16-pretrain-lvd1689m."""
    from safetensors.torch import save_file

    if (folder / "model.safetensors").exists():
        return folder
    keys = json.loads((ROOT.parent / "shared/fixtures/dinov3/vitb16-keys.json").read_text())
    g = torch.Generator().manual_seed(0)
    tensors = {name: torch.randn(shape, generator=g) * 0.02 for name, shape in keys["tensors"].items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    config = json.loads((ROOT.parent / "shared/fixtures/dinov3/tiny-mlp/config.json").read_text())
    config.update(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def cli_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def bench_dinov3(cli, weights, iters, dtype):
    ext = vidfuse.SemanticExtractor(weights, dtype=dtype, batch=8)
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (224, 224, 3), generator=g, dtype=torch.uint8) for _ in range(8)]
    ext(images)  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        ext(images)
        times.append(time.perf_counter() - start)
    python_ips = 8 / min(times)
    row = cli_json([cli, "bench", "dinov3", "--weights", str(weights), "--dtype", dtype,
                    "--iters", str(iters), "--json"])[0]
    return python_ips, row


def bench_extract(cli, manifest, videos, work):
    flags = dict(semantic_sampling={"num_segments": 8}, motion_clip=32)
    py_store, cli_store = work / "py_store", work / "cli_store"
    for store in (py_store, cli_store):
        shutil.rmtree(store, ignore_errors=True)
    s = vidfuse.extract(manifest, py_store, dinov3="builtin", i3d="builtin", videos_dir=videos,
                        quiet=True, **flags)
    c = cli_json([cli, "extract", "--manifest", str(manifest), "--videos", str(videos), "--out",
                  str(cli_store), "--dinov3", "builtin", "--i3d", "builtin", "--frames", "8",
                  "--motion-clip", "32", "--progress", "off", "--json"])[0]
    return s["videos_per_s"], c["videos_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vidfuse", default=str(ROOT / "build" / "vidfuse"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "vidfuse-bench-python"))
    args = ap.parse_args()
    work = Path(args.work)
    weights = write_vitb16(work / "dinov3-vitb16-random")
    data = work / "data"
    if not (data / "composite" / "train.json").exists():
        subprocess.run([args.vidfuse, "synth", "--out", str(data), "--clips", "16"], check=True,
                       capture_output=True)
    manifest, videos = data / "composite" / "train.json", data / "videos"
    for r in range(args.rounds):
        py, row = bench_dinov3(args.vidfuse, weights, args.iters, args.dtype)
        print(json.dumps({"row": "dinov3 vitb16 batch 8", "round": r, "dtype": args.dtype,
                          "python_img_s": round(py, 3), "command_img_s": row.get("images_per_s"),
                          "ratio": round(py / row["images_per_s"], 3) if row.get("images_per_s") else None,
                          "gemm_gflops": row.get("gemm_gflops"), "cpu_isa": row.get("cpu_isa")}), flush=True)
        py_v, cli_v = bench_extract(args.vidfuse, manifest, videos, work)
        print(json.dumps({"row": "extraction 16 videos (builtin backbones)", "round": r,
                          "python_videos_s": round(py_v, 3), "command_videos_s": round(cli_v, 3),
                          "ratio": round(py_v / cli_v, 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

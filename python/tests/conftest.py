"""Shared fixtures: the repository's paths, the `vidfuse` command, the parity fixtures in
../shared/fixtures, and one small synthetic dataset with its store and a trained model (made once
per session with the command: it is the slow part)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("VIDFUSE_SHARED_DIR", ROOT.parent / "shared")) / "fixtures"
CLI = Path(os.environ.get("VIDFUSE_CLI", ROOT / "build" / "vidfuse"))

# The small extraction recipe the tests use (as tests/test_workflow_cli.cpp): tiny sizes, fp32
# storage, so that stored features equal what the library computes bit for bit.
SMALL_RECIPE_FLAGS = ["--frames", "2", "--size", "64", "--pool", "2", "--motion-fps", "12",
                      "--motion-clip", "9", "--motion-short-side", "193", "--motion-crop", "193",
                      "--dtype", "fp32"]


def run_cli(*args, check=True):
    """Runs `vidfuse ARGS` and returns the completed process (stdout and stderr as text)."""
    proc = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"vidfuse {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def fixtures():
    if not FIXTURES.is_dir():
        pytest.fail(f"the parity fixtures are missing: {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Synthetic clips, a two-stream store of the train split, and a model trained on it."""
    d = tmp_path_factory.mktemp("dataset")
    run_cli("synth", "--out", d / "data", "--clips", "12", "--actions", "2", "--objects", "2",
            "--frames", "16")
    manifest = d / "data" / "composite" / "train.json"
    videos = d / "data" / "videos"
    run_cli("extract", "--manifest", manifest, "--videos", videos, "--out", d / "store",
            "--dinov3", "builtin", "--i3d", "builtin", "--progress", "off", *SMALL_RECIPE_FLAGS)
    config = {"model": {"width": 32, "heads": 2, "depth": 1, "pool_queries": 1},
              "data": {"store": str(d / "store"), "train": str(manifest)},
              "epochs": 1, "batch_size": 4}
    (d / "config.json").write_text(json.dumps(config))
    run_cli("train", "--config", d / "config.json", "--output", d / "run")
    return {"dir": d, "manifest": manifest, "videos": videos, "store": d / "store",
            "checkpoint": d / "run" / "checkpoint-last.safetensors",
            "video_files": sorted(videos.glob("*"))}

"""A packed store's shards are plain tar files that Python's own tooling reads: `tarfile` lists the
members, `safetensors.numpy.load` parses each one, and they equal the loose files they were packed
from. The loose store is written here with `safetensors.numpy` (as vidfuse's extractor would), then
packed and verified with the vidfuse CLI (VIDFUSE_CLI, default build/vidfuse under the repo root).
"""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load, load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("VIDFUSE_CLI", ROOT / "build" / "vidfuse"))


def run(*args):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    if not CLI.exists():
        pytest.skip(f"no vidfuse CLI at {CLI} (set VIDFUSE_CLI)")
    d = tmp_path_factory.mktemp("store")
    loose, packed = d / "loose", d / "packed"
    loose.mkdir()
    rng = np.random.default_rng(0)
    ids = [f"vid{i:03d}" for i in range(12)]
    for i, vid in enumerate(ids):
        tensors = {
            "semantic.cls": rng.standard_normal((2, 8)).astype(np.float16),
            "semantic.patch": rng.standard_normal((2, 3, 3, 8)).astype(np.float16),
            "semantic.times": np.arange(2, dtype=np.float64),
            "motion.mixed_5c": rng.standard_normal((8, 1, 2, 2)).astype(np.float16),
            "motion.features": rng.standard_normal((8,)).astype(np.float16),
            "motion.times": np.arange(2, dtype=np.float64),
        }
        meta = {"format": "vidfuse-features/1", "id": vid, "streams": "semantic,motion"}
        save_file(tensors, str(loose / f"{vid}.safetensors"), metadata=meta)
    manifest = d / "list.txt"
    manifest.write_text("".join(f"{vid}.mp4 {i % 3}\n" for i, vid in enumerate(ids)))
    r = run("store", "pack", loose, packed, "--shard-size", "8KB")
    assert r.returncode == 0, r.stderr
    return loose, packed, ids, manifest


def test_shards_read_with_tarfile_and_safetensors_equal_the_loose_files(stores):
    loose, packed, ids, _ = stores
    shards = sorted(packed.glob("*.tar"))
    assert len(shards) > 1
    seen = []
    for shard in shards:
        with tarfile.open(shard) as tar:  # plain ustar: Python's own reader
            for member in tar.getmembers():
                assert member.isfile() and member.name.endswith(".safetensors")
                data = tar.extractfile(member).read()
                vid = member.name[: -len(".safetensors")]
                seen.append(vid)
                # The member is the loose file, unchanged ...
                assert data == (loose / member.name).read_bytes()
                # ... and parses with safetensors into the same arrays.
                got, want = load(data), load_file(str(loose / member.name))
                assert got.keys() == want.keys()
                for key in want:
                    assert got[key].dtype == want[key].dtype
                    np.testing.assert_array_equal(got[key], want[key])
    assert sorted(seen) == ids


def test_index_locates_each_member_in_one_read(stores):
    loose, packed, ids, _ = stores
    index = json.loads((packed / "shards.json").read_text())
    assert index["format"] == "vidfuse-packed/1"
    assert sorted(index["ids"]) == ids
    for vid, shard, offset, length in zip(
        index["ids"], index["shard"], index["offset"], index["length"]
    ):
        with open(packed / index["shards"][shard], "rb") as f:
            f.seek(offset)
            assert f.read(length) == (loose / f"{vid}.safetensors").read_bytes()


def test_cli_verifies_and_summarises_the_packed_store(stores):
    _, packed, ids, manifest = stores
    r = run("store", "verify", packed, "--manifest", manifest, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["layout"] == "packed" and report["complete"] == len(ids)
    r = run("store", "stats", packed, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"] == len(ids)

"""Extraction, the store as a Dataset, and trained models from Python, against the command."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

import vidfuse
from conftest import run_cli

SMALL_RECIPE = dict(semantic_sampling={"num_segments": 2}, semantic_size=64, pool=2,
                    motion_sampling={"fps": 12}, motion_clip=9, motion_short_side=193,
                    motion_crop=193)


def test_extract_equals_the_command_and_resumes(dataset, tmp_path):
    store = tmp_path / "store"
    summary = vidfuse.extract(dataset["manifest"], store, dinov3="builtin", i3d="builtin",
                              videos_dir=dataset["videos"], storage_dtype="fp32",
                              progress="off", **SMALL_RECIPE)
    cli_files = sorted(dataset["store"].glob("*.safetensors"))
    assert summary["done"] == len(cli_files) > 0
    assert summary["failed"] == 0 and summary["device"] == vidfuse.resolve_device("auto")
    for cli_file in cli_files:
        ours, theirs = load_file(str(store / cli_file.name)), load_file(str(cli_file))
        assert ours.keys() == theirs.keys()
        for name in theirs:
            assert torch.equal(ours[name], theirs[name]), (cli_file.name, name)
    again = vidfuse.extract(dataset["manifest"], store, dinov3="builtin", i3d="builtin",
                            videos_dir=dataset["videos"], storage_dtype="fp32", quiet=True,
                            **SMALL_RECIPE)
    assert again["done"] == 0 and again["skipped"] == summary["done"]


def test_extract_errors(dataset, tmp_path):
    with pytest.raises(vidfuse.Error, match="no stream"):
        vidfuse.extract(dataset["manifest"], tmp_path / "s", videos_dir=dataset["videos"])
    with pytest.raises(vidfuse.Error, match="nonsense_key"):
        vidfuse.extract(dataset["manifest"], tmp_path / "s", dinov3="builtin",
                        videos_dir=dataset["videos"], nonsense_key=1)
    with pytest.raises(vidfuse.Error, match=str(tmp_path / "none.json")):
        vidfuse.extract(tmp_path / "none.json", tmp_path / "s", dinov3="builtin")


def test_store_dataset_in_a_dataloader_with_workers(dataset):
    ds = vidfuse.StoreDataset(dataset["store"], dataset["manifest"], dataset["videos"])
    n = len(list(dataset["store"].glob("*.safetensors")))
    assert len(ds) == n and ds.missing == 0
    item = ds[0]
    assert set(item) == {"semantic", "semantic_cls", "motion", "label", "id"}
    assert item["semantic"].dtype == torch.float32 and item["semantic"].dim() == 4
    assert 0 <= item["label"] < len(ds.class_names)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1]["motion"], ds[1]["motion"])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    seen = []
    for batch in loader:
        assert batch["semantic"].shape[0] == batch["label"].shape[0]
        seen += list(batch["id"])
    assert seen == [ds[i]["id"] for i in range(n)]
    with pytest.raises(IndexError):
        ds[n]


def test_store_dataset_errors(dataset, tmp_path):
    with pytest.raises(vidfuse.Error, match=str(tmp_path / "nowhere")):
        vidfuse.StoreDataset(tmp_path / "nowhere", dataset["manifest"], dataset["videos"])
    with pytest.raises(ValueError, match="streams"):
        vidfuse.StoreDataset(dataset["store"], dataset["manifest"], streams=["audio"])


def test_model_predicts_as_the_command_does(dataset):
    model = vidfuse.load_model(dataset["checkpoint"])
    assert model.arch == "fusion" and model.num_classes == len(model.class_names) == 4
    videos = [str(p) for p in dataset["video_files"][:2]]
    ours = model.predict(videos, k=2)
    cli = run_cli("predict", "--checkpoint", dataset["checkpoint"], "--top-k", "2", "--json",
                  *videos)
    theirs = [json.loads(line) for line in cli.stdout.splitlines()]
    for o, t in zip(ours, theirs):
        assert o["error"] is None and o["video"] == t["video"]
        assert [name for name, _ in o["top"]] == [c["name"] for c in t["top"]]
        assert [s for _, s in o["top"]] == pytest.approx([c["score"] for c in t["top"]], abs=1e-6)
    # Logits from store features: one item, or a collated batch.
    ds = vidfuse.StoreDataset(dataset["store"], dataset["manifest"], dataset["videos"])
    one = model(ds[0])
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    two = model.logits(batch)
    assert list(one.shape) == [1, 4] and list(two.shape) == [2, 4]
    torch.testing.assert_close(two[:1], one, rtol=1e-5, atol=1e-5)


def test_model_errors(dataset, fixtures, tmp_path):
    dinov3 = fixtures / "dinov3" / "tiny-mlp" / "model.safetensors"
    with pytest.raises(vidfuse.Error, match=str(dinov3)):
        vidfuse.load_model(dinov3)
    model = vidfuse.load_model(dataset["checkpoint"])
    with pytest.raises(ValueError, match="motion"):
        model({"semantic": torch.zeros(2, 2, 2, 192)})
    result = model.predict([tmp_path / "missing.webm", dataset["video_files"][0]])
    assert str(tmp_path / "missing.webm") in result[0]["error"] and result[0]["top"] == []
    assert result[1]["error"] is None and len(result[1]["top"]) == 4


def test_store_dataset_reads_a_packed_store_as_the_loose_one(dataset, tmp_path):
    packed = tmp_path / "packed"
    run_cli("store", "pack", dataset["store"], packed)
    loose = vidfuse.StoreDataset(dataset["store"], dataset["manifest"], dataset["videos"])
    shards = vidfuse.StoreDataset(packed, dataset["manifest"], dataset["videos"])
    assert len(shards) == len(loose)
    for i in range(len(loose)):
        a, b = loose[i], shards[i]
        assert a["id"] == b["id"] and a["label"] == b["label"]
        for name in ("semantic", "semantic_cls", "motion"):
            assert torch.equal(a[name], b[name])

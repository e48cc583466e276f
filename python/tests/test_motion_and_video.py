"""The motion extractor, Kinetics-400 names, and read_video, against the command."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import vidfuse
from conftest import run_cli

SMALL_MOTION = dict(fps=12, clip=9, short_side=193, crop=193)


def test_video_features_equal_the_stores_bit_for_bit(dataset):
    reader = vidfuse.StoreDataset(dataset["store"], dataset["manifest"], dataset["videos"],
                                  streams=["motion"])
    i3d = vidfuse.MotionExtractor("builtin", **SMALL_MOTION)
    item = reader[0]
    video = next(p for p in dataset["video_files"] if p.stem == item["id"])
    out = i3d(video)
    assert set(out) == {"mixed_5c", "features", "logits", "logits_mean"}
    assert torch.equal(out["mixed_5c"][0].float().cpu(), item["motion"])


def test_a_clip_array_and_the_same_tensor_agree(fixtures):
    i3d = vidfuse.create_motion_extractor(fixtures / "i3d" / "rgb" / "model.safetensors",
                                          short_side=193, crop=193)
    clip = np.random.default_rng(1).integers(0, 256, (10, 200, 232, 3), dtype=np.uint8)
    a, b = i3d(clip), i3d(torch.from_numpy(clip))
    assert torch.equal(a["features"], b["features"])
    assert list(a["logits_mean"].shape) == [1, 7]
    assert i3d.feature_dim == 1024 and i3d.num_classes == 7
    assert i3d.class_names == []  # not a Kinetics-400 head
    assert [name for name, _ in i3d.top_k(a["logits"], 3)[0]][0].startswith("class ")


@pytest.fixture(scope="module")
def kinetics_i3d(fixtures, tmp_path_factory):
    """The fixture I3D with a 400-class head, as the released Kinetics-400 checkpoints have."""
    state = load_file(str(fixtures / "i3d" / "rgb" / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    state["logits.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=g) * 0.05
    state["logits.conv3d.bias"] = torch.randn(400, generator=g)
    path = tmp_path_factory.mktemp("k400") / "i3d_k400.safetensors"
    save_file(state, str(path))
    return path


def test_kinetics_names_and_the_commands_top_k(dataset, kinetics_i3d):
    names = vidfuse.kinetics400_class_names()
    assert len(names) == 400 and len(set(names)) == 400
    assert names[0] == "abseiling" and names[227] == "playing cricket"
    i3d = vidfuse.MotionExtractor(kinetics_i3d, **SMALL_MOTION)
    assert i3d.class_names == names
    video = dataset["video_files"][0]
    top = i3d.predict(video, k=3)
    assert len(top) == 3 and all(name in names for name, _ in top)
    assert top[0][1] >= top[1][1] >= top[2][1]
    cli = run_cli("i3d-predict", "--model", kinetics_i3d, "--top-k", "3", "--json", video)
    # The command samples as extract does by default (25 fps, 64 frames): compare like with like.
    default = vidfuse.MotionExtractor(kinetics_i3d).predict(video, k=3)
    shown = json.loads(cli.stdout.splitlines()[0])
    assert [c["name"] for c in shown["top"]] == [name for name, _ in default]
    assert [c["score"] for c in shown["top"]] == pytest.approx([s for _, s in default], abs=1e-6)


def test_motion_errors_name_the_problem(fixtures, tmp_path):
    i3d = vidfuse.MotionExtractor(fixtures / "i3d" / "rgb" / "model.safetensors")
    with pytest.raises(ValueError, match=r"uint8 \[T, H, W, 3\]"):
        i3d(np.zeros((10, 64, 64, 3), np.float32))
    with pytest.raises(vidfuse.Error, match="9"):  # I3D's shortest clip
        i3d(np.zeros((3, 256, 256, 3), np.uint8))
    with pytest.raises(vidfuse.Error, match=str(tmp_path / "missing.mp4")):
        i3d(tmp_path / "missing.mp4")
    flow = vidfuse.MotionExtractor(fixtures / "i3d" / "flow" / "model.safetensors")
    with pytest.raises(vidfuse.Error, match="flow"):
        flow(np.zeros((10, 224, 224, 3), np.uint8))
    dinov3 = fixtures / "dinov3" / "tiny-mlp" / "model.safetensors"
    with pytest.raises(vidfuse.Error, match=str(dinov3)):
        vidfuse.MotionExtractor(dinov3)


def test_read_video_gives_the_frames_the_command_writes(dataset, tmp_path):
    video = dataset["video_files"][0]
    v = vidfuse.read_video(video, "segment", num_segments=4)
    assert v.frames.dtype == torch.uint8 and v.frames.shape[0] == 4 and v.frames.shape[3] == 3
    run_cli("frames", video, "--sampler", "segment", "--segments", "4", "--out",
            tmp_path / "frames")
    meta = json.loads((tmp_path / "frames" / "frames.json").read_text())
    assert [f["source_index"] for f in meta["frames"]] == v.indices
    assert [f["time"] for f in meta["frames"]] == pytest.approx(v.times)
    for k, f in enumerate(meta["frames"]):
        png = np.array(Image.open(tmp_path / "frames" / f["file"]).convert("RGB"))
        assert torch.equal(torch.from_numpy(png), v.frames[k])
    fps = vidfuse.read_video(video, "fps", fps=4)
    assert len(fps.times) == fps.frames.shape[0] > 0


def test_read_video_errors(tmp_path, dataset):
    with pytest.raises(vidfuse.Error, match=str(tmp_path / "nope.webm")):
        vidfuse.read_video(tmp_path / "nope.webm")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0\0\0\x18ftypmp42" + b"\x17" * 300)
    with pytest.raises(vidfuse.Error, match=str(bad)):
        vidfuse.read_video(bad)
    with pytest.raises(vidfuse.InputError, match="unknown sampling option 'segments'"):
        vidfuse.read_video(dataset["video_files"][0], segments=3)
    with pytest.raises(vidfuse.Error, match="sampler"):
        vidfuse.read_video(dataset["video_files"][0], "sometimes")

"""The semantic extractor: the seed's API, every input kind, parity with the HF pipeline and the
command, errors that name what is wrong, threads."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import vidfuse
from conftest import run_cli


def tiny(fixtures):
    return fixtures / "dinov3" / "tiny-mlp"


def landscape(fixtures):
    return load_file(str(fixtures / "preprocess" / "landscape.safetensors"))


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def test_seed_usage_example_runs_as_written(fixtures, tmp_path):
    # The seed's example, with only the import and the weights path changed.
    from vidfuse import create_semantic_extractor

    image = landscape(fixtures)["image_hwc_rgb_u8"].numpy()
    image1 = Image.fromarray(image)
    image2 = image[:, ::-1]
    Image.fromarray(image).save(tmp_path / "image3.png")
    image3 = str(tmp_path / "image3.png")

    extractor = create_semantic_extractor(tiny(fixtures))
    features = extractor([image1, image2, image3])
    print(features.shape)  # [3, 14, 14, 96] for this tiny model ([3, 14, 14, 768] for ViT-B/16)
    assert list(features.shape) == [3, 14, 14, 96]
    assert extractor.get_feature_dim() == 96
    assert extractor.device == torch.device(vidfuse.resolve_device("auto"))  # GPU if any


def test_numpy_and_pil_inputs_give_the_hf_pipelines_features(fixtures, tmp_path):
    case = landscape(fixtures)
    # The reference: the model on the HF image processor's pixel_values (the fixture), through
    # the command's forward.
    save_file({"pixel_values": case["pixel_values"]}, str(tmp_path / "in.safetensors"))
    run_cli("forward", "--model", tiny(fixtures), "--input", tmp_path / "in.safetensors",
            "--output", tmp_path / "out.safetensors")
    reference = load_file(str(tmp_path / "out.safetensors"))
    extractor = vidfuse.SemanticExtractor(tiny(fixtures))
    image = case["image_hwc_rgb_u8"].numpy()
    for item in (image, Image.fromarray(image)):
        patches, cls = extractor([item], return_cls=True)
        assert rel_err(patches.cpu(), reference["patch_tokens"]) <= 1e-4
        assert rel_err(cls.cpu(), reference["pooler_output"]) <= 1e-4


def test_equals_the_command_bit_for_bit(fixtures, tmp_path):
    image = landscape(fixtures)["image_hwc_rgb_u8"].numpy()
    paths = []
    for i, img in enumerate((image, image[::-1].copy(), np.roll(image, 7, axis=1))):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(img).save(paths[-1])
    run_cli("embed", "--model", tiny(fixtures), "--output", tmp_path / "cli.safetensors",
            "--batch", "2", *paths)
    cli = load_file(str(tmp_path / "cli.safetensors"))
    patches, cls = vidfuse.SemanticExtractor(tiny(fixtures), batch=2)(paths, return_cls=True)
    assert torch.equal(patches.cpu(), cli["patch_tokens"])
    assert torch.equal(cls.cpu(), cli["cls"])


def test_every_input_kind_gives_the_same_features(fixtures, tmp_path):
    image = landscape(fixtures)["image_hwc_rgb_u8"].numpy()
    Image.fromarray(image).save(tmp_path / "a.png")
    extractor = vidfuse.create_semantic_extractor(tiny(fixtures), size=(64, 96))
    out = extractor([image, Image.fromarray(image), torch.from_numpy(image), tmp_path / "a.png",
                     str(tmp_path / "a.png")])
    assert list(out.shape) == [5, 4, 6, 96]
    # The same pixels whatever the kind (the rows of one batch may differ in the last bits only).
    for i in range(1, 5):
        torch.testing.assert_close(out[i], out[0], rtol=1e-5, atol=1e-5)
    # A single image is a batch of one.
    torch.testing.assert_close(extractor(image), out[:1], rtol=1e-5, atol=1e-5)


def test_bf16_is_close_to_fp32(fixtures):
    image = landscape(fixtures)["image_hwc_rgb_u8"].numpy()
    fp32 = vidfuse.SemanticExtractor(tiny(fixtures))([image])
    bf16 = vidfuse.SemanticExtractor(tiny(fixtures), dtype=torch.bfloat16)([image])
    assert bf16.dtype == torch.float32
    assert rel_err(bf16, fp32) <= 3e-2


def test_bad_input_raises_errors_that_say_what(fixtures, tmp_path):
    extractor = vidfuse.SemanticExtractor(tiny(fixtures))
    with pytest.raises(ValueError, match="empty list"):
        extractor([])
    with pytest.raises(vidfuse.InputError, match=r"image 1: .*uint8 \[H, W, 3\].*float32"):
        extractor([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(vidfuse.InputError, match=r"image 0: .*\[3, 32, 32\]"):
        extractor([torch.zeros(3, 32, 32, dtype=torch.uint8)])
    with pytest.raises(vidfuse.InputError, match="image 0: expected a file path"):
        extractor([12])
    missing = tmp_path / "missing.png"
    with pytest.raises(vidfuse.Error, match=str(missing)):
        extractor([missing])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(vidfuse.Error, match=str(corrupt)):
        extractor([corrupt])
    # Weights of the wrong kind: an I3D checkpoint given as DINOv3.
    i3d = fixtures / "i3d" / "rgb" / "model.safetensors"
    with pytest.raises(vidfuse.Error, match=str(i3d)):
        vidfuse.SemanticExtractor(i3d)
    with pytest.raises(vidfuse.Error, match="no such file"):
        vidfuse.SemanticExtractor(tmp_path / "nowhere")
    with pytest.raises(vidfuse.Error, match="fp16 is refused"):
        vidfuse.SemanticExtractor(tiny(fixtures), dtype="fp16")
    assert issubclass(vidfuse.Error, RuntimeError)
    assert issubclass(vidfuse.InputError, vidfuse.Error)


def test_device_auto_is_the_cpu_here_and_cuda_is_refused_without_a_gpu(fixtures):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert vidfuse.resolve_device("auto") == "cpu"
    with pytest.raises(vidfuse.Error, match="no CUDA device"):
        vidfuse.SemanticExtractor(tiny(fixtures), device="cuda")
    with pytest.raises(vidfuse.Error, match="auto, cpu, cuda"):
        vidfuse.resolve_device("gpu")


def test_several_threads_may_call_at_once(fixtures):
    extractor = vidfuse.SemanticExtractor(tiny(fixtures), size=64)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(4)]
    expected = [extractor([img]) for img in images]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = extractor([images[i]])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        assert torch.equal(results[i], expected[i])

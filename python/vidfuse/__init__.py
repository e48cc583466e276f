"""vidfuse from Python: the C++ engine's extractors, video reading, extraction, feature store and
trained models, on the same core as the `vidfuse` command (no second implementation).

    import vidfuse
    extractor = vidfuse.create_semantic_extractor("/models/dinov3-vitb16-pretrain-lvd1689m")
    features = extractor([pil_image, numpy_image, "photo.jpg"])   # [3, 14, 14, 768]
    extractor.get_feature_dim()                                    # 768

Every call that decodes or computes releases the GIL. Errors are `vidfuse.Error` (a RuntimeError);
wrong arguments are `vidfuse.InputError` (also a ValueError). Messages name the file or the
argument and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch  # first: the native module links the LibTorch this import loads

from . import _C
from ._C import Error, InputError

__all__ = [
    "Error",
    "InputError",
    "resolve_device",
    "read_image",
    "read_video",
    "Video",
    "SemanticExtractor",
    "create_semantic_extractor",
    "MotionExtractor",
    "create_motion_extractor",
    "kinetics400_class_names",
    "extract",
    "StoreDataset",
    "Model",
    "load_model",
]

DEFAULT_DINOV3 = "facebook/dinov3-vitb16-pretrain-lvd1689m"

PathLike = Union[str, os.PathLike]


def resolve_device(requested: str = "auto") -> str:
    """The device `requested` means here: "auto" is this process's GPU when there is one, else
    "cpu"; an explicit "cuda" without a GPU raises vidfuse.Error."""
    return _C.resolve_device(str(requested))[0]


def _device_name(device: Union[str, torch.device, None]) -> str:
    return "auto" if device is None else str(device)


def _dtype_name(dtype: Union[str, torch.dtype]) -> str:
    """A compute dtype as the core names it: "fp32" or "bf16" (torch dtypes accepted too)."""
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names.get(dtype, dtype) if isinstance(dtype, torch.dtype) else str(dtype)


def _resolve_weights(weights: Optional[PathLike], what: str) -> str:
    """A path as given, "builtin", or a Hugging Face model id found in the local HF cache
    (vidfuse never downloads: this machine may have no network)."""
    if weights is None:
        raise InputError(f"{what}: give the weights (a model folder or checkpoint file)")
    name = os.fspath(weights)
    if name == "builtin" or os.path.exists(name):
        return name
    if name.count("/") == 1 and not name.startswith(("/", ".")):
        hub = Path(os.environ.get("HF_HUB_CACHE") or
                   Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
        snapshots = sorted((hub / ("models--" + name.replace("/", "--")) / "snapshots").glob("*"))
        for snapshot in reversed(snapshots):
            if (snapshot / "config.json").exists():
                return str(snapshot)
        raise Error(f"{what}: '{name}' is neither a file nor a folder, and the Hugging Face cache "
                    f"({hub}) has no copy of it; download it once with huggingface-cli, or pass "
                    "its folder")
    raise Error(f"{name}: no such file or folder ({what} weights)")


# ----------------------------------------------------------------------------------------------
# Images and videos


def read_image(path: PathLike) -> torch.Tensor:
    """An image file as a uint8 RGB tensor [H, W, 3]."""
    return _C.read_image(os.fspath(path))


def _as_image_tensor(image: Any, index: int) -> torch.Tensor:
    """One image as uint8 [H, W, 3]: a file path, a PIL image, a numpy array or a tensor."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if type(image).__module__.startswith("PIL."):
        import numpy as np

        image = np.asarray(image.convert("RGB"))
    if type(image).__module__ == "numpy":
        import numpy as np

        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"image {index}: a numpy array must be uint8 [H, W, 3] (RGB), got "
                             f"{image.dtype} {list(image.shape)}")
        image = np.ascontiguousarray(image)
        if not image.flags.writeable:  # PIL's arrays are read-only; torch wants its own
            image = image.copy()
        image = torch.from_numpy(image)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[2] != 3:
            raise InputError(f"image {index}: a tensor must be uint8 [H, W, 3] (RGB), got "
                             f"{image.dtype} {list(image.shape)}")
        return image
    raise InputError(f"image {index}: expected a file path, a PIL image, a numpy array or a "
                     f"tensor, got {type(image).__name__}")


class Video:
    """Sampled frames of a video: `frames` uint8 [T, H, W, 3], each frame's source `indices` and
    `times` (seconds), `num_groups` (clips or windows) and decoder `warnings`."""

    def __init__(self, native: Any):
        self.frames: torch.Tensor = native.frames
        self.indices: List[int] = list(native.indices)
        self.times: List[float] = list(native.times)
        self.num_groups: int = native.num_groups
        self.warnings: List[str] = list(native.warnings)

    def __repr__(self) -> str:
        return f"Video(frames={list(self.frames.shape)}, num_groups={self.num_groups})"


def read_video(path: PathLike, sampler: str = "segment", **sampling: Any) -> Video:
    """The frames `vidfuse frames` samples: sampler "segment" (num_segments=8), "uniform"
    (clip_len, frame_interval, num_clips), "fps" (fps, min_frames), "sliding" (fps, stack, step)
    or "all"; out_of_bound "loop" or "repeat-last"."""
    spec = _C.FrameSampling()
    spec.kind = sampler
    for key, value in sampling.items():
        if not hasattr(spec, key):
            raise InputError(f"read_video: unknown sampling option '{key}'")
        setattr(spec, key, value)
    return Video(_C.read_video(os.fspath(path), spec))


# ----------------------------------------------------------------------------------------------
# The semantic stream


class SemanticExtractor:
    """DINOv3 patch features of images, exactly as `vidfuse embed` computes them.

    Call it on a list mixing PIL images, numpy uint8 [H, W, 3] arrays, uint8 tensors and image
    paths: it returns the patch features [N, h, w, C] (float32, on its device), or
    (patch features, CLS [N, C]) with return_cls=True."""

    def __init__(self, weights: PathLike = DEFAULT_DINOV3, device: Union[str, torch.device] = "auto",
                 dtype: str = "fp32", size: Union[int, Tuple[int, int]] = 224, batch: int = 8):
        options = _C.SemanticExtractorOptions()
        options.device = _device_name(device)
        options.dtype = _dtype_name(dtype)
        options.height, options.width = (size, size) if isinstance(size, int) else tuple(size)
        options.batch = int(batch)
        self._native = _C.SemanticExtractor(_resolve_weights(weights, "DINOv3"), options)
        self.dtype = options.dtype

    def __call__(self, images: Any, return_cls: bool = False):
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise InputError("semantic extractor: no images given (an empty list)")
        tensors = [_as_image_tensor(image, i) for i, image in enumerate(images)]
        patches, cls = self._native.extract(tensors)
        return (patches, cls) if return_cls else patches

    @property
    def feature_dim(self) -> int:
        return self._native.feature_dim

    def get_feature_dim(self) -> int:
        """The width C of each patch feature (768 for ViT-B/16)."""
        return self._native.feature_dim

    @property
    def patch_size(self) -> int:
        return self._native.patch_size

    @property
    def device(self) -> torch.device:
        return torch.device(self._native.device)

    def __repr__(self) -> str:
        return (f"SemanticExtractor({self._native.weights!r}, device={self._native.device!r}, "
                f"dtype={self.dtype!r}, feature_dim={self.feature_dim})")


def create_semantic_extractor(weights: Optional[PathLike] = None, device: Union[str, torch.device] = "auto",
                              **options: Any) -> SemanticExtractor:
    """The seed's factory: a SemanticExtractor over `weights` (a DINOv3 folder or checkpoint, or
    a Hugging Face id in the local cache; default the ViT-B/16), on `device` ("auto")."""
    for alias in ("model_name", "model_path", "model"):
        if alias in options:
            weights = options.pop(alias)
    return SemanticExtractor(DEFAULT_DINOV3 if weights is None else weights, device=device,
                             **options)


# ----------------------------------------------------------------------------------------------
# The motion stream


def kinetics400_class_names() -> List[str]:
    """Kinetics-400's class names in label order (shipped with vidfuse)."""
    return list(_C.kinetics400_class_names())


class MotionExtractor:
    """I3D over a clip ([T, H, W, 3] uint8 numpy array or tensor) or a video path (sampled as
    `vidfuse extract` samples the motion stream: `fps`, then the centred `clip` frames). Returns
    {"mixed_5c", "features", "logits", "logits_mean"}."""

    def __init__(self, weights: PathLike, device: Union[str, torch.device] = "auto",
                 dtype: str = "fp32", fps: float = 25, clip: int = 64, short_side: int = 256,
                 crop: int = 224):
        options = _C.MotionExtractorOptions()
        options.device = _device_name(device)
        options.dtype = _dtype_name(dtype)
        options.fps, options.clip = float(fps), int(clip)
        options.short_side, options.crop = int(short_side), int(crop)
        self._native = _C.MotionExtractor(_resolve_weights(weights, "I3D"), options)

    def __call__(self, clip: Any) -> Dict[str, torch.Tensor]:
        if isinstance(clip, (str, os.PathLike)):
            return self._native.video(os.fspath(clip))
        if type(clip).__module__ == "numpy":
            import numpy as np

            if clip.dtype != np.uint8:
                raise InputError(f"motion extractor: a clip must be uint8 [T, H, W, 3], got "
                                 f"{clip.dtype} {list(clip.shape)}")
            clip = torch.from_numpy(np.ascontiguousarray(clip))
        if not isinstance(clip, torch.Tensor):
            raise InputError("motion extractor: expected a video path or a uint8 [T, H, W, 3] "
                             f"array or tensor, got {type(clip).__name__}")
        return self._native.clip(clip)

    def top_k(self, logits: torch.Tensor, k: int = 5) -> List[List[Tuple[str, float]]]:
        """Per row of `logits` ([B, K] or 5-D), the k best (class name, probability)."""
        return [[(name, score) for name, score, _ in row] for row in self._native.top_k(logits, k)]

    def predict(self, clip: Any, k: int = 5) -> List[Tuple[str, float]]:
        """The k best Kinetics-400 classes (name, probability) of one clip or video."""
        return self.top_k(self(clip)["logits"], k)[0]

    @property
    def class_names(self) -> List[str]:
        return list(self._native.class_names)

    @property
    def num_classes(self) -> int:
        return self._native.num_classes

    @property
    def feature_dim(self) -> int:
        return self._native.feature_dim

    def get_feature_dim(self) -> int:
        return self._native.feature_dim

    @property
    def device(self) -> torch.device:
        return torch.device(self._native.device)


def create_motion_extractor(weights: PathLike, device: Union[str, torch.device] = "auto",
                            **options: Any) -> MotionExtractor:
    return MotionExtractor(weights, device=device, **options)


# ----------------------------------------------------------------------------------------------
# Extraction, the feature store, trained models

_STORAGE_DTYPES = {"fp16": "F16", "float16": "F16", "bf16": "BF16", "bfloat16": "BF16",
                   "fp32": "F32", "float32": "F32"}


def extract(manifest: PathLike, store: PathLike, dinov3: Optional[PathLike] = None,
            i3d: Optional[PathLike] = None, flow_i3d: Optional[PathLike] = None,
            device: Union[str, torch.device] = "auto", dtype: str = "fp32",
            storage_dtype: str = "fp16", videos_dir: Optional[PathLike] = None,
            shard: Tuple[int, int] = (0, 1), workers: int = 2, batch: int = 32,
            progress: str = "auto", quiet: bool = False, **recipe: Any) -> Dict[str, Any]:
    """`vidfuse extract` from Python: the manifest's videos into a feature store, resumable, bad
    videos recorded in STORE/failures.jsonl. The backbones given turn their streams on; further
    recipe settings are extract.json's keys (pool=2, semantic_size=224, motion_clip=64, ...).
    A progress bar on a terminal; returns the summary."""
    if storage_dtype not in _STORAGE_DTYPES:
        raise InputError(f"extract: storage_dtype '{storage_dtype}': fp16, bf16 or fp32")
    recipe = dict(recipe)
    for key, weights in (("dinov3", dinov3), ("i3d", i3d), ("flow_i3d", flow_i3d)):
        if weights is not None:
            recipe[key] = _resolve_weights(weights, key)
    recipe["storage_dtype"] = _STORAGE_DTYPES[storage_dtype]
    o = _C.ExtractionOptions()
    o.manifest, o.store = os.fspath(manifest), os.fspath(store)
    o.videos_dir = "" if videos_dir is None else os.fspath(videos_dir)
    o.recipe_json = json.dumps(recipe)
    o.device, o.compute_dtype = _device_name(device), _dtype_name(dtype)
    o.shard_index, o.shard_count = int(shard[0]), int(shard[1])
    o.workers, o.semantic_batch = int(workers), int(batch)
    o.progress, o.quiet = progress, bool(quiet)
    return _C.extract(o)


class StoreDataset(torch.utils.data.Dataset):
    """A feature store as a map-style Dataset: item i is {"semantic" [Ts,h,w,Cs], "semantic_cls"
    [Ts,Cs], "motion" [Cm,Tm,Hm,Wm] (float32; the streams asked for), "label", "id"}. Works in a
    DataLoader with num_workers > 0: it pickles as its arguments and each worker opens the store
    itself on first use."""

    def __init__(self, store: PathLike, manifest: PathLike, videos_dir: Optional[PathLike] = None,
                 streams: Sequence[str] = ("semantic", "motion")):
        unknown = set(streams) - {"semantic", "motion"}
        if unknown or not streams:
            raise InputError(f"StoreDataset: streams must be semantic and/or motion, got "
                             f"{list(streams)}")
        self._args = (os.fspath(store), os.fspath(manifest),
                      "" if videos_dir is None else os.fspath(videos_dir),
                      "semantic" in streams, "motion" in streams)
        self._reader = None
        reader = self._open()
        self._len = len(reader)
        self.class_names: List[str] = list(reader.class_names)
        self.missing: int = reader.missing

    def _open(self):
        if self._reader is None:
            self._reader = _C.FeatureStoreReader(*self._args)
        return self._reader

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Dict[str, Any]:
        reader = self._open()
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"StoreDataset: index {index} out of range ({self._len} videos)")
        item: Dict[str, Any] = dict(reader.get(index))
        item["label"] = reader.label(index)
        item["id"] = reader.id(index)
        return item

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_reader"] = None  # a native object: each process opens its own
        return state


class Model:
    """A trained vidfuse model (a `vidfuse train` checkpoint): `model(features)` gives logits
    [B, K] from store features (a StoreDataset item or a collated batch); `predict(videos)` the
    top-k (class name, probability) of each video, featurised as its training store was."""

    def __init__(self, checkpoint: PathLike, device: Union[str, torch.device] = "auto",
                 store: Optional[PathLike] = None, dinov3: Optional[PathLike] = None,
                 i3d: Optional[PathLike] = None):
        o = _C.ClassifierOptions()
        o.device = _device_name(device)
        o.store = "" if store is None else os.fspath(store)
        o.dinov3 = "" if dinov3 is None else os.fspath(dinov3)
        o.i3d = "" if i3d is None else os.fspath(i3d)
        self._native = _C.Classifier(os.fspath(checkpoint), o)

    def __call__(self, features: Dict[str, Any]) -> torch.Tensor:
        return self.logits(features)

    def logits(self, features: Dict[str, Any]) -> torch.Tensor:
        tensors = {k: v for k, v in features.items() if isinstance(v, torch.Tensor) and
                   k in ("semantic", "semantic_cls", "motion")}
        return self._native.logits(tensors)

    def predict(self, videos: Union[PathLike, Sequence[PathLike]], k: int = 5) -> List[Dict[str, Any]]:
        if isinstance(videos, (str, os.PathLike)):
            videos = [videos]
        result = self._native.predict([os.fspath(v) for v in videos], int(k))
        for r in result:
            r["top"] = [(name, score) for name, score, _ in r["top"]]
        return result

    @property
    def class_names(self) -> List[str]:
        return list(self._native.class_names)

    @property
    def num_classes(self) -> int:
        return self._native.num_classes

    @property
    def arch(self) -> str:
        return self._native.arch

    @property
    def device(self) -> torch.device:
        return torch.device(self._native.device)


def load_model(checkpoint: PathLike, device: Union[str, torch.device] = "auto", **options: Any) -> Model:
    return Model(checkpoint, device=device, **options)

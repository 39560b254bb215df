"""Frozen features of a dataset under the evaluation transform, batched, and cached on disk.

Transform: resize the short side to ``image_size / crop_ratio`` and centre-crop ``image_size`` (256 -> 224 at the
default ratio 0.875, as DINO's and MoCo's evaluations), ImageNet mean/std. A small-image model (e.g. a 16 px tiny
preset) is evaluated at its own size. Features are the backbone's pooled output, stored raw (float32); kNN
normalises them, the linear probes use them as they are.

Cache: ``CACHE/<key>.npy`` (features), ``<key>.labels.npy`` and ``<key>.json`` (written last: the entry exists iff
it does), keyed by sha256 of (checkpoint sha256 + encoder + image size, the dataset's file list hash, the
transform). Images that cannot be decoded are left out and listed in the entry (``skipped``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from passkit.core.atomic import atomic_path
from passkit.evaluate.checkpoint import CheckpointInfo
from passkit.evaluate.datasets import LabeledDataset
from passkit.ssl.augment import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


@dataclass(frozen=True)
class EvalTransform:
    image_size: int = 224
    crop_ratio: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0 < self.crop_ratio <= 1:
            raise ValueError(f"crop ratio must be in (0, 1], got {self.crop_ratio}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be bilinear or bicubic, got {self.interpolation!r}")

    @property
    def resize(self) -> int:
        return round(self.image_size / self.crop_ratio)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resize": self.resize, "crop": self.image_size}

    def build(self) -> v2.Compose:
        mode = v2.InterpolationMode.BICUBIC if self.interpolation == "bicubic" else v2.InterpolationMode.BILINEAR
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.resize, interpolation=mode, antialias=True),
                v2.CenterCrop(self.image_size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(self.mean), list(self.std)),
            ]
        )


@dataclass
class Features:
    features: np.ndarray  # (n, dim) float32, raw backbone output
    labels: np.ndarray  # (n,) int64
    skipped: list[int]  # dataset indices left out (undecodable)
    cached: bool = False


class _Images(Dataset):
    def __init__(self, data: LabeledDataset, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int]:
        try:
            return self.transform(self.data.load(index)), index
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as error:
            log.warning("%s item %d unreadable, left out: %s", self.data.source, index, error)
            return None, index


def _collate(batch: list[tuple[torch.Tensor | None, int]]) -> tuple[torch.Tensor | None, list[int], list[int]]:
    good = [(image, index) for image, index in batch if image is not None]
    bad = [index for image, index in batch if image is None]
    images = torch.stack([image for image, _ in good]) if good else None
    return images, [index for _, index in good], bad


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def extract(
    backbone: nn.Module,
    data: LabeledDataset,
    transform: EvalTransform,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Features:
    """Run the backbone (eval mode, fp32) over every image; ``progress(n)`` is called after each batch."""
    target = resolve_device(device)
    was_training = backbone.training
    backbone.eval().to(target)
    loader = DataLoader(
        _Images(data, transform.build()),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=target.type == "cuda",
        persistent_workers=False,
    )
    parts: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[int] = []
    try:
        for images, indices, bad in loader:
            skipped += bad
            if images is not None:
                parts.append(backbone(images.to(target, non_blocking=True)).float().cpu().numpy())
                kept += indices
            if progress is not None:
                progress(len(indices) + len(bad))
    finally:
        backbone.train(was_training)
    if not parts:
        raise ValueError(f"{data.source}: no image could be read")
    return Features(np.concatenate(parts), data.labels[np.asarray(kept)], sorted(skipped))


def default_cache_dir() -> Path:
    """``$PASSKIT_CACHE/features``, else ``$XDG_CACHE_HOME/passkit/features`` (``~/.cache`` by default)."""
    if os.environ.get("PASSKIT_CACHE"):
        return Path(os.environ["PASSKIT_CACHE"]) / "features"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "passkit" / "features"


def cache_key(info: CheckpointInfo, data: LabeledDataset, transform: EvalTransform) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "checkpoint": {k: info.to_dict()[k] for k in ("arch", "sha256", "encoder", "random_init", "seed")},
        "dataset": data.list_sha256,
        "transform": transform.to_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temp, temp.open("wb") as handle:
        np.save(handle, array)


def cached_features(
    backbone: nn.Module,
    info: CheckpointInfo,
    data: LabeledDataset,
    transform: EvalTransform,
    cache_dir: str | Path | None = None,
    **extract_args: Any,
) -> Features:
    """Features from the cache when present, else extracted and stored (``cache_dir=None``: no cache)."""
    if cache_dir is None:
        return extract(backbone, data, transform, **extract_args)
    folder = Path(cache_dir)
    key = cache_key(info, data, transform)
    meta_path = folder / f"{key}.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        features = np.load(folder / f"{key}.npy", mmap_mode="r")
        labels = np.load(folder / f"{key}.labels.npy")
        if features.shape[0] == labels.shape[0] == meta["n"]:
            return Features(np.asarray(features), labels, meta["skipped"], cached=True)
        log.warning("%s: inconsistent cache entry, extracting again", meta_path)
    result = extract(backbone, data, transform, **extract_args)
    folder.mkdir(parents=True, exist_ok=True)
    _save_npy(folder / f"{key}.npy", result.features)
    _save_npy(folder / f"{key}.labels.npy", result.labels)
    meta = {
        "n": len(result.labels),
        "dim": int(result.features.shape[1]),
        "skipped": result.skipped,
        "checkpoint": info.to_dict(),
        "dataset": data.describe(),
        "transform": transform.to_dict(),
    }
    with atomic_path(meta_path) as temp:
        temp.write_text(json.dumps(meta, indent=1) + "\n")
    return result

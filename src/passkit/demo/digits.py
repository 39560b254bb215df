"""The demo's evaluation set: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes) as images,
and a weighted kNN of frozen features on it (``passkit.ssl.knn``), for a pretrained and a random-init backbone.

The lead wires ``passkit.evaluate.knn_eval`` here once it is merged (issue 10); until then this uses the kNN the
trainer monitors with, same protocol (cosine, k = 20, T = 0.07).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_FRACTION = 0.6


@dataclass(frozen=True)
class KnnScore:
    name: str  # e.g. "tiny-dino" or "tiny-dino (random init)"
    top1: float
    train: int
    val: int


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/val split of the digits as uint8 8x8 images (0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(members) * TRAIN_FRACTION)
        train_idx += members[:cut].tolist()
        val_idx += members[cut:].tolist()
    train, val = np.sort(train_idx), np.sort(val_idx)
    return images[train], labels[train], images[val], labels[val]


def _tensors(images: np.ndarray, size: int):  # type: ignore[no-untyped-def]
    import torch
    from PIL import Image

    from passkit.ssl.augment import eval_transform

    transform = eval_transform(size)
    return torch.stack([transform(Image.fromarray(image, mode="L").convert("RGB")) for image in images])


def load_backbone(run: Path, random_init: bool = False):  # type: ignore[no-untyped-def]
    """The backbone of a finished ``passkit pretrain`` run folder (or the same architecture at random init)."""
    import torch

    from passkit.ssl.backbones import build_backbone

    saved = torch.load(run / "backbone.pt", map_location="cpu", weights_only=False)
    config = json.loads((run / "config.json").read_text())
    torch.manual_seed(config.get("seed", 0))
    backbone = build_backbone(saved["arch"], config["global_size"])
    if not random_init:
        backbone.load_state_dict(saved["state_dict"])
    return backbone, int(config["global_size"])


def knn_scores(runs: dict[str, Path], k: int = 20, seed: int = 0) -> list[KnnScore]:
    """Top-1 kNN accuracy on the digits for each run's backbone and for its random-init twin."""
    import torch

    from passkit.ssl.knn import extract_features, knn_accuracy

    train_images, train_labels, val_images, val_labels = digits_split(seed)
    scores = []
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, run in runs.items():
        for random_init in (False, True):
            backbone, size = load_backbone(run, random_init)
            if size not in cache:
                cache[size] = (_tensors(train_images, size), _tensors(val_images, size))
            train, val = cache[size]
            top1 = knn_accuracy(
                extract_features(backbone, train),
                torch.from_numpy(train_labels),
                extract_features(backbone, val),
                torch.from_numpy(val_labels),
                k=k,
            )
            label = f"{name} (random init)" if random_init else name
            scores.append(KnnScore(label, top1, len(train_labels), len(val_labels)))
    return scores

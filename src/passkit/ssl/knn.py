"""The online kNN monitor of a training run; the classifier itself lives in :mod:`passkit.evaluate.knn`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from passkit.evaluate.knn import extract_features, knn_accuracy, knn_predict
from passkit.ssl.augment import eval_transform
from passkit.ssl.data import IMAGE_SUFFIXES


def load_labeled_folder(root: str | Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images of ``root/<class>/*`` resized and centre-cropped to ``size``; returns images, labels, class names."""
    folder = Path(root)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{folder}: expected one sub-folder per class")
    transform = eval_transform(size)
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(path) as image:
                    images.append(transform(image.convert("RGB")))
                labels.append(label)
    return torch.stack(images), torch.tensor(labels), classes


def knn_monitor(
    backbone: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    k: int = 20,
) -> float:
    train_features = extract_features(backbone, train[0].to(device))
    val_features = extract_features(backbone, val[0].to(device))
    return knn_accuracy(train_features, train[1].to(device), val_features, val[1].to(device), k)


__all__: Sequence[str] = ["extract_features", "knn_accuracy", "knn_monitor", "knn_predict", "load_labeled_folder"]

"""A weighted cosine kNN classifier on frozen features (the DINO/InstDisc protocol) for monitoring and tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from passkit.ssl.augment import eval_transform
from passkit.ssl.data import IMAGE_SUFFIXES


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised features of a float image batch (N, 3, H, W); the backbone runs in eval mode."""
    was_training = backbone.training
    backbone.eval()
    try:
        parts = [backbone(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)]
    finally:
        backbone.train(was_training)
    return F.normalize(torch.cat(parts), dim=1)


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    n_classes: int | None = None,
    exclude_self: bool = False,
) -> torch.Tensor:
    """Class votes weighted by exp(cosine / T) over the k nearest training features; returns predicted labels.

    ``exclude_self``: query and train sets are the same (leave-one-out); each point's own match is ignored.
    """
    classes = n_classes or int(train_labels.max()) + 1
    similarity = query_features @ train_features.t()
    if exclude_self:
        similarity.fill_diagonal_(-float("inf"))
    k = min(k, train_features.shape[0] - int(exclude_self))
    top_sim, top_idx = similarity.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(len(query_features), classes, device=query_features.device)
    votes.scatter_add_(1, train_labels[top_idx], weights)
    return votes.argmax(dim=1)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    predicted = knn_predict(train_features, train_labels, query_features, k, temperature)
    return float((predicted == query_labels).float().mean())


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

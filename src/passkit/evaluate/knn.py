"""Weighted k-nearest-neighbour classification of frozen features, as DINO evaluates (after InstDisc).

Cosine similarity between L2-normalised features; each of the k nearest training features votes for its class
with weight ``exp(similarity / T)``; classes are ranked by their summed votes (top-1 and top-5). Queries run in
chunks so the similarity matrix never exceeds ``chunk x n_train``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised features of an in-memory float image batch (N, 3, H, W); the backbone runs in eval mode."""
    was_training = backbone.training
    backbone.eval()
    try:
        parts = [backbone(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)]
    finally:
        backbone.train(was_training)
    return F.normalize(torch.cat(parts), dim=1)


@torch.no_grad()
def knn_votes(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    k: int,
    temperature: float = 0.07,
    n_classes: int | None = None,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> torch.Tensor:
    """Summed class votes (n_query, n_classes) of the k nearest training features, weighted by exp(cos / T).

    Features need not be normalised (they are, here). ``exclude_self``: query and train sets are the same
    (leave-one-out); each query's own entry is ignored.
    """
    return knn_votes_multi(
        train_features, train_labels, query_features, [k], temperature, n_classes, exclude_self, chunk
    )[k]


@torch.no_grad()
def knn_votes_multi(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    ks: Sequence[int],
    temperature: float = 0.07,
    n_classes: int | None = None,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> dict[int, torch.Tensor]:
    """:func:`knn_votes` for several k at once: one neighbour search with the largest k."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not ks or min(ks) < 1:
        raise ValueError(f"k must be >= 1, got {list(ks)}")
    if len(train_features) != len(train_labels):
        raise ValueError(f"{len(train_features)} training features but {len(train_labels)} labels")
    available = train_features.shape[0] - int(exclude_self)
    if available < 1:
        raise ValueError("no training features to vote")
    classes = n_classes or int(train_labels.max()) + 1
    train = F.normalize(train_features.float(), dim=1)
    query = F.normalize(query_features.float().to(train.device), dim=1)
    labels = train_labels.to(train.device).long()
    k_max = min(max(ks), available)
    votes = {k: torch.zeros(len(query), classes, device=train.device) for k in ks}
    for start in range(0, len(query), chunk):
        similarity = query[start : start + chunk] @ train.t()
        if exclude_self:
            rows = torch.arange(len(similarity), device=train.device)
            similarity[rows, rows + start] = -float("inf")
        top_sim, top_idx = similarity.topk(k_max, dim=1)  # sorted: nearest first
        weights = (top_sim / temperature).exp()
        neighbour_labels = labels[top_idx]
        for k in ks:
            kk = min(k, k_max)
            votes[k][start : start + len(similarity)].scatter_add_(1, neighbour_labels[:, :kk], weights[:, :kk])
    return votes


def topk_correct(votes: torch.Tensor, labels: torch.Tensor, top: int) -> torch.Tensor:
    """Per query: whether its label is among the ``top`` highest-voted classes."""
    top = min(top, votes.shape[1])
    ranked = votes.topk(top, dim=1).indices
    return (ranked == labels.to(votes.device).view(-1, 1)).any(dim=1)


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
    """Predicted labels: the class with the largest weighted vote among the k nearest training features."""
    votes = knn_votes(train_features, train_labels, query_features, k, temperature, n_classes, exclude_self)
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
    return float((predicted == query_labels.to(predicted.device)).float().mean())


def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    ks: Sequence[int] = (10, 20, 100, 200),
    temperature: float = 0.07,
    n_classes: int | None = None,
) -> dict[int, dict[str, float]]:
    """Top-1 and top-5 accuracy for each k."""
    votes = knn_votes_multi(train_features, train_labels, query_features, ks, temperature, n_classes)
    return {
        k: {
            "top1": float(topk_correct(v, query_labels, 1).float().mean()),
            "top5": float(topk_correct(v, query_labels, 5).float().mean()),
        }
        for k, v in votes.items()
    }


__all__: Sequence[str] = [
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "knn_scores",
    "knn_votes",
    "knn_votes_multi",
    "topk_correct",
]

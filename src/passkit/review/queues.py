"""Review queues: which kept images a reviewer sees, in which order.

* ``borderline``: every kept image, highest detector score first (the largest of ``humans_score``, ``pii_score``,
  ``nsfw_score`` present), so the images the filter was least sure of come first; images without scores last.
* ``audit``: the audit sample (:mod:`passkit.review.audit`), a uniform random sample of the kept set.
* ``all``: every kept image in key order.
"""

from __future__ import annotations

import hashlib
import math

from passkit.review.dataset import ReviewDataset

BORDERLINE, AUDIT, ALL = "borderline", "audit", "all"
QUEUES = (BORDERLINE, AUDIT, ALL)


def max_scores(dataset: ReviewDataset) -> list[float]:
    """Per kept row, the largest detector score it has (``-inf`` when it has none)."""
    columns = list(dataset.scores().values())
    result = []
    for position in range(len(dataset)):
        values = [column[position] for column in columns if column[position] is not None]
        result.append(max(values) if values else -math.inf)
    return result


def borderline_order(dataset: ReviewDataset) -> list[str]:
    scores = max_scores(dataset)
    order = sorted(range(len(dataset)), key=lambda i: (-scores[i], dataset.keys[i]))
    return [dataset.keys[i] for i in order]


def sample_rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"passkit-audit\0{seed}\0{key}".encode()).digest()


def uniform_sample(keys: list[str], size: int, seed: int) -> list[str]:
    """A uniform random sample without replacement of ``size`` keys, in random order.

    Keys are ranked by ``sha256(seed, key)`` (a pseudo-random permutation) and the first ``size`` taken: the same
    keys and seed always give the same sample, independent of the keys' order or of shard layout, and a sample of
    size n is the prefix of the sample of size n + 1.
    """
    if size < 0:
        raise ValueError(f"sample size must be >= 0, got {size}")
    return sorted(keys, key=lambda key: sample_rank(seed, key))[:size]


def build_queue(name: str, dataset: ReviewDataset, audit_keys: list[str] | None = None) -> list[str]:
    if name == BORDERLINE:
        return borderline_order(dataset)
    if name == ALL:
        return list(dataset.keys)
    if name == AUDIT:
        if audit_keys is None:
            raise ValueError("the audit queue needs the audit sample (passkit audit DIR draws it)")
        return [key for key in audit_keys if key in dataset]
    raise ValueError(f"unknown queue {name!r}; expected one of {', '.join(QUEUES)}")

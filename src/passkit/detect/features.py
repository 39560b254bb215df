"""Combiner features computed from what the manifest keeps: the top boxes of every pass and the image size.

A feature is named by a small grammar, so a fitted combiner states exactly what it reads:

- ``max:<pass>``                  best score of the pass (``<pass>`` = ``model@view``)
- ``rank2:<pass>``                second-best score of the pass
- ``count:<pass>:<t>``            boxes of the pass scoring >= t (of the kept top boxes)
- ``area:<pass>``                 log10 of the best box's area as a fraction of the image (-6 when none)
- ``agree:<passA>+<passB>``       best min(score_a, score_b) over boxes of A and B that overlap (IoU >= 0.3):
                                  two detectors (or two views) that see the same thing at the same place
- ``inside:<face pass>+<person pass>``  best min(face score, person score) over a face box whose centre lies
                                  in a person box: a face where a body is

Scores become logits (clipped at 1e-4), so a linear combiner over them is a product of odds. Every feature is a
function of the boxes of ``humans_boxes`` (top ``boxes_per_pass`` per pass), so stored manifest rows can be
re-decided later without models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-4
AGREE_IOU = 0.3
NO_BOX_AREA = -6.0
MAX_BOXES = 5  # features read at most the top 5 boxes of a pass (what the manifest keeps by default)


def logit(score: float | np.ndarray) -> float | np.ndarray:
    clipped = np.clip(score, EPS, 1 - EPS)
    return np.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class PassBoxes:
    """Boxes of one image, grouped by pass: pass -> list of (score, (x1, y1, x2, y2)), best first."""

    boxes: Mapping[str, Sequence[tuple[float, tuple[float, float, float, float]]]]
    width: int
    height: int

    @classmethod
    def from_records(cls, records: Iterable[Mapping], width: int, height: int) -> PassBoxes:
        """From ``humans_boxes`` records: ``{"by": pass, "score": s, "box": [x1, y1, x2, y2]}``."""
        grouped: dict[str, list[tuple[float, tuple[float, float, float, float]]]] = {}
        for record in records:
            x1, y1, x2, y2 = (float(v) for v in record["box"])
            grouped.setdefault(record["by"], []).append((float(record["score"]), (x1, y1, x2, y2)))
        for items in grouped.values():
            items.sort(key=lambda item: -item[0])
        size = max(1, int(float(width or 1))), max(1, int(float(height or 1)))
        return cls({f: items[:MAX_BOXES] for f, items in grouped.items()}, *size)

    @classmethod
    def from_scores(cls, scores: Mapping[str, float]) -> PassBoxes:
        """Only the best score of each pass (no geometry): enough for combiners that read ``max:`` features."""
        best = {f: float(s or 0.0) for f, s in scores.items()}
        return cls({f: [(s, (0.0, 0.0, 0.0, 0.0))] for f, s in best.items() if s > 0}, 1, 1)

    def of(self, feature: str) -> Sequence[tuple[float, tuple[float, float, float, float]]]:
        return self.boxes.get(feature, ())


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def feature_value(name: str, image: PassBoxes) -> float:
    """The value of feature ``name`` (see the module doc) on one image."""
    kind, _, arg = name.partition(":")
    if kind == "max" or kind == "rank2":
        boxes = image.of(arg)
        rank = 0 if kind == "max" else 1
        return float(logit(boxes[rank][0] if len(boxes) > rank else 0.0))
    if kind == "count":
        feature, _, threshold = arg.rpartition(":")
        return float(sum(score >= float(threshold) for score, _ in image.of(feature)))
    if kind == "area":
        boxes = image.of(arg)
        if not boxes:
            return NO_BOX_AREA
        x1, y1, x2, y2 = boxes[0][1]
        fraction = max(x2 - x1, 0.0) * max(y2 - y1, 0.0) / (image.width * image.height)
        return max(NO_BOX_AREA, math.log10(fraction)) if fraction > 0 else NO_BOX_AREA
    if kind in ("agree", "inside"):
        first, _, second = arg.partition("+")
        best = 0.0
        for score_a, box_a in image.of(first):
            if score_a <= best:
                break  # boxes are best first: nothing later can beat ``best``
            for score_b, box_b in image.of(second):
                if score_b <= best:
                    break
                if (iou(box_a, box_b) >= AGREE_IOU) if kind == "agree" else _centre_inside(box_a, box_b):
                    best = min(score_a, score_b)
                    break
        return float(logit(best))
    raise ValueError(f"unknown combiner feature {name!r}")


def check_feature(name: str) -> list[str]:
    """The passes a feature reads; raises ValueError for a malformed name."""
    kind, _, arg = name.partition(":")
    if kind in ("max", "rank2", "area"):
        passes = [arg]
    elif kind == "count":
        feature, _, threshold = arg.rpartition(":")
        float(threshold)
        passes = [feature]
    elif kind in ("agree", "inside"):
        passes = arg.split("+")
        if len(passes) != 2:
            raise ValueError(f"combiner feature {name!r}: needs two passes joined by '+'")
    else:
        raise ValueError(f"unknown combiner feature {name!r}")
    if not all("@" in p for p in passes):
        raise ValueError(f"combiner feature {name!r}: passes are model@view")
    return passes


def feature_matrix(names: Sequence[str], images: Sequence[PassBoxes]) -> np.ndarray:
    """One row per image, one column per feature."""
    return np.array([[feature_value(n, image) for n in names] for image in images], np.float64).reshape(
        len(images), len(names)
    )

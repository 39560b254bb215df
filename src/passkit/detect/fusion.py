"""Score fusion: a small logistic combiner over features of the per-pass detections.

p(person) = sigmoid(b + sum_i w_i * x_i), where the x_i are named features of the image's top boxes per pass
(:mod:`passkit.detect.features`: best score, second score, box counts and sizes, agreement of two passes at the same
place, a face inside a person box; scores enter as logits). A bare pass name (``yolox_nano@full``, the first format
of ``combiner.json``) means ``max:<pass>``. The image is flagged when p >= threshold, or when any single detector
reaches its own hard threshold (the OR-rule of the design: a detector that is sure on its own is never outvoted).
Coefficients, thresholds and the cross-validated figures they were fitted with ship in ``combiner.json`` beside this
file; they can be re-applied to stored boxes at any time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources

import numpy as np

from passkit.detect.features import EPS, PassBoxes, check_feature, feature_value, logit

__all__ = ["EPS", "Combiner", "logit", "shipped_combiners"]


def canonical_feature(name: str) -> str:
    """``model@view`` (first format) -> ``max:model@view``; other names unchanged (and checked)."""
    name = name if ":" in name else f"max:{name}"
    check_feature(name)
    return name


@dataclass(frozen=True)
class Combiner:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # on the fused probability
    rules: Mapping[str, float] = field(default_factory=dict)  # pass -> hard threshold on its own best score
    tasks: Mapping[str, str] = field(default_factory=dict)  # pass -> "person" | "face"
    cv: Mapping[str, object] = field(default_factory=dict)  # cross-validated figures of the fit (for reports)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(canonical_feature(f) for f in self.features))
        if len(self.features) != len(self.weights):
            raise ValueError(f"combiner: {len(self.features)} features but {len(self.weights)} weights")

    @cached_property
    def passes(self) -> tuple[str, ...]:
        """Every pass (model@view) the combiner reads, rules included, in first-use order."""
        seen: dict[str, None] = {}
        for name in self.features:
            seen.update(dict.fromkeys(check_feature(name)))
        seen.update(dict.fromkeys(self.rules))
        return tuple(seen)

    @cached_property
    def _baseline(self) -> np.ndarray:
        # Contributions are measured against an image where no detector found anything.
        return self.values(PassBoxes({}, 1, 1))

    def values(self, image: PassBoxes) -> np.ndarray:
        return np.array([feature_value(name, image) for name in self.features], np.float64)

    def probability(self, image: PassBoxes | Mapping[str, float]) -> float:
        image = as_image(image)
        z = self.intercept + float(self.values(image) @ np.asarray(self.weights))
        return 1.0 / (1.0 + math.exp(-min(max(z, -700.0), 700.0)))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Vectorised: ``matrix`` holds one row per image, one column of feature values per feature."""
        z = self.intercept + np.asarray(matrix, np.float64) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700.0, 700.0)))

    def decide(self, image: PassBoxes | Mapping[str, float], threshold: float | None = None) -> tuple[bool, float, str]:
        """(flagged, fused probability, pass that fired). A pass without boxes counts as score 0; a plain
        ``{pass: best score}`` mapping is enough for combiners that read only best scores."""
        image = as_image(image)
        threshold = self.threshold if threshold is None else threshold
        probability = self.probability(image)
        fired_rules = [(best(image, p) / t, p) for p, t in self.rules.items() if best(image, p) >= t]
        if fired_rules:
            return True, probability, max(fired_rules)[1]
        if probability >= threshold:
            return True, probability, self.top_contributor(image)
        return False, probability, ""

    def top_contributor(self, image: PassBoxes | Mapping[str, float]) -> str:
        """The pass behind the feature that raised the fused score most (its first pass for two-pass features)."""
        contributions = (self.values(as_image(image)) - self._baseline) * np.asarray(self.weights)
        return check_feature(self.features[int(np.argmax(contributions))])[0]

    def task_of(self, feature: str) -> str:
        return self.tasks.get(feature, "person")

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "weights": [round(w, 6) for w in self.weights],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 6),
            "rules": dict(self.rules),
            "tasks": dict(self.tasks),
            "cv": dict(self.cv),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Combiner:
        return cls(
            features=tuple(data["features"]),
            weights=tuple(float(w) for w in data["weights"]),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            rules={k: float(v) for k, v in data.get("rules", {}).items()},
            tasks=dict(data.get("tasks", {})),
            cv=dict(data.get("cv", {})),
        )


def as_image(image: PassBoxes | Mapping[str, float]) -> PassBoxes:
    if isinstance(image, PassBoxes):
        return image
    return PassBoxes.from_scores(image)


def best(image: PassBoxes, feature: str) -> float:
    boxes = image.of(feature)
    return boxes[0][0] if boxes else 0.0


def shipped_combiners() -> dict[str, Combiner]:
    """The combiners fitted on the development set, one per preset (``combiner.json`` in this package)."""
    text = resources.files("passkit.detect").joinpath("combiner.json").read_text(encoding="utf-8")
    return {name: Combiner.from_dict(data) for name, data in json.loads(text)["presets"].items()}

"""Score fusion: a small logistic combiner over the per-model, per-view maximum scores.

p(person) = sigmoid(b + sum_i w_i * logit(s_i)), with s_i clipped to [EPS, 1 - EPS]. The image is flagged when
p >= threshold, or when any single detector reaches its own hard threshold (the OR-rule of the design: a detector
that is sure on its own is never outvoted). Coefficients, thresholds and the cross-validated figures they were
fitted with ship in ``combiner.json`` beside this file; they can be re-applied to stored scores at any time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

EPS = 1e-4
BASELINE_SCORE = 0.01  # contributions are measured against "this detector saw almost nothing"


def logit(score: float | np.ndarray) -> float | np.ndarray:
    clipped = np.clip(score, EPS, 1 - EPS)
    return np.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class Combiner:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # on the fused probability
    rules: Mapping[str, float] = field(default_factory=dict)  # feature -> hard threshold on its own score
    tasks: Mapping[str, str] = field(default_factory=dict)  # feature -> "person" | "face"
    cv: Mapping[str, object] = field(default_factory=dict)  # cross-validated figures of the fit (for reports)

    def probability(self, scores: Mapping[str, float]) -> float:
        z = self.intercept + sum(
            w * float(logit(scores.get(f, 0.0))) for f, w in zip(self.features, self.weights, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Vectorised: ``matrix`` holds one row per image, one column per feature (in ``features`` order)."""
        z = self.intercept + logit(matrix) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-z))

    def decide(self, scores: Mapping[str, float], threshold: float | None = None) -> tuple[bool, float, str]:
        """(flagged, fused probability, feature that fired). Missing features count as score 0."""
        threshold = self.threshold if threshold is None else threshold
        probability = self.probability(scores)
        fired_rules = [(scores.get(f, 0.0) / t, f) for f, t in self.rules.items() if scores.get(f, 0.0) >= t]
        if fired_rules:
            return True, probability, max(fired_rules)[1]
        if probability >= threshold:
            return True, probability, self.top_contributor(scores)
        return False, probability, ""

    def top_contributor(self, scores: Mapping[str, float]) -> str:
        base = float(logit(BASELINE_SCORE))
        contributions = [
            (w * (float(logit(scores.get(f, 0.0))) - base), f) for f, w in zip(self.features, self.weights, strict=True)
        ]
        return max(contributions)[1]

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
        features = tuple(data["features"])
        weights = tuple(float(w) for w in data["weights"])
        if len(features) != len(weights):
            raise ValueError(f"combiner: {len(features)} features but {len(weights)} weights")
        return cls(
            features=features,
            weights=weights,
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            rules={k: float(v) for k, v in data.get("rules", {}).items()},
            tasks=dict(data.get("tasks", {})),
            cv=dict(data.get("cv", {})),
        )


def shipped_combiners() -> dict[str, Combiner]:
    """The combiners fitted on the development set, one per preset (``combiner.json`` in this package)."""
    text = resources.files("passkit.detect").joinpath("combiner.json").read_text(encoding="utf-8")
    return {name: Combiner.from_dict(data) for name, data in json.loads(text)["presets"].items()}

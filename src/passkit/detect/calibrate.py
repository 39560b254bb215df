"""Fitting and measuring the fused decision: recall / retention, thresholds for a target recall, threshold sweeps
and the cross-validated fit of the logistic combiner over named features of the detections. The shipped
coefficients are produced by ``benchmarks/human_filter_fit.py`` with these functions; the honest figures are the
cross-validated ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from passkit.detect.features import PassBoxes, feature_matrix
from passkit.detect.fusion import Combiner, best


@dataclass
class Figures:
    recall: float  # images with people that were flagged
    retention: float  # people-free images that were kept
    positives: int
    negatives: int
    caught: int
    kept: int

    def to_dict(self) -> dict:
        return {
            "recall": round(self.recall, 4),
            "retention": round(self.retention, 4),
            "positives": self.positives,
            "negatives": self.negatives,
            "caught": self.caught,
            "kept": self.kept,
        }


def figures(flagged: np.ndarray, labels: np.ndarray) -> Figures:
    flagged, labels = np.asarray(flagged, bool), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    caught, kept = int((flagged & labels).sum()), int((~flagged & ~labels).sum())
    return Figures(caught / max(positives, 1), kept / max(negatives, 1), positives, negatives, caught, kept)


def threshold_for_recall(
    probabilities: np.ndarray, labels: np.ndarray, recall: float, already: np.ndarray | None = None
) -> float:
    """The highest threshold that flags at least ``recall`` of the positives (``already``: flagged anyway)."""
    labels = np.asarray(labels, bool)
    already = np.zeros_like(labels) if already is None else np.asarray(already, bool)
    allowed_misses = int(np.floor((1.0 - recall) * labels.sum() + 1e-9))
    pending = np.sort(probabilities[labels & ~already])
    if len(pending) <= allowed_misses:
        return 1.0
    return float(pending[allowed_misses])


def rule_flags(images: list[PassBoxes], rules: dict[str, float]) -> np.ndarray:
    """Images flagged by an OR-rule alone (a pass whose best score reaches its own threshold)."""
    return np.array([any(best(image, p) >= t for p, t in rules.items()) for image in images], bool).reshape(-1)


def _fit_logistic(matrix: np.ndarray, labels: np.ndarray, regularisation: float) -> tuple[np.ndarray, float]:
    """L2 logistic regression on standardised features, coefficients mapped back to raw feature values."""
    from sklearn.linear_model import LogisticRegression

    mean, std = matrix.mean(axis=0), matrix.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=regularisation, max_iter=5000)
    model.fit((matrix - mean) / std, np.asarray(labels, int))
    weights = model.coef_[0] / std
    return weights, float(model.intercept_[0] - weights @ mean)


def fit_combiner(
    images: list[PassBoxes],
    labels: np.ndarray,
    features: list[str],
    target_recall: float,
    rules: dict[str, float] | None = None,
    tasks: dict[str, str] | None = None,
    regularisation: float = 1.0,
    threshold_folds: int = 5,
    seed: int = 0,
) -> Combiner:
    """Logistic regression over ``features`` (standardised, L2 strength 1/``regularisation``).

    The threshold is the highest that reaches ``target_recall`` on *out-of-fold* probabilities of the fitting data
    (``threshold_folds``-fold; 0 = in-sample): a threshold set on the very images the coefficients were fitted on
    is optimistic exactly where it matters, at the hardest positives.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, bool)
    rules = dict(rules or {})
    matrix = feature_matrix(features, images)
    weights, intercept = _fit_logistic(matrix, labels, regularisation)
    combiner = Combiner(tuple(features), tuple(float(w) for w in weights), intercept, 1.0, rules, dict(tasks or {}))
    if threshold_folds > 1:
        probabilities = np.zeros(len(labels))
        splitter = StratifiedKFold(n_splits=threshold_folds, shuffle=True, random_state=seed)
        for train, test in splitter.split(matrix, labels):
            w, b = _fit_logistic(matrix[train], labels[train], regularisation)
            probabilities[test] = 1.0 / (1.0 + np.exp(-np.clip(b + matrix[test] @ w, -700, 700)))
    else:
        probabilities = combiner.probabilities(matrix)
    threshold = threshold_for_recall(probabilities, labels, target_recall, rule_flags(images, rules))
    return Combiner(combiner.features, combiner.weights, combiner.intercept, threshold, rules, combiner.tasks)


def cross_validate(
    images: list[PassBoxes],
    labels: np.ndarray,
    features: list[str],
    target_recall: float,
    rules: dict[str, float] | None = None,
    regularisation: float = 1.0,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
    threshold_folds: int = 5,
) -> dict:
    """Repeated stratified k-fold: fit (coefficients and threshold) on k-1 folds, decide on the held-out fold.

    Returns pooled held-out recall/retention (mean, min and standard deviation over repeats), and per image the
    fraction of repeats in which it was missed / falsely flagged, so misses can be listed by file.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    labels = np.asarray(labels, bool)
    matrix = feature_matrix(features, images)
    rules = dict(rules or {})
    ruled = rule_flags(images, rules)
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    flagged = np.zeros((repeats, len(labels)), bool)
    for index, (train, test) in enumerate(splitter.split(matrix, labels)):
        combiner = fit_combiner(
            [images[i] for i in train],
            labels[train],
            features,
            target_recall,
            rules,
            regularisation=regularisation,
            threshold_folds=threshold_folds,
            seed=seed + index,
        )
        flagged[index // folds, test] = (combiner.probabilities(matrix[test]) >= combiner.threshold) | ruled[test]
    per_repeat = [figures(flagged[r], labels) for r in range(repeats)]
    recalls = np.array([f.recall for f in per_repeat])
    retentions = np.array([f.retention for f in per_repeat])
    return {
        "folds": folds,
        "repeats": repeats,
        "target_recall": target_recall,
        "threshold_folds": threshold_folds,
        "recall": round(float(recalls.mean()), 4),
        "recall_min": round(float(recalls.min()), 4),
        "recall_sd": round(float(recalls.std()), 4),
        "retention": round(float(retentions.mean()), 4),
        "retention_min": round(float(retentions.min()), 4),
        "retention_sd": round(float(retentions.std()), 4),
        "missed_fraction": (~flagged & labels[None, :]).mean(axis=0),
        "false_alarm_fraction": (flagged & ~labels[None, :]).mean(axis=0),
    }


def sweep(scores: np.ndarray, labels: np.ndarray, thresholds: list[float] | None = None) -> list[dict]:
    """ROC points of a score thresholded at each of ``thresholds`` (default: a log-spaced grid)."""
    if thresholds is None:
        thresholds = sorted(
            {round(float(t), 4) for t in np.concatenate([np.geomspace(0.001, 0.5, 16), np.linspace(0.5, 0.99, 8)])}
        )
    return [{"threshold": t, **figures(scores >= t, labels).to_dict()} for t in thresholds]

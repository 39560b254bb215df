"""Fitting and measuring the fused decision: recall / retention, thresholds for a target recall, threshold sweeps
and the cross-validated fit of the logistic combiner. The shipped coefficients are produced by
``benchmarks/human_filter_fit.py`` with these functions; the honest figures are the cross-validated ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from passkit.detect.fusion import Combiner, logit


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


def rule_flags(matrix: np.ndarray, features: list[str], rules: dict[str, float]) -> np.ndarray:
    flagged = np.zeros(len(matrix), bool)
    for feature, threshold in rules.items():
        flagged |= matrix[:, features.index(feature)] >= threshold
    return flagged


def fit_combiner(
    matrix: np.ndarray,
    labels: np.ndarray,
    features: list[str],
    target_recall: float,
    rules: dict[str, float] | None = None,
    tasks: dict[str, str] | None = None,
    regularisation: float = 1.0,
) -> Combiner:
    """Logistic regression on logit scores; threshold set on the fitting data for ``target_recall``."""
    from sklearn.linear_model import LogisticRegression

    rules = dict(rules or {})
    model = LogisticRegression(C=regularisation, max_iter=2000)
    model.fit(logit(matrix), np.asarray(labels, int))
    combiner = Combiner(
        tuple(features),
        tuple(float(w) for w in model.coef_[0]),
        float(model.intercept_[0]),
        1.0,
        rules,
        dict(tasks or {}),
    )
    probabilities = combiner.probabilities(matrix)
    threshold = threshold_for_recall(probabilities, labels, target_recall, rule_flags(matrix, features, rules))
    return Combiner(combiner.features, combiner.weights, combiner.intercept, threshold, rules, combiner.tasks)


def cross_validate(
    matrix: np.ndarray,
    labels: np.ndarray,
    features: list[str],
    target_recall: float,
    rules: dict[str, float] | None = None,
    regularisation: float = 1.0,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
) -> dict:
    """Repeated stratified k-fold: fit (coefficients and threshold) on k-1 folds, decide on the held-out fold.

    Returns pooled held-out recall/retention (mean and range over repeats) and, for the first repeat, the
    held-out flags, so misses can be listed by file.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    labels = np.asarray(labels, bool)
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    flagged = np.zeros((repeats, len(labels)), bool)
    fused = np.zeros((repeats, len(labels)))
    for index, (train, test) in enumerate(splitter.split(matrix, labels)):
        combiner = fit_combiner(
            matrix[train], labels[train], features, target_recall, rules, regularisation=regularisation
        )
        repeat = index // folds
        fused[repeat, test] = combiner.probabilities(matrix[test])
        flagged[repeat, test] = (fused[repeat, test] >= combiner.threshold) | rule_flags(
            matrix[test], features, combiner.rules
        )
    per_repeat = [figures(flagged[r], labels) for r in range(repeats)]
    recalls = [f.recall for f in per_repeat]
    retentions = [f.retention for f in per_repeat]
    return {
        "folds": folds,
        "repeats": repeats,
        "target_recall": target_recall,
        "recall": round(float(np.mean(recalls)), 4),
        "recall_min": round(float(np.min(recalls)), 4),
        "retention": round(float(np.mean(retentions)), 4),
        "retention_min": round(float(np.min(retentions)), 4),
        "flagged_first_repeat": flagged[0],
        "missed_fraction": (~flagged & labels[None, :]).mean(axis=0),
    }


def sweep(scores: np.ndarray, labels: np.ndarray, thresholds: list[float] | None = None) -> list[dict]:
    """ROC points of a score thresholded at each of ``thresholds`` (default: a log-spaced grid)."""
    if thresholds is None:
        thresholds = sorted(
            {round(float(t), 4) for t in np.concatenate([np.geomspace(0.001, 0.5, 16), np.linspace(0.5, 0.99, 8)])}
        )
    return [{"threshold": t, **figures(scores >= t, labels).to_dict()} for t in thresholds]

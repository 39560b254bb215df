"""Residual audit: a seeded uniform sample of the kept set, reviewed by people, and an exact upper bound.

The bound is the **one-sided** Clopper-Pearson ("exact") upper confidence limit for a binomial proportion: the
largest rate p for which seeing at most k images with people among n reviewed still has probability >= 1 - c,
i.e. ``P(X <= k | n, p) = 1 - c``, equal to the ``c`` quantile of Beta(k + 1, n - k). For k = 0 it is
``1 - (1 - c) ** (1 / n)`` (about 3 / n at c = 0.95, the "rule of three"). It is computed here without scipy:
the regularised incomplete beta function by its continued fraction, inverted by bisection.

The rate bounds the share of images with people in the filter's kept set; the review removes the ones it finds,
so the release holds at most that share.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from passkit.core.atomic import atomic_path
from passkit.core.reasons import REVIEW_HUMAN
from passkit.review.dataset import ReviewDataset
from passkit.review.queues import uniform_sample
from passkit.review.store import PROBLEM, REVIEW_FOLDER, DecisionStore

PLAN_FILE = "audit-plan.json"
REPORT_FILE = "audit.json"
DEFAULT_SAMPLE = 3000
DEFAULT_CONFIDENCE = 0.95


def _log_beta_front(x: float, a: float, b: float) -> float:
    return a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        two_m = 2 * m
        numerator = m * (b - m) * x / ((a + two_m - 1.0) * (a + two_m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        numerator = -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1.0))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < 1e-15:
            return result
    raise ArithmeticError(f"incomplete beta did not converge (x={x}, a={a}, b={b})")


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(_log_beta_front(x, a, b)) * _beta_continued_fraction(x, a, b) / a
    return 1.0 - math.exp(_log_beta_front(x, a, b)) * _beta_continued_fraction(1.0 - x, b, a) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """The q quantile of Beta(a, b): bisection on I_x(a, b) down to adjacent floats."""
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if regularized_beta(middle, a, b) < q:
            low = middle
        else:
            high = middle
    return high


def _check_counts(k: int, n: int, confidence: float) -> None:
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def clopper_pearson_upper(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided exact upper confidence bound on a binomial proportion after k successes in n trials."""
    _check_counts(k, n, confidence)
    if k == n:
        return 1.0
    if k == 0:
        return -math.expm1(math.log1p(-confidence) / n)
    return beta_quantile(confidence, k + 1, n - k)


def clopper_pearson_lower(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided exact lower confidence bound (the (1 - confidence) quantile of Beta(k, n - k + 1))."""
    _check_counts(k, n, confidence)
    if k == 0:
        return 0.0
    if k == n:
        return math.exp(math.log1p(-confidence) / n)
    return beta_quantile(1.0 - confidence, k, n - k + 1)


def format_percent(rate: float) -> str:
    """A rate as a percentage rounded *up* (a bound never printed smaller than it is), at least 2 decimals."""
    percent = rate * 100
    if percent <= 0:
        return "0%"
    decimals = max(2, -math.floor(math.log10(percent)))
    scale = 10**decimals
    return f"{math.ceil(percent * scale - 1e-9) / scale:.{decimals}f}%"


def statement(with_people: int, reviewed: int, upper: float, confidence: float) -> str:
    return (
        f"{with_people:,} of {reviewed:,} reviewed -> humans <= {format_percent(upper)} "
        f"at {confidence * 100:g}% confidence"
    )


@dataclass(frozen=True)
class AuditPlan:
    """The drawn audit sample, saved at ``DIR/review/audit-plan.json`` so that it stays fixed during review."""

    seed: int
    sample_size: int
    kept_total: int
    drawn: str
    keys: list[str]

    @staticmethod
    def path(directory: str | os.PathLike[str]) -> Path:
        return Path(directory) / REVIEW_FOLDER / PLAN_FILE

    @classmethod
    def draw(cls, dataset: ReviewDataset, sample_size: int, seed: int) -> AuditPlan:
        keys = uniform_sample(dataset.keys, sample_size, seed)
        drawn = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(seed, len(keys), len(dataset), drawn, keys)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> AuditPlan | None:
        path = cls.path(directory)
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(int(data["seed"]), int(data["sample_size"]), int(data["kept_total"]), data["drawn"], data["keys"])

    def save(self, directory: str | os.PathLike[str]) -> Path:
        path = self.path(directory)
        with atomic_path(path) as temp:
            temp.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        return path


class PlanMismatchError(ValueError):
    """The saved audit sample was drawn with another size or seed than asked for."""


def load_or_draw(
    directory: str | os.PathLike[str],
    dataset: ReviewDataset,
    sample_size: int | None = None,
    seed: int | None = None,
    *,
    redraw: bool = False,
) -> tuple[AuditPlan, bool]:
    """The saved audit plan, or a new one (saved) when there is none; returns ``(plan, drawn_now)``."""
    plan = None if redraw else AuditPlan.load(directory)
    if plan is not None:
        wanted_size = min(sample_size, plan.kept_total) if sample_size is not None else None
        if (wanted_size is not None and wanted_size != plan.sample_size) or (seed is not None and seed != plan.seed):
            raise PlanMismatchError(
                f"an audit sample of {plan.sample_size:,} (seed {plan.seed}) was drawn on {plan.drawn}; "
                "pass the same --sample/--seed, or --redraw to draw a new one (earlier decisions are kept)"
            )
        return plan, False
    size = DEFAULT_SAMPLE if sample_size is None else sample_size
    plan = AuditPlan.draw(dataset, size, 0 if seed is None else seed)
    plan.save(directory)
    return plan, True


def audit_report(
    plan: AuditPlan, store: DecisionStore, dataset: ReviewDataset, confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, Any]:
    """The audit result (contract of ``DIR/review/audit.json``) from the current decisions of the sample."""
    decisions = store.current()
    in_sample = [decisions[key] for key in plan.keys if key in decisions]
    reviewed = len(in_sample)
    per_reason: dict[str, int] = {}
    for decision in in_sample:
        if decision.label == PROBLEM:
            per_reason[decision.reason] = per_reason.get(decision.reason, 0) + 1
    with_people = per_reason.get(REVIEW_HUMAN, 0)
    problems = sum(per_reason.values())
    upper = clopper_pearson_upper(with_people, reviewed, confidence) if reviewed else 1.0
    return {
        "method": "clopper-pearson",
        "sided": "one-sided upper",
        "confidence": confidence,
        "seed": plan.seed,
        "kept_total": plan.kept_total,
        "sample_size": plan.sample_size,
        "reviewed": reviewed,
        "complete": reviewed == plan.sample_size,
        "with_people": with_people,
        "rate": with_people / reviewed if reviewed else None,
        "upper": upper,
        "problems": problems,
        "upper_any_problem": clopper_pearson_upper(problems, reviewed, confidence) if reviewed else 1.0,
        "per_reason": dict(sorted(per_reason.items())),
        "sample_no_longer_kept": sum(1 for key in plan.keys if key not in dataset),
        "drawn": plan.drawn,
        "statement": statement(with_people, reviewed, upper, confidence)
        if reviewed
        else f"not reviewed yet: 0 of {plan.sample_size:,} sampled images have a decision",
    }


def write_report(directory: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    path = Path(directory) / REVIEW_FOLDER / REPORT_FILE
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path

import json
import math
import re

import pytest
from typer.testing import CliRunner

from passkit.cli import app
from passkit.review.audit import (
    AuditPlan,
    PlanMismatchError,
    audit_report,
    clopper_pearson_lower,
    clopper_pearson_upper,
    format_percent,
    load_or_draw,
    regularized_beta,
)
from passkit.review.dataset import ReviewDataset
from passkit.review.queues import uniform_sample
from passkit.review.store import CLEAN, PROBLEM, DecisionStore
from review_helpers import make_review_dir

# One-sided 95% exact (Clopper-Pearson) upper limits, from Beta(k+1, n-k).ppf(0.95) (scipy 1.17, to 12 digits);
# 0/3000 and 0/10 also follow from the closed form 1 - 0.05 ** (1 / n).
UPPER_95 = [
    (0, 3000, 0.000998079012),
    (0, 10, 0.258865550893),
    (1, 10, 0.394163302437),
    (5, 100, 0.102253377643),
    (3, 3000, 0.002582505138),
    (50, 1000, 0.062863403512),
    (9, 10, 0.994883803108),
    (2, 1_000_000, 6.29578009921e-06),
]


@pytest.mark.parametrize(("k", "n", "expected"), UPPER_95)
def test_upper_bound_matches_reference_values(k, n, expected):
    assert clopper_pearson_upper(k, n) == pytest.approx(expected, rel=1e-9)


def test_zero_of_3000_is_the_papers_example():
    assert f"{clopper_pearson_upper(0, 3000):.4%}" == "0.0998%"
    assert format_percent(clopper_pearson_upper(0, 3000)) == "0.10%"


def test_bounds_against_scipy():
    stats = pytest.importorskip("scipy.stats", reason="scipy gives an independent reference")
    for n in (1, 2, 7, 30, 100, 1000, 3000, 100_000):
        for k in sorted({0, 1, 2, n // 10, n // 2, n - 1, n} & set(range(n + 1))):
            for confidence in (0.9, 0.95, 0.99):
                upper = 1.0 if k == n else stats.beta.ppf(confidence, k + 1, n - k)
                lower = 0.0 if k == 0 else stats.beta.ppf(1 - confidence, k, n - k + 1)
                assert clopper_pearson_upper(k, n, confidence) == pytest.approx(upper, rel=1e-9, abs=1e-15)
                assert clopper_pearson_lower(k, n, confidence) == pytest.approx(lower, rel=1e-9, abs=1e-15)
    assert regularized_beta(0.3, 2.5, 4.0) == pytest.approx(stats.beta.cdf(0.3, 2.5, 4.0), rel=1e-12)


def test_upper_bound_is_a_valid_confidence_limit():
    # At p = upper, seeing k or fewer has probability exactly 1 - confidence (the defining equation).
    for k, n in ((0, 50), (3, 40), (10, 200)):
        p = clopper_pearson_upper(k, n)
        tail = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
        assert tail == pytest.approx(0.05, rel=1e-9)


def test_bound_grows_with_k_and_shrinks_with_n():
    assert clopper_pearson_upper(0, 1000) < clopper_pearson_upper(1, 1000) < clopper_pearson_upper(2, 1000)
    assert clopper_pearson_upper(1, 1000) < clopper_pearson_upper(1, 100)
    assert clopper_pearson_upper(0, 1000, 0.99) > clopper_pearson_upper(0, 1000, 0.95)
    assert clopper_pearson_upper(5, 5) == 1.0 and clopper_pearson_lower(0, 5) == 0.0


@pytest.mark.parametrize(("k", "n", "confidence"), [(-1, 10, 0.95), (11, 10, 0.95), (0, 0, 0.95), (0, 10, 1.0)])
def test_bad_counts_are_refused(k, n, confidence):
    with pytest.raises(ValueError):
        clopper_pearson_upper(k, n, confidence)


def test_percent_is_rounded_up():
    assert format_percent(0.000998) == "0.10%"
    assert format_percent(0.0473) == "4.73%"
    assert format_percent(0.04731) == "4.74%"
    assert format_percent(3.1e-6) == "0.0004%"
    assert format_percent(0) == "0%"


def test_uniform_sample_is_seeded_stable_and_unbiased():
    keys = [f"k-{i:05d}" for i in range(20_000)]
    sample = uniform_sample(keys, 2000, seed=1)
    assert sample == uniform_sample(list(reversed(keys)), 2000, seed=1)  # independent of input order
    assert sample[:100] == uniform_sample(keys, 100, seed=1)  # a smaller sample is a prefix
    assert len(set(sample)) == 2000
    assert len(set(sample) & set(uniform_sample(keys, 2000, seed=2))) < 400  # ~200 expected by chance
    # Uniform over the population: each tenth of the keys gets ~200 of the 2000 (chi-square, 9 dof, p ~ 0.001).
    counts = [0] * 10
    for key in sample:
        counts[int(key[2:]) * 10 // 20_000] += 1
    chi2 = sum((c - 200) ** 2 / 200 for c in counts)
    assert chi2 < 27.9, counts
    assert uniform_sample(keys, 50_000, seed=0) == sorted(keys, key=lambda k: sample_rank_key(k))


def sample_rank_key(key):
    from passkit.review.queues import sample_rank

    return sample_rank(0, key)


def test_plan_is_drawn_once_and_kept(tmp_path):
    make_review_dir(tmp_path, kept=40)
    dataset = ReviewDataset.open(tmp_path)
    plan, drawn = load_or_draw(tmp_path, dataset, 10, 3)
    assert drawn and plan.sample_size == 10 and plan.kept_total == 40
    again, drawn_again = load_or_draw(tmp_path, dataset)
    assert not drawn_again and again == plan
    assert AuditPlan.load(tmp_path) == plan
    with pytest.raises(PlanMismatchError, match="--redraw"):
        load_or_draw(tmp_path, dataset, 20, 3)
    with pytest.raises(PlanMismatchError):
        load_or_draw(tmp_path, dataset, 10, 4)
    bigger, _ = load_or_draw(tmp_path, dataset, 500, 3, redraw=True)  # capped at the kept set: a census
    assert bigger.sample_size == 40
    assert load_or_draw(tmp_path, dataset, 500, 3)[0] == bigger


def test_report_counts_only_the_sample_and_follows_the_contract(tmp_path):
    make_review_dir(tmp_path, kept=40)
    dataset = ReviewDataset.open(tmp_path)
    plan, _ = load_or_draw(tmp_path, dataset, 20, 0)
    outside = next(key for key in dataset.keys if key not in plan.keys)
    with DecisionStore.for_dataset(tmp_path) as store:
        store.record(plan.keys[0], PROBLEM, "review:human", reviewer="ann", queue="audit")
        store.record(plan.keys[1], PROBLEM, "review:other", reviewer="ann", queue="audit")
        store.record_many(plan.keys[2:15], CLEAN, reviewer="ann", queue="audit")
        store.record(plan.keys[15], CLEAN, reviewer="ann", queue="audit")
        store.undo(plan.keys[15], reviewer="ann", queue="audit")
        store.record(outside, PROBLEM, "review:human", reviewer="ann", queue="borderline")
        report = audit_report(plan, store, dataset)
    for field in ("method", "confidence", "seed", "kept_total", "sample_size", "reviewed", "with_people", "rate"):
        assert field in report
    assert report["method"] == "clopper-pearson" and report["confidence"] == 0.95
    assert (report["kept_total"], report["sample_size"], report["reviewed"]) == (40, 20, 15)
    assert report["with_people"] == 1 and report["rate"] == pytest.approx(1 / 15)
    assert report["per_reason"] == {"review:human": 1, "review:other": 1}
    assert report["upper"] == pytest.approx(clopper_pearson_upper(1, 15))
    assert report["complete"] is False
    assert report["statement"] == f"1 of 15 reviewed -> humans <= {format_percent(report['upper'])} at 95% confidence"


@pytest.fixture
def wide_console(monkeypatch):
    from rich.console import Console

    from passkit import cli

    monkeypatch.setattr(cli, "console", Console(width=220))
    monkeypatch.setattr(cli, "err_console", Console(width=220, stderr=True))


def plain(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_audit_command_draws_then_reports(tmp_path, wide_console):
    make_review_dir(tmp_path, kept=30)
    runner = CliRunner()
    first = runner.invoke(app, ["audit", str(tmp_path), "--sample", "12", "--seed", "5"])
    assert first.exit_code == 0, first.output
    assert "drew an audit sample of 12 of 30" in plain(first.output)
    assert "12 sampled images to review" in plain(first.output)
    plan = AuditPlan.load(tmp_path)
    with DecisionStore.for_dataset(tmp_path) as store:
        store.record_many(plan.keys, CLEAN, reviewer="ann", queue="audit")
    second = runner.invoke(app, ["audit", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert "0 of 12 reviewed -> humans <= 22.10% at 95% confidence" in plain(second.output)
    written = json.loads((tmp_path / "review" / "audit.json").read_text())
    assert written["statement"] == "0 of 12 reviewed -> humans <= 22.10% at 95% confidence"
    assert written["upper"] == pytest.approx(1 - 0.05 ** (1 / 12))
    assert written["seed"] == 5 and written["complete"] is True
    mismatch = runner.invoke(app, ["audit", str(tmp_path), "--seed", "6"])
    assert mismatch.exit_code == 2 and "--redraw" in plain(mismatch.output)


def test_audit_command_on_a_folder_without_shards(tmp_path, wide_console):
    result = CliRunner().invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 2 and "no finished shards" in plain(result.output)

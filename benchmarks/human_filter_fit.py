"""Fit the human filter's score combiners on people-dev with cross-validation and write
``src/passkit/detect/combiner.json``.

Per-pass detections (the top boxes of each model @ view, as the manifest keeps them) are computed once with the
package's own detectors and cached outside the repository (``human_filter_cache.py``), so refitting never re-runs
models. For each preset two feature sets are compared by repeated stratified 5-fold cross-validation:

  max   logit of the best score of every pass (the first combiner)
  rich  + second-best score, number of boxes >= 0.1 and log relative area of the best box per person pass
        (area for face passes too)

Each is a logistic regression (features standardised, L2 with inverse strength --C) plus the OR-rules below; its
threshold is the highest that reaches --target-recall on *out-of-fold* probabilities of the fitting data. In the
cross-validation, coefficients AND threshold are refitted without the held-out fold: those are the honest figures.
Shipped: among the sets whose cross-validated recall meets 0.995, the one with the higher cross-validated
retention (the simpler one on a tie within one standard deviation). The frontier (other target recalls) of the
shipped set is printed too. A preset's zoom passes re-examine the candidates of its fixed person passes (cached the
same way); for such a preset the shipped set is also cross-validated without the zoom features, as the reference
of what the second look adds.

    python benchmarks/human_filter_fit.py [--write] [--repeats 10] [--C 0.03]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from human_filter_cache import DEV, compute, dev_files
from passkit.detect.calibrate import cross_validate, figures, fit_combiner, rule_flags
from passkit.detect.features import PassBoxes, check_feature, feature_matrix
from passkit.detect.presets import PRESETS
from passkit.detect.registry import get_entry

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "passkit" / "detect" / "combiner.json"

# A detector that is sure on its own is never outvoted (upstream operating points of YOLOX and YuNet).
RULES = {"yolox_nano@full": 0.5, "yunet@full": 0.9}
FITTED = ("fast", "default")
FRONTIER = (0.999, 0.995, 0.99, 0.98)
ISSUE_RECALL = 0.995  # the issue's recall target: a feature set must meet it in cross-validation to be preferred


def feature_sets(passes: list[str], tasks: dict[str, str]) -> dict[str, list[str]]:
    person = [p for p in passes if tasks[p] == "person"]
    best = [f"max:{p}" for p in passes]
    rich = best + [f"rank2:{p}" for p in person] + [f"count:{p}:0.1" for p in person] + [f"area:{p}" for p in passes]
    return {"max": best, "rich": rich}


def load_images(passes: list[str], files: list[str], decode_side: int, seeds: tuple[str, ...] = ()) -> list[PassBoxes]:
    """Cached boxes per photo; zoom passes re-examine the candidates of ``seeds`` (the preset's person passes)."""
    stored = {p: compute(p, decode_side, files, seeds=seeds if "@zoom" in p else ()) for p in passes}
    images = []
    for name in files:
        width, height = stored[passes[0]][name]["size"]
        # Scores rounded as in the manifest's humans_boxes, so the fit sees what rethreshold() will see.
        boxes = {p: [(round(b[0], 4), tuple(b[1:])) for b in stored[p][name]["boxes"]] for p in passes}
        images.append(PassBoxes(boxes, width, height))
    return images


def choose(results: dict[str, dict]) -> str:
    """The feature set to ship: among those whose CV recall meets the issue's target (all when none does), the one
    with the highest CV retention; the simpler (``max``) unless the other is better by more than one SD."""
    meeting = {k: cv for k, cv in results.items() if cv["recall"] >= ISSUE_RECALL} or results
    if len(meeting) == 1:
        return next(iter(meeting))
    plain, richer = meeting["max"], meeting["rich"]
    return "rich" if richer["retention"] - plain["retention"] > plain["retention_sd"] else "max"


def describe(cv: dict) -> str:
    return (
        f"recall {cv['recall']:.4f} (min {cv['recall_min']:.4f}, sd {cv['recall_sd']:.4f}) "
        f"retention {cv['retention']:.4f} (min {cv['retention_min']:.4f}, sd {cv['retention_sd']:.4f})"
    )


def missed_files(cv: dict, files: list[str]) -> list[tuple[str, float]]:
    """Photos with people missed in some CV repeat, with the fraction of repeats, most often missed first."""
    fractions = cv["missed_fraction"]
    return sorted(((files[i], fractions[i]) for i in np.flatnonzero(fractions > 0)), key=lambda item: -item[1])


def print_cv(label: str, cv: dict, files: list[str], shown: int = 4) -> None:
    """One CV result: ``label fitted for target: CV ...`` and the ``shown`` most often missed photos."""
    missed = missed_files(cv, files)
    print(f"{label} fitted for {cv['target_recall']}: CV {describe(cv)}", flush=True)
    print("    missed: " + ", ".join(f"{name} {fraction:.0%}" for name, fraction in missed[:shown]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-recall", type=float, default=0.999)
    parser.add_argument("--C", type=float, default=0.03, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    args = parser.parse_args()
    files, truth = dev_files()
    labels = np.array(truth)
    with (DEV / "labels.csv").open(newline="") as handle:
        smallest = {row["file"]: row["min_person_box_frac"] for row in csv.DictReader(handle)}
    presets = {}
    for name in FITTED:
        preset = PRESETS[name]
        passes = [p.feature for p in preset.passes]
        tasks = {p.feature: get_entry(p.model).task for p in preset.passes}
        images = load_images(passes, files, preset.decode_max_side, preset.zoom_seeds)
        rules = {f: t for f, t in RULES.items() if f in passes}
        results = {}
        for set_name, features in feature_sets(passes, tasks).items():
            cv = cross_validate(images, labels, features, args.target_recall, rules, args.C, repeats=args.repeats)
            results[set_name] = (features, cv)
            print(f"{name:8s} {set_name:5s} CV ({cv['folds']}-fold x {cv['repeats']}): {describe(cv)}", flush=True)
        chosen = choose({k: cv for k, (_, cv) in results.items()})
        zoom_passes = {p.feature for p in preset.passes if p.zoom}
        if zoom_passes:  # the same protocol without the zoom passes' features: what the second look adds
            without = [f for f in results[chosen][0] if not set(check_feature(f)) & zoom_passes]
            reference = cross_validate(images, labels, without, args.target_recall, rules, args.C, repeats=args.repeats)
            results_without_zoom = {m: reference[m] for m in ("recall", "retention", "retention_sd")}
            print(f"{name:8s} {chosen} without zoom passes ({len(without)}), reference: {describe(reference)}")
        features, cv = results[chosen]
        combiner = fit_combiner(images, labels, features, args.target_recall, rules, tasks, args.C)
        flagged = (combiner.probabilities(feature_matrix(features, images)) >= combiner.threshold) | rule_flags(
            images, rules
        )
        in_sample = figures(flagged, labels)
        rules_only = figures(rule_flags(images, rules), labels)
        print(
            f"{name:8s} shipped: {chosen} ({len(features)} features) | in-sample recall {in_sample.recall:.4f} "
            f"retention {in_sample.retention:.4f} | OR-rules alone recall {rules_only.recall:.4f} "
            f"retention {rules_only.retention:.4f} | threshold {combiner.threshold:.5f}"
        )
        for file, fraction in missed_files(cv, files):
            print(f"         missed in {fraction:.0%} of CV repeats: {file} (smallest person box {smallest[file]})")
        frontier = {}
        for target in FRONTIER:
            point = cv if target == args.target_recall else None
            point = point or cross_validate(images, labels, features, target, rules, args.C, repeats=args.repeats)
            frontier[str(target)] = {k: point[k] for k in ("recall", "recall_min", "retention", "retention_min")}
            print(f"         frontier: fitted for recall {target}: CV {describe(point)}", flush=True)
        data = combiner.to_dict()
        data["cv"] = {k: v for k, v in cv.items() if k not in ("missed_fraction", "false_alarm_fraction")}
        data["cv"].update(
            feature_set=chosen,
            compared={
                **{k: {m: r[1][m] for m in ("recall", "retention", "retention_sd")} for k, r in results.items()},
                **({f"{chosen} without zoom": results_without_zoom} if zoom_passes else {}),
            },
            frontier=frontier,
            in_sample_recall=round(in_sample.recall, 4),
            in_sample_retention=round(in_sample.retention, 4),
            regularisation_C=args.C,
            dataset="people-dev (569 COCO photos: 294 with people, 275 without)",
        )
        presets[name] = data
    if args.write:
        OUT.write_text(json.dumps({"format": 2, "presets": presets}, indent=2) + "\n")
        print(f"wrote {OUT}")
    elif not presets:
        sys.exit("nothing fitted")


if __name__ == "__main__":
    main()

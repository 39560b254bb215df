"""Fit the human filter's score combiners on people-dev with cross-validation and write
``src/passkit/detect/combiner.json``.

For every pass (model @ view) of the presets, the per-image maximum score is computed once with the package's own
detectors and cached under ``--cache`` (outside the repository), so refitting never re-runs models. Each preset's
combiner is a logistic regression over logit(max score) of its passes, plus the OR-rules below; its threshold is
the highest one that reaches ``--target-recall`` on the fitting data. The figures written next to the coefficients
are repeated stratified 5-fold cross-validated ones (coefficients AND threshold refitted without the held-out fold):
those are the honest numbers, not the in-sample ones.

    python benchmarks/human_filter_fit.py [--cache /tmp/passkit-human-cache] [--write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from passkit.detect.calibrate import cross_validate, figures, fit_combiner, rule_flags
from passkit.detect.ensemble import Ensemble, Pass
from passkit.detect.image import decode_for_detection
from passkit.detect.presets import PRESETS
from passkit.detect.registry import get_entry

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
OUT = REPO / "src" / "passkit" / "detect" / "combiner.json"

# A detector that is sure on its own is never outvoted (upstream operating points of YOLOX and YuNet).
RULES = {"yolox_nano@full": 0.5, "yunet@full": 0.9}
FITTED = ("fast", "default")


def pass_scores(item: Pass, files: list[str], decode_side: int, cache: Path) -> np.ndarray:
    path = cache / f"{item.model}@{item.view}@{decode_side}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if all(name in stored for name in files):
            return np.array([stored[name] for name in files], np.float32)
    ensemble = Ensemble([item], threads=int(os.environ.get("PASSKIT_THREADS", "1")))
    stored = {}
    for index, name in enumerate(files):
        image = decode_for_detection((DEV / "images" / name).read_bytes(), decode_side)
        stored[name] = ensemble.detect_views(image, item).max_score
        if index % 100 == 0:
            print(f"  {item.feature}: {index}/{len(files)}", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    return np.array([stored[name] for name in files], np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/passkit-human-cache"))
    parser.add_argument("--target-recall", type=float, default=0.999)
    parser.add_argument("--C", type=float, default=0.03, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    args = parser.parse_args()
    if not (DEV / "labels.csv").is_file():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    with (DEV / "labels.csv").open(newline="") as handle:
        labeled = list(csv.DictReader(handle))
    files = [row["file"] for row in labeled]
    labels = np.array([row["has_person"] == "1" for row in labeled])
    presets = {}
    for name in FITTED:
        preset = PRESETS[name]
        features = [p.feature for p in preset.passes]
        matrix = np.stack([pass_scores(p, files, preset.decode_max_side, args.cache) for p in preset.passes], axis=1)
        rules = {f: t for f, t in RULES.items() if f in features}
        tasks = {p.feature: get_entry(p.model).task for p in preset.passes}
        cv = cross_validate(matrix, labels, features, args.target_recall, rules, args.C, repeats=args.repeats)
        combiner = fit_combiner(matrix, labels, features, args.target_recall, rules, tasks, args.C)
        flagged = (combiner.probabilities(matrix) >= combiner.threshold) | rule_flags(matrix, features, rules)
        in_sample = figures(flagged, labels)
        rules_only = figures(rule_flags(matrix, features, rules), labels)
        often_missed = [files[i] for i in np.flatnonzero(cv["missed_fraction"] > 0.5)]
        print(
            f"{name:8s} CV ({cv['folds']}-fold x {cv['repeats']}): recall {cv['recall']:.4f} "
            f"(min {cv['recall_min']:.4f}) retention {cv['retention']:.4f} (min {cv['retention_min']:.4f}) | "
            f"in-sample recall {in_sample.recall:.4f} "
            f"retention {in_sample.retention:.4f} | OR-rules alone recall {rules_only.recall:.4f} "
            f"retention {rules_only.retention:.4f} | threshold {combiner.threshold:.4f}"
        )
        print(f"         missed in most CV repeats: {', '.join(often_missed) or '-'}")
        for feature, weight in zip(features, combiner.weights, strict=True):
            print(f"         {feature:28s} w={weight:+.3f}")
        data = combiner.to_dict()
        data["cv"] = {k: v for k, v in cv.items() if k not in ("flagged_first_repeat", "missed_fraction")}
        data["cv"].update(
            in_sample_recall=round(in_sample.recall, 4),
            in_sample_retention=round(in_sample.retention, 4),
            regularisation_C=args.C,
            dataset="people-dev (569 COCO photos: 294 with people, 275 without)",
        )
        presets[name] = data
    if args.write:
        OUT.write_text(json.dumps({"format": 1, "presets": presets}, indent=2) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

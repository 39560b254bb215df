"""What the PII and NSFW stages do on people-dev (569 real COCO photos), and how many NSFW detections survive the
human filter.

  pii    rejections of the default config (plates) and of the opt-in text rule, split by the photo's person label;
  nsfw   open_nsfw scores of every photo; for those at or above the lowest reported threshold the human filter
         (preset `default`) is run too, and the detections it would NOT remove are counted per threshold.

    python benchmarks/pii_nsfw_dev.py [--thresholds 0.2,0.5,0.8] [--list]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

from passkit.core.sample import Sample
from passkit.stages.humans import HumansConfig, humans_stage
from passkit.stages.nsfw import NsfwConfig, nsfw_stage
from passkit.stages.pii import PiiConfig, pii_stage

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", default="0.2,0.5,0.8")
    parser.add_argument("--list", action="store_true", help="print the files behind every count")
    args = parser.parse_args()
    if not (DEV / "labels.csv").is_file():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    with (DEV / "labels.csv").open(newline="") as handle:
        labels = {row["file"]: int(row["has_person"]) for row in csv.DictReader(handle)}
    samples = [Sample(name.removesuffix(".jpg"), {"jpg": (DEV / "images" / name).read_bytes()}) for name in labels]
    person = {name.removesuffix(".jpg"): has for name, has in labels.items()}
    print(f"people-dev: {len(samples)} photos, {sum(person.values())} with people")

    for title, cfg in (("pii default (plates)", PiiConfig()), ("pii with --pii-text", PiiConfig(text=True))):
        rows = pii_stage(samples, cfg).rows.to_pylist()
        counts = Counter((row["reason"] or "kept", person[row["key"]]) for row in rows)
        for reason in sorted({reason for reason, _ in counts}):
            print(f"{title:24s} {reason:10s} with people {counts[(reason, 1)]:4d}   without {counts[(reason, 0)]:4d}")
            if args.list and reason != "kept":
                print("   ", ", ".join(sorted(r["key"] for r in rows if r["reason"] == reason)))

    thresholds = sorted(float(value) for value in args.thresholds.split(","))
    scores = {row["key"]: row["nsfw_score"] for row in nsfw_stage(samples, NsfwConfig(threshold=1.0)).rows.to_pylist()}
    flagged = [s for s in samples if scores[s.key] is not None and scores[s.key] >= thresholds[0]]
    humans_kept = {s.key for s in humans_stage(flagged, HumansConfig()).kept}
    print(f"{'nsfw threshold':>14s} {'detections':>10s} {'labelled people':>15s} {'survive humans':>14s}")
    for threshold in thresholds:
        hits = [s.key for s in flagged if scores[s.key] >= threshold]
        survivors = [key for key in hits if key in humans_kept]
        print(f"{threshold:14.2f} {len(hits):10d} {sum(person[k] for k in hits):15d} {len(survivors):14d}")
        if args.list:
            print("    survivors:", ", ".join(f"{key} ({scores[key]:.3f})" for key in survivors) or "-")


if __name__ == "__main__":
    main()

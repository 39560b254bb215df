"""The human filter on people-dev (real labeled COCO photos): recall, retention and misses per preset.

Runs the humans stage end to end (decoding, views, models, fusion) on every photo. The combiners were fitted on
these photos, so the figures measured here are in-sample; the honest estimate for unseen photos is the
cross-validated one stored with the coefficients (printed beside them), from benchmarks/human_filter_fit.py.

    python benchmarks/human_filter_dev.py [--presets fast,default] [--threads 1] [--json report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from passkit.detect.decisions import detect_files, evaluate, read_labels
from passkit.detect.presets import get_preset

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))
TARGET_RECALL, TARGET_RETENTION = 0.995, 0.80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="fast,default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the full reports (with sweeps) here")
    args = parser.parse_args()
    if not (DEV / "labels.csv").is_file():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    labels = read_labels(DEV / "labels.csv")
    files = [DEV / "images" / name for name in sorted(labels)]
    reports = {}
    for name in args.presets.split(","):
        began = time.perf_counter()
        rows = detect_files(files, preset=name, threads=args.threads, device="cpu")
        seconds = time.perf_counter() - began
        report = evaluate(rows, labels, preset=name)
        cv = get_preset(name).combiner().cv
        reports[name] = {**report, "cross_validated": cv, "seconds": round(seconds, 1)}
        meets = report["recall"] >= TARGET_RECALL and report["retention"] >= TARGET_RETENTION
        print(
            f"{name:8s} measured (in-sample): recall {report['recall']:.4f} ({report['caught']}/{report['positives']}) "
            f"retention {report['retention']:.4f} ({report['kept']}/{report['negatives']}) "
            f"[target {TARGET_RECALL}/{TARGET_RETENTION}: {'met' if meets else 'NOT met'}] "
            f"{len(files) / seconds:.2f} img/s"
        )
        print(
            f"{'':8s} cross-validated ({cv.get('folds')}-fold x {cv.get('repeats')}): recall {cv.get('recall')} "
            f"(min {cv.get('recall_min')}) retention {cv.get('retention')} (min {cv.get('retention_min')})"
        )
        print(f"{'':8s} misses: {', '.join(report['misses']) or '-'}")
        print(f"{'':8s} false alarms: {len(report['false_alarms'])}; unreadable: {len(report['unreadable'])}")
    print("baseline (issue 6): single-pass OR-ensemble YOLOX-Nano >= 0.5 or YuNet >= 0.7: recall 0.88, retention 0.975")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()

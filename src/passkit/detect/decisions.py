"""``passkit detect`` / ``detect-eval``: the human filter on any folder of images, one decision row per image, and
its evaluation against labels (recall, retention, misses by file, threshold sweep)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from passkit.core.atomic import atomic_path
from passkit.core.sample import IMAGE_EXTENSIONS, Sample
from passkit.detect.calibrate import figures
from passkit.detect.presets import get_preset

DECISION_COLUMNS = ("file", "has_person", "score", "reason")  # contract; detail columns follow


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Image files among ``paths`` (folders searched recursively), sorted, each once."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    return sorted(found)


def detect_files(
    files: list[Path],
    preset: str = "default",
    threads: int = 1,
    device: str = "auto",
    threshold: float | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One decision row per file: ``file, has_person, score, reason`` then ``by``, per-pass scores and boxes."""
    from passkit.stages.humans import HumansConfig, humans_stage

    cfg = HumansConfig(preset=preset, threads=threads, device=device, threshold=threshold)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        samples = []
        for offset, path in enumerate(chunk):
            ext = path.suffix.lower().lstrip(".")
            ext = ext if ext in IMAGE_EXTENSIONS else "jpg"
            samples.append(Sample(f"img-{start + offset:08d}", {ext: path.read_bytes()}))
        result = humans_stage(samples, cfg)
        for path, row in zip(chunk, result.rows.to_pylist(), strict=True):
            flagged = row["reason"].startswith("humans:")
            detail = {k: v for k, v in row.items() if k not in ("key", "status", "reason")}
            rows.append(
                {
                    "file": str(path),
                    "has_person": int(flagged),
                    "score": row["humans_score"],
                    "reason": row["reason"],
                    **detail,
                }
            )
        if progress is not None:
            progress(len(chunk))
    return rows


def write_decisions(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(DECISION_COLUMNS) + [c for c in (rows[0] if rows else {}) if c not in DECISION_COLUMNS]
    with atomic_path(path) as tmp, Path(tmp).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def read_labels(path: Path) -> dict[str, bool]:
    """``file,has_person`` (more columns allowed) -> {file name: has a person}."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file", "has_person"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: labels need the columns file,has_person")
        labels = {}
        for line, row in enumerate(reader, start=2):
            value = row["has_person"].strip().lower()
            if value not in ("0", "1", "true", "false", "yes", "no"):
                raise ValueError(f"{path}:{line}: has_person must be 0/1, got {row['has_person']!r}")
            labels[row["file"]] = value in ("1", "true", "yes")
    return labels


def evaluate(rows: list[dict[str, Any]], labels: dict[str, bool], preset: str = "default") -> dict[str, Any]:
    """Recall (images with people flagged), retention (people-free images kept), misses, false alarms, and the
    sweep of the fused threshold (the preset's OR-rules stay on) — for rows whose file name is labeled."""
    from passkit.stages.humans import row_boxes

    combiner = get_preset(preset).combiner()
    labeled = [(row, labels[Path(row["file"]).name]) for row in rows if Path(row["file"]).name in labels]
    if not labeled:
        raise ValueError("no decision row matches a labeled file name")
    unreadable = [Path(r["file"]).name for r, _ in labeled if r["reason"] and not r["reason"].startswith("humans:")]
    truth = np.array([label for _, label in labeled])
    flagged = np.array([row["has_person"] == 1 for row, _ in labeled])
    images = [row_boxes(row) for row, _ in labeled]
    thresholds = sorted({combiner.threshold, *np.round(np.geomspace(0.002, 0.9, 20), 4).tolist()})
    sweep = []
    for threshold in thresholds:
        swept = np.array([combiner.decide(image, threshold)[0] for image in images])
        sweep.append({"threshold": threshold, **figures(swept, truth).to_dict()})
    result = figures(flagged, truth)
    return {
        "preset": preset,
        "threshold": rows[0].get("humans_threshold"),
        **result.to_dict(),
        "misses": sorted(Path(r["file"]).name for (r, t), f in zip(labeled, flagged, strict=True) if t and not f),
        "false_alarms": sorted(Path(r["file"]).name for (r, t), f in zip(labeled, flagged, strict=True) if f and not t),
        "unreadable": sorted(unreadable),
        "unlabeled": len(rows) - len(labeled),
        "sweep": sweep,
    }


def dump_json(path: Path, report: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

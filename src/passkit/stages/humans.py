"""The human filter stage: no person may survive into a release.

Each image is decoded at reduced size (JPEG draft), every pass of the preset's ensemble runs on its views (the whole
image and overlapping tiles), and the fused decision rejects with ``humans:person:<feature>`` or
``humans:face:<feature>``. Every per-model, per-view maximum score, the fused probability and the top boxes are kept
as measured columns, so thresholds can be re-applied to a manifest without re-running models (:func:`rethreshold`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from passkit.core import reasons
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.detect.ensemble import Ensemble, Pass
from passkit.detect.features import MAX_BOXES, PassBoxes
from passkit.detect.fusion import Combiner
from passkit.detect.image import ImageBombError, ImageDecodeError, decode_for_detection
from passkit.detect.presets import get_preset

SCORE_PREFIX = "humans_max__"  # + feature, e.g. humans_max__yolox_nano@tiles2


@dataclass(frozen=True)
class HumansConfig:
    preset: str = "default"  # fast | default | strong
    threshold: float | None = None  # fused-probability threshold; None = the preset's calibrated one
    threads: int = 1  # onnxruntime intra-op threads per process
    device: str = "auto"  # auto (CUDA when onnxruntime offers it) | cpu | cuda
    boxes_per_pass: int = MAX_BOXES  # boxes kept in the manifest per model and view (the combiner reads 5)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.boxes_per_pass < MAX_BOXES:
            raise ValueError(
                f"humans boxes_per_pass {self.boxes_per_pass} < {MAX_BOXES}: the combiner reads the top {MAX_BOXES} "
                "boxes of each pass, and the manifest must keep them so decisions can be re-made"
            )
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"humans threshold {self.threshold} must lie in [0, 1]")


@lru_cache(maxsize=4)
def _ensemble(passes: tuple[Pass, ...], threads: int, device: str, boxes_per_pass: int) -> Ensemble:
    """Models are loaded once per worker process (results never depend on this cache)."""
    return Ensemble(list(passes), threads=threads, device=device, boxes_per_pass=boxes_per_pass)


def score_column(feature: str) -> str:
    return SCORE_PREFIX + feature


def reason_for(combiner: Combiner, feature: str) -> str:
    base = reasons.HUMANS_FACE if combiner.task_of(feature) == "face" else reasons.HUMANS_PERSON
    return f"{base}:{feature.replace('@', '.')}"


def humans_stage(batch: list[Sample], cfg: HumansConfig) -> StageResult[list[Sample]]:
    """Reject every sample whose image shows a person or a face; one row per input sample."""
    preset = get_preset(cfg.preset)
    combiner = preset.combiner()
    ensemble = _ensemble(preset.passes, cfg.threads, cfg.device, cfg.boxes_per_pass)
    threshold = combiner.threshold if cfg.threshold is None else cfg.threshold
    kept: list[Sample] = []
    rows: list[dict[str, Any]] = []
    for sample in batch:
        row = _empty_row(sample.key, ensemble.features, cfg.preset, threshold)
        ext = sample.image_ext()
        try:
            if ext is None:
                raise ImageDecodeError("sample has no image part")
            image = decode_for_detection(sample.parts[ext], preset.decode_max_side)
        except ImageBombError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_BOMB, "humans_error": str(error)[:300]})
            continue
        except ImageDecodeError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_CORRUPT, "humans_error": str(error)[:300]})
            continue
        output = ensemble(image)
        records = [box.to_dict() for box in output.boxes]
        # The decision reads the boxes exactly as the manifest stores them, so rethreshold() reproduces it.
        boxes = PassBoxes.from_records(records, image.width, image.height)
        flagged, probability, fired = combiner.decide(boxes, threshold)
        row.update({score_column(f): round(s, 5) for f, s in output.scores.items()})
        row.update(
            width=image.width,
            height=image.height,
            humans_score=round(probability, 5),
            humans_by=fired,
            humans_boxes=json.dumps(records, separators=(",", ":")),
        )
        if flagged:
            row.update(status=REJECTED, reason=reason_for(combiner, fired))
        else:
            kept.append(sample)
        rows.append(row)
    return StageResult(kept=kept, rows=_table(rows, ensemble.features))


def _empty_row(key: str, features: list[str], preset: str, threshold: float) -> dict[str, Any]:
    return {
        "key": key,
        "status": KEPT,
        "reason": "",
        "width": None,
        "height": None,
        "humans_preset": preset,
        "humans_threshold": threshold,
        "humans_score": None,
        "humans_by": "",
        **{score_column(f): None for f in features},
        "humans_boxes": "[]",
        "humans_error": "",
    }


def _table(rows: list[dict[str, Any]], features: list[str]) -> pa.Table:
    schema = pa.schema(
        [
            ("key", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("humans_preset", pa.string()),
            ("humans_threshold", pa.float64()),
            ("humans_score", pa.float64()),
            ("humans_by", pa.string()),
            *[(score_column(f), pa.float32()) for f in features],
            ("humans_boxes", pa.string()),
            ("humans_error", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def row_boxes(row: dict[str, Any]) -> PassBoxes:
    """The detections of a stored humans row (``humans_boxes``, ``width``, ``height``), as the combiner reads them.

    Rows written before boxes were stored fall back to the per-pass best scores (``humans_max__*``)."""
    records = json.loads(row.get("humans_boxes") or "[]")
    if records:
        return PassBoxes.from_records(records, row.get("width") or 1, row.get("height") or 1)
    return PassBoxes.from_scores(
        {name.removeprefix(SCORE_PREFIX): v or 0.0 for name, v in row.items() if name.startswith(SCORE_PREFIX)}
    )


def rethreshold(rows: pa.Table, preset: str = "default", threshold: float | None = None) -> pa.Table:
    """Re-apply the preset's fused decision to stored humans rows at a new threshold, without running models.

    Rows rejected for another reason (``image:corrupt``...) are left as they are.
    """
    combiner = get_preset(preset).combiner()
    threshold = combiner.threshold if threshold is None else threshold
    out = []
    for row in rows.to_pylist():
        if row["reason"] and not row["reason"].startswith("humans:"):
            out.append(row)
            continue
        flagged, probability, fired = combiner.decide(row_boxes(row), threshold)
        row.update(
            humans_score=round(probability, 5),
            humans_threshold=threshold,
            humans_by=fired,
            status=REJECTED if flagged else KEPT,
            reason=reason_for(combiner, fired) if flagged else "",
        )
        out.append(row)
    return pa.Table.from_pylist(out, schema=rows.schema)

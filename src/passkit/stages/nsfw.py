"""The NSFW stage (optional, off by default): Yahoo's open_nsfw classifier scores every image; a score at or above
``threshold`` rejects it with ``nsfw``. The score is kept as ``nsfw_score`` for review and re-thresholding.

Most explicit photos show people and are already removed by the human filter, which runs first; this stage is a
second, independent net for what the detectors miss (see docs/pii-nsfw.md for the measured overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from passkit.core import reasons
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.detect.image import ImageBombError, ImageDecodeError, decode_for_detection
from passkit.detect.nsfw import NsfwClassifier

DECODE_MAX_SIDE = 512  # JPEG draft decoding down to >= 256 px, the classifier's resize


@dataclass(frozen=True)
class NsfwConfig:
    model: str = "open_nsfw"
    threshold: float = 0.5  # P(nsfw); the upstream guidance reads < 0.2 as safe and > 0.8 as explicit
    jpeg_roundtrip: bool = True  # as the reference pre-processing (scores then match it)
    threads: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"nsfw threshold {self.threshold} must lie in [0, 1]")


@lru_cache(maxsize=2)
def _classifier(model: str, threads: int, device: str, jpeg_roundtrip: bool) -> NsfwClassifier:
    """Loaded once per worker process (results never depend on this cache)."""
    return NsfwClassifier.load(model, threads=threads, device=device, jpeg_roundtrip=jpeg_roundtrip)


def nsfw_stage(batch: list[Sample], cfg: NsfwConfig) -> StageResult[list[Sample]]:
    """Reject samples whose NSFW probability reaches the threshold; one row per input sample."""
    classifier = _classifier(cfg.model, cfg.threads, cfg.device, cfg.jpeg_roundtrip)
    kept: list[Sample] = []
    rows: list[dict[str, Any]] = []
    for sample in batch:
        row: dict[str, Any] = {"key": sample.key, "status": KEPT, "reason": "", "nsfw_score": None, "nsfw_error": ""}
        ext = sample.image_ext()
        try:
            if ext is None:
                raise ImageDecodeError("sample has no image part")
            image = decode_for_detection(sample.parts[ext], DECODE_MAX_SIDE)
        except ImageBombError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_BOMB, "nsfw_error": str(error)[:300]})
            continue
        except ImageDecodeError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_CORRUPT, "nsfw_error": str(error)[:300]})
            continue
        score = classifier(image.pixels)
        row["nsfw_score"] = round(score, 5)
        if score >= cfg.threshold:
            row.update(status=REJECTED, reason=reasons.NSFW)
        else:
            kept.append(sample)
        rows.append(row)
    return StageResult(kept=kept, rows=pa.Table.from_pylist(rows, schema=SCHEMA))


def rethreshold(rows: pa.Table, threshold: float) -> pa.Table:
    """Re-apply the NSFW decision to stored rows at a new threshold (rows rejected for other reasons untouched)."""
    out = []
    for row in rows.to_pylist():
        if (row["reason"] and row["reason"] != reasons.NSFW) or row.get("nsfw_score") is None:
            out.append(row)
            continue
        flagged = row["nsfw_score"] >= threshold
        row.update(status=REJECTED if flagged else KEPT, reason=reasons.NSFW if flagged else "")
        out.append(row)
    return pa.Table.from_pylist(out, schema=rows.schema)


SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("nsfw_score", pa.float64()),
        ("nsfw_error", pa.string()),
    ]
)

"""The PII stage: licence plates (on by default) and document-like or handwritten text (off by default).

A DBNet-style scene-text detector finds text lines (rotated boxes with a text score); rules on their geometry decide:

* ``pii:plate`` — a line shaped like a licence plate's registration: aspect ``plate_aspect``, roughly horizontal,
  text height within ``plate_height`` of the image's short side, dense (``plate_min_fill``), not one line of a block
  of lines of its own height (signs and pages are blocks), and — with ``plate_read`` — a recognised string that reads
  like a registration (4-10 characters, upper-case letters and at least two digits, nothing but separators between).
  The score is detector score × recognition confidence.
* ``pii:text`` — a page, a letter, a notebook, a whiteboard: at least ``text_min_lines`` small lines covering at least
  ``text_min_area`` of the image, or any text covering ``text_max_area``. PASS kept signs and shop fronts, so this
  rule is off unless ``text=True``.

The recognised characters themselves are never written anywhere (they are the personal data this stage removes);
the manifest keeps the scores, the text area and the boxes for review and re-thresholding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from passkit.core import reasons
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.detect.image import ImageBombError, ImageDecodeError, decode_for_detection
from passkit.detect.textdet import TextDetector, TextRecognizer, TextRegion

PLATE_SEPARATORS = re.compile(r"[\s\-·•.:_]+")
PLATE_CHARS = re.compile(r"^[A-Z0-9]+$")


@dataclass(frozen=True)
class PiiConfig:
    plate: bool = True  # reject licence-plate-like text (pii:plate)
    text: bool = False  # reject document-like / handwritten text blocks (pii:text); PASS kept signs
    detector: str = "ppocr_det_v6_small"
    recognizer: str = "ppocr_rec_v6_small"
    max_side: int = 640  # long side of the detector input (cost grows with its square)
    decode_max_side: int = 1024  # decoded size; plate candidates are read from this resolution
    det_thresh: float = 0.3  # DB binarisation threshold of the text-probability map
    box_thresh: float = 0.5  # minimum mean text probability of a line
    unclip_ratio: float = 1.6
    blob_height: float = 0.35  # a "line" taller than this (x short side) and under 2:1 is a detector blob: ignored
    # plate rule
    plate_aspect: tuple[float, float] = (1.8, 7.0)  # long / short side of the registration line
    plate_max_tilt: float = 30.0  # degrees from horizontal
    plate_height: tuple[float, float] = (0.012, 0.25)  # text height / the image's short side
    plate_min_fill: float = 0.6  # fraction of the line's kernel box above the DB threshold
    plate_read: bool = True  # recognise candidates and require a registration-like string
    plate_needs_letter: bool = True  # digits-only strings (fleet/house numbers, years) are not plates
    plate_max_reads: int = 4  # candidates read per image (best detector scores first)
    plate_threshold: float = 0.5  # detector score x recognition confidence
    # text rule
    text_min_lines: int = 6
    text_line_max_height: float = 0.06  # a "small" line: text height / the image's short side
    text_min_area: float = 0.04  # fraction of the image covered by those lines
    text_max_area: float = 0.3  # any text covering this much makes the image text-dominated
    boxes: int = 8  # text boxes kept per image in pii_boxes
    threads: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.plate and not self.text:
            raise ValueError("PiiConfig with neither the plate nor the text rule: turn the stage off instead")
        for name in ("plate_aspect", "plate_height"):
            low, high = getattr(self, name)
            if not 0 < low < high:
                raise ValueError(f"pii {name} {(low, high)} must be increasing positive bounds")
        for name in ("det_thresh", "box_thresh", "plate_min_fill", "plate_threshold", "text_min_area", "text_max_area"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"pii {name} {getattr(self, name)} must lie in [0, 1]")
        if self.max_side < 32 or self.decode_max_side < self.max_side:
            raise ValueError("pii max_side must be >= 32 and decode_max_side >= max_side")

    @property
    def models(self) -> list[str]:
        return [self.detector, *([self.recognizer] if self.plate and self.plate_read else [])]


@lru_cache(maxsize=2)
def _detector(name: str, threads: int, device: str, max_side: int, thresh: float, box: float, unclip: float):
    """Models are loaded once per worker process (results never depend on this cache)."""
    return TextDetector.load(
        name, threads=threads, device=device, max_side=max_side, thresh=thresh, box_thresh=box, unclip_ratio=unclip
    )


@lru_cache(maxsize=2)
def _recognizer(name: str, threads: int, device: str) -> TextRecognizer:
    return TextRecognizer.load(name, threads=threads, device=device)


def reads_like_plate(text: str, needs_letter: bool = True) -> bool:
    """A registration: 4-10 upper-case letters and digits, at least two digits (and a letter, unless
    ``needs_letter`` is off); separators (space, dash, dot) are allowed between."""
    compact = PLATE_SEPARATORS.sub("", text.strip())
    if not 4 <= len(compact) <= 10 or not PLATE_CHARS.match(compact):
        return False
    digits = sum(char.isdigit() for char in compact)
    return digits >= 2 and (digits < len(compact) or not needs_letter)


def plate_shaped(region: TextRegion, short_side: float, cfg: PiiConfig) -> bool:
    low, high = cfg.plate_aspect
    height = region.short / max(short_side, 1.0)
    return (
        low <= region.aspect <= high
        and abs(region.angle) <= cfg.plate_max_tilt
        and cfg.plate_height[0] <= height <= cfg.plate_height[1]
        and region.fill >= cfg.plate_min_fill
    )


def in_text_block(region: TextRegion, others: list[TextRegion]) -> bool:
    """Another line of about the same height right above or below, overlapping horizontally: a sign or a page."""
    x1, y1, x2, y2 = region.bbox
    for other in others:
        if other is region or not 0.7 <= other.short / max(region.short, 1e-6) <= 1.4:
            continue
        ox1, oy1, ox2, oy2 = other.bbox
        overlap = min(x2, ox2) - max(x1, ox1)
        gap = max(oy1 - y2, y1 - oy2)
        if overlap > 0.3 * min(x2 - x1, ox2 - ox1) and gap < 1.0 * region.short:
            return True
    return False


def text_area(regions: list[TextRegion], width: int, height: int, grid: int = 256) -> float:
    """Fraction of the image covered by the union of the text boxes (rasterised on a small grid)."""
    if not regions:
        return 0.0
    scale = grid / max(width, height)
    mask = np.zeros((max(1, round(height * scale)), max(1, round(width * scale))), np.uint8)
    cv2.fillPoly(mask, [np.round(region.quad * scale).astype(np.int32) for region in regions], 1)
    return float(mask.mean())


@dataclass
class PiiFinding:
    regions: list[TextRegion]
    kinds: list[str]  # per region: "plate", "plate-shape" (read, not a registration), "line"
    plate_score: float
    lines: int  # small lines counted by the text rule
    area: float  # union of all text boxes / image
    small_area: float  # union of the small lines / image
    reads: int  # plate candidates recognised


def text_score(finding: PiiFinding, cfg: PiiConfig) -> float:
    """Evidence for the document rule in [0, 1]; 1.0 exactly where the rule fires."""
    block = min(finding.lines / cfg.text_min_lines, finding.small_area / cfg.text_min_area)
    dominated = finding.area / cfg.text_max_area
    return float(min(1.0, max(block, dominated)))


def analyse(image: np.ndarray, cfg: PiiConfig) -> PiiFinding:
    """Detect text lines on a BGR image and measure both rules (no decision yet)."""
    detector = _detector(
        cfg.detector, cfg.threads, cfg.device, cfg.max_side, cfg.det_thresh, cfg.box_thresh, cfg.unclip_ratio
    )
    height, width = image.shape[:2]
    short_side = min(width, height)
    regions = [
        region
        for region in detector(image)
        if region.short / max(short_side, 1) <= cfg.blob_height or region.aspect >= 2.0
    ]
    kinds = ["line"] * len(regions)
    plate_score, reads = 0.0, 0
    if cfg.plate:
        recognizer = _recognizer(cfg.recognizer, cfg.threads, cfg.device) if cfg.plate_read else None
        for index, region in enumerate(regions):
            if not plate_shaped(region, short_side, cfg) or in_text_block(region, regions):
                continue
            if recognizer is None:
                kinds[index], score = "plate", region.score
            elif reads >= cfg.plate_max_reads:
                continue
            else:
                reads += 1
                text, confidence = recognizer.read(image, region.quad)
                plate = reads_like_plate(text, cfg.plate_needs_letter)
                kinds[index] = "plate" if plate else "plate-shape"
                score = region.score * confidence if plate else 0.0
            plate_score = max(plate_score, score)
    small = [r for r in regions if r.short / max(short_side, 1) <= cfg.text_line_max_height]
    return PiiFinding(
        regions=regions,
        kinds=kinds,
        plate_score=plate_score,
        lines=len(small),
        area=text_area(regions, width, height),
        small_area=text_area(small, width, height),
        reads=reads,
    )


def decide(finding: PiiFinding, cfg: PiiConfig) -> tuple[str, float]:
    """(reason or "", pii_score): the plate rule first, then the document rule."""
    document = text_score(finding, cfg)
    score = max(finding.plate_score if cfg.plate else 0.0, document if cfg.text else 0.0)
    if cfg.plate and finding.plate_score >= cfg.plate_threshold:
        return reasons.PII_PLATE, score
    if cfg.text and document >= 1.0:
        return reasons.PII_TEXT, score
    return "", score


def rethreshold(rows: pa.Table, cfg: PiiConfig) -> pa.Table:
    """Re-apply the rules of ``cfg`` (rule switches, plate threshold, text-rule bounds) to stored PII rows without
    running a model. Rows rejected for another reason, or never measured, are left as they are. The plate geometry
    and recognition are not re-run: a plate score of 0 stays 0."""
    out = []
    for row in rows.to_pylist():
        if (row["reason"] and not row["reason"].startswith("pii:")) or row.get("pii_plate_score") is None:
            out.append(row)
            continue
        finding = PiiFinding(
            regions=[],
            kinds=[],
            plate_score=row["pii_plate_score"],
            lines=row["pii_text_lines"],
            area=row["pii_text_area"],
            small_area=row["pii_small_text_area"],
            reads=0,
        )
        reason, score = decide(finding, cfg)
        row.update(status=REJECTED if reason else KEPT, reason=reason, pii_score=round(score, 5))
        out.append(row)
    return pa.Table.from_pylist(out, schema=rows.schema)


def boxes_json(finding: PiiFinding, scale: float, limit: int) -> str:
    order = sorted(range(len(finding.regions)), key=lambda i: (finding.kinds[i] == "line", -finding.regions[i].score))
    boxes = []
    for index in order[:limit]:
        region = finding.regions[index]
        boxes.append(
            {
                "kind": finding.kinds[index],
                "score": round(region.score, 4),
                "box": [round(v * scale, 1) for v in region.bbox],
                "quad": [[round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in region.quad],
            }
        )
    return json.dumps(boxes, separators=(",", ":"))


def pii_stage(batch: list[Sample], cfg: PiiConfig) -> StageResult[list[Sample]]:
    """Reject samples showing a licence plate (and, when enabled, document-like text); one row per input sample."""
    kept: list[Sample] = []
    rows: list[dict[str, Any]] = []
    for sample in batch:
        row = _empty_row(sample.key)
        ext = sample.image_ext()
        try:
            if ext is None:
                raise ImageDecodeError("sample has no image part")
            decoded = decode_for_detection(sample.parts[ext], cfg.decode_max_side)
        except ImageBombError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_BOMB, "pii_error": str(error)[:300]})
            continue
        except ImageDecodeError as error:
            rows.append({**row, "status": REJECTED, "reason": reasons.IMAGE_CORRUPT, "pii_error": str(error)[:300]})
            continue
        finding = analyse(decoded.pixels, cfg)
        reason, score = decide(finding, cfg)
        row.update(
            pii_score=round(score, 5),
            pii_plate_score=round(finding.plate_score, 5),
            pii_text_lines=finding.lines,
            pii_text_area=round(finding.area, 5),
            pii_small_text_area=round(finding.small_area, 5),
            pii_regions=len(finding.regions),
            pii_boxes=boxes_json(finding, decoded.scale, cfg.boxes),
        )
        if reason:
            row.update(status=REJECTED, reason=reason)
        else:
            kept.append(sample)
        rows.append(row)
    return StageResult(kept=kept, rows=pa.Table.from_pylist(rows, schema=SCHEMA))


SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("pii_score", pa.float64()),
        ("pii_plate_score", pa.float64()),
        ("pii_text_lines", pa.int32()),
        ("pii_text_area", pa.float64()),
        ("pii_small_text_area", pa.float64()),
        ("pii_regions", pa.int32()),
        ("pii_boxes", pa.string()),
        ("pii_error", pa.string()),
    ]
)


def _empty_row(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "status": KEPT,
        "reason": "",
        "pii_score": None,
        "pii_plate_score": None,
        "pii_text_lines": None,
        "pii_text_area": None,
        "pii_small_text_area": None,
        "pii_regions": None,
        "pii_boxes": "[]",
        "pii_error": "",
    }

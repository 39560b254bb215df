"""Views of an image that the detectors see: the whole image and overlapping tiles, so small people get enough
pixels. A view is a crop (x, y, w, h) of the decoded image; detections are mapped back to original pixels.

A *zoom* view (``zoomK``) is a second look: after the fixed views, the K best person candidates of the other person
passes (score >= :data:`ZOOM_FLOOR`, every pass's best first, merged across passes) are each re-examined in a context
window around them (:func:`zoom_window`, in original pixels), cut from a decode at the resolution the window needs, so
a 20 x 30 px person fills a good part of the network input instead of a few cells. The pass keeps, per candidate, the
best zoomed box that sits on the candidate (:func:`on_candidate`): a verification score, high for a small real person
and low for a pole or a texture that looked like one at low resolution."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

VIEW_PATTERN = re.compile(r"^(full|tiles(\d)|zoom(\d))$")
TILE_OVERLAP = 0.25
MIN_TILE_SIDE = 160  # tiles smaller than this add nothing a detector can use

ZOOM_FLOOR = 0.02  # person candidates below this score are not re-examined
ZOOM_MERGE_IOU = 0.5  # candidates of different passes overlapping this much are one candidate
ZOOM_CONTEXT = 3.0  # the window around a candidate is this many times its long side ...
# ... and at least this many original pixels: a tiny person needs context to be recognised, and blowing a few pixels
# up 4x helps less than ~2x (people-dev, cross-validated: 192 kept 0.628 of people-free photos at the recall-first
# point where 96 kept 0.496 and no zoom 0.576)
ZOOM_MIN_SIDE = 192
ZOOM_DECODE_MAX_SIDE = 2048  # the zoom's re-decode of a large photo stops here (bounds its cost)

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def check_view(view: str) -> str:
    """``view`` if it is ``full``, ``tilesN`` or ``zoomK`` (N, K = 1..9); ValueError otherwise."""
    match = VIEW_PATTERN.match(view)
    if match is None or (match.group(1) != "full" and int(match.group(2) or match.group(3)) < 1):
        raise ValueError(f"view {view!r} must be 'full', 'tilesN' (N = 2..9) or 'zoomK' (K = 1..9 candidates)")
    return view


def is_zoom(view: str) -> bool:
    return check_view(view).startswith("zoom")


def zoom_count(view: str) -> int:
    """``zoomK`` -> K, the number of candidates re-examined."""
    if not is_zoom(view):
        raise ValueError(f"view {view!r} is not a zoom view")
    return int(view[4:])


def parse_view(view: str) -> int:
    """``full`` -> 1, ``tilesN`` -> N (an N x N grid). Zoom views have no fixed grid (ValueError)."""
    if is_zoom(view):
        raise ValueError(f"view {view!r}: a zoom view has no fixed crops; its windows follow the candidates")
    return 1 if view == "full" else int(view[5:])


def crops(width: int, height: int, view: str, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The crops (x, y, w, h) of an image of ``width`` x ``height`` for ``view``; tiles overlap by ``overlap``.

    A grid axis is reduced where tiles would be smaller than :data:`MIN_TILE_SIDE`; the tiled view of an image too
    small to tile is the whole image, so every view yields a score for every image.
    """
    grid = parse_view(view)
    if grid == 1:
        return [(0, 0, width, height)]
    cols = _cells(width, grid, overlap)
    rows = _cells(height, grid, overlap)
    if cols == 1 and rows == 1:
        return [(0, 0, width, height)]
    out = []
    for x, w in _spans(width, cols, overlap):
        for y, h in _spans(height, rows, overlap):
            out.append((x, y, w, h))
    return out


def zoom_candidates(
    seeds: Iterable[Sequence[tuple[float, Box]]],
    count: int,
    floor: float = ZOOM_FLOOR,
    merge_iou: float = ZOOM_MERGE_IOU,
) -> list[tuple[float, Box]]:
    """The ``count`` person candidates to re-examine among ``seeds`` (one list of (score, box) per pass, best
    first): every pass's best box before any pass's second (the detectors' scores are not on one scale: FastestDet
    alone would otherwise fill the list), higher score first within a rank; boxes below ``floor`` are ignored and a
    box overlapping a chosen one by IoU >= ``merge_iou`` (the same thing seen by another pass) is skipped."""
    ranked = [
        (rank, -score, box)
        for boxes in seeds
        for rank, (score, box) in enumerate(sorted(boxes, key=lambda item: -item[0]))
        if score >= floor and box[2] > box[0] and box[3] > box[1]
    ]
    chosen: list[tuple[float, Box]] = []
    for _, negative, box in sorted(ranked, key=lambda item: item[:2]):
        if len(chosen) == count:
            break
        if all(_iou(box, other) < merge_iou for _, other in chosen):
            chosen.append((-negative, box))
    return chosen


def zoom_window(
    box: Box, width: int, height: int, context: float = ZOOM_CONTEXT, min_side: int = ZOOM_MIN_SIDE
) -> tuple[int, int, int, int]:
    """The context window (x, y, w, h) around ``box`` in an image of ``width`` x ``height`` (all original pixels): a
    square of ``context`` times the box's long side, at least ``min_side``, centred on the box, shifted (not cut)
    to stay inside the image and cut only where the image is smaller than the square."""
    x1, y1, x2, y2 = (max(0.0, min(v, limit)) for v, limit in zip(box, (width, height, width, height), strict=True))
    side = max(context * max(x2 - x1, y2 - y1), float(min_side))
    w, h = min(width, math.ceil(side)), min(height, math.ceil(side))
    x = min(max(0, round((x1 + x2 - w) / 2)), width - w)
    y = min(max(0, round((y1 + y2 - h) / 2)), height - h)
    return x, y, w, h


def on_candidate(found: Box, candidate: Box) -> bool:
    """A zoomed box confirms a candidate when each one's centre lies inside the other (tolerant of the loose boxes a
    detector draws around a few-pixel person at low resolution, strict about place)."""
    return _centre_in(found, candidate) and _centre_in(candidate, found)


def _centre_in(inner: Box, outer: Box) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _cells(length: int, grid: int, overlap: float) -> int:
    while grid > 1 and length / (grid - (grid - 1) * overlap) < MIN_TILE_SIDE:
        grid -= 1
    return grid


def _spans(length: int, count: int, overlap: float) -> list[tuple[int, int]]:
    if count == 1:
        return [(0, length)]
    size = math.ceil(length / (count - (count - 1) * overlap))
    step = (length - size) / (count - 1)
    return [(round(i * step), size) for i in range(count)]

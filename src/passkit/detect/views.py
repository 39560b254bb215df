"""Views of an image that the detectors see: the whole image and overlapping tiles, so small people get enough
pixels. A view is a crop (x, y, w, h) of the decoded image; detections are mapped back to original pixels."""

from __future__ import annotations

import math
import re

VIEW_PATTERN = re.compile(r"^(full|tiles(\d))$")
TILE_OVERLAP = 0.25
MIN_TILE_SIDE = 160  # tiles smaller than this add nothing a detector can use


def parse_view(view: str) -> int:
    """``full`` -> 1, ``tilesN`` -> N (an N x N grid)."""
    match = VIEW_PATTERN.match(view)
    if match is None:
        raise ValueError(f"view {view!r} must be 'full' or 'tilesN' (N = 2..9)")
    grid = 1 if match.group(1) == "full" else int(match.group(2))
    if grid < 1:
        raise ValueError(f"view {view!r}: grid must be >= 1")
    return grid


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

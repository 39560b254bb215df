"""Small self-made SVG charts for the datasheet: plain text, no scripts, no randomness (byte-identical output)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import pairwise

import numpy as np

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:12px"
BAR = "#3b6ea5"
MUTED = "#9aa9b8"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def hbar_chart(
    rows: Sequence[tuple[str, int, str]], *, title: str, width: int = 720, label_width: int = 190, colour: str = BAR
) -> str:
    """Horizontal bars: ``(label, value, note)`` per row, the note printed after the bar."""
    row_height, top = 22, 28
    height = top + row_height * len(rows) + 8
    plot = width - label_width - 170
    largest = max((value for _, value, _ in rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" style="{FONT}">',
        f'<text x="0" y="16" style="font-weight:600">{escape(title)}</text>',
    ]
    for index, (label, value, note) in enumerate(rows):
        y = top + index * row_height
        bar = plot * value / largest
        parts.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{_num(bar)}" height="16" fill="{colour}"/>')
        parts.append(f'<text x="{_num(label_width + bar + 6)}" y="{y + 15}">{value:,}{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def histogram(bins: Sequence[tuple[str, int]], *, title: str, x_label: str, width: int = 720) -> str:
    """Vertical bars, one per ``(bin label, count)``, with counts on top."""
    height, top, bottom, left = 240, 44, 46, 8
    plot_height = height - top - bottom
    slot = (width - left) / max(len(bins), 1)
    largest = max((count for _, count in bins), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" style="{FONT}">',
        f'<text x="0" y="16" style="font-weight:600">{escape(title)}</text>',
    ]
    base = top + plot_height
    for index, (label, count) in enumerate(bins):
        x = left + index * slot
        bar = plot_height * count / largest
        parts.append(
            f'<rect x="{_num(x + 2)}" y="{_num(base - bar)}" width="{_num(slot - 4)}" height="{_num(bar)}" '
            f'fill="{BAR if count else MUTED}"/>'
        )
        parts.append(f'<text x="{_num(x + slot / 2)}" y="{_num(base - bar - 4)}" text-anchor="middle">{count:,}</text>')
        parts.append(
            f'<text x="{_num(x + slot / 2)}" y="{base + 15}" text-anchor="middle" font-size="10">{escape(label)}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="#555"/>')
    parts.append(f'<text x="{width // 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def binned(values: Sequence[int], edges: Sequence[int], *, binary_units: bool = False) -> list[tuple[str, int]]:
    """Counts per ``[edges[i], edges[i+1])`` (the first bin also takes smaller values) and a last bin
    ``>= edges[-1]``; labels like ``256–511`` (``64k–128k``, half-open, with ``binary_units``)."""
    slots = np.clip(np.searchsorted(np.asarray(edges), np.asarray(values, dtype=np.int64), side="right") - 1, 0, None)
    counts = np.bincount(slots, minlength=len(edges)).tolist() if len(values) else [0] * len(edges)

    def short(value: int) -> str:
        for unit, size in (("M", 1 << 20), ("k", 1 << 10)):
            if binary_units and value >= size and value % size == 0:
                return f"{value // size}{unit}"
        return str(value)

    labels = []
    for low, high in pairwise(edges):
        if binary_units:
            labels.append(f"{short(low)}–{short(high)}")  # half-open: 16k–32k holds 16k <= size < 32k
        else:
            labels.append(str(low) if high - 1 == low else f"{low}–{high - 1}")
    labels.append(f"≥{short(edges[-1])}")
    if edges[0] == 0 and len(edges) > 1:
        labels[0] = f"<{short(edges[1])}"
    return list(zip(labels, counts, strict=True))

"""Figures about a release's images computed from its metadata table (shared by datasheet, card, Croissant)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from passkit.core.licenses import license_name


@dataclass(frozen=True)
class ReleaseStats:
    images: int
    bytes: int
    creators: int
    licenses: list[tuple[str, int]]  # (license id, images), most first
    sources: list[tuple[str, int]]
    top_creators: list[tuple[str, int]]
    per_creator: list[int]  # images per creator
    short_sides: list[int]
    sizes: list[int]

    def license_names(self) -> list[tuple[str, str, int]]:
        return [(license_id, license_name(license_id), count) for license_id, count in self.licenses]


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def release_stats(table: pa.Table, top: int = 10) -> ReleaseStats:
    creators = Counter(table.column("creator").to_pylist())
    widths = table.column("width").to_pylist()
    heights = table.column("height").to_pylist()
    sizes = table.column("size").to_pylist()
    return ReleaseStats(
        images=table.num_rows,
        bytes=sum(sizes),
        creators=len(creators),
        licenses=_ranked(Counter(table.column("license").to_pylist())),
        sources=_ranked(Counter(source or "unknown" for source in table.column("source").to_pylist())),
        top_creators=_ranked(creators)[:top],
        per_creator=sorted(creators.values()),
        short_sides=[min(w, h) for w, h in zip(widths, heights, strict=True)],
        sizes=sizes,
    )


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"

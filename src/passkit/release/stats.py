"""Figures about a release's images computed from its metadata table (shared by datasheet, card, Croissant)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passkit.core.licenses import license_name


@dataclass(frozen=True)
class ReleaseStats:
    images: int
    bytes: int
    creators: int
    licenses: list[tuple[str, int]]  # (license id, images), most first
    sources: list[tuple[str, int]]
    top_creators: list[tuple[str, int]]
    per_creator: np.ndarray  # images per creator, ascending
    short_sides: np.ndarray  # per image
    sizes: np.ndarray  # stored bytes per image

    def license_names(self) -> list[tuple[str, str, int]]:
        return [(license_id, license_name(license_id), count) for license_id, count in self.licenses]


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _counts(column: pa.ChunkedArray) -> pa.Table:
    counts = pc.value_counts(column)
    return pa.table({"value": counts.field("values"), "count": counts.field("counts")})


def release_stats(table: pa.Table, top: int = 10) -> ReleaseStats:
    """Counts by Arrow compute and numpy: no Python object per image (memory ~ creators, not images)."""
    creators = _counts(table.column("creator"))
    ranked_creators = creators.sort_by([("count", "descending"), ("value", "ascending")]).slice(0, top)
    sources: Counter[str] = Counter()
    for row in _counts(table.column("source")).to_pylist():
        sources[row["value"] or "unknown"] += row["count"]
    widths = table.column("width").to_numpy()
    heights = table.column("height").to_numpy()
    sizes = table.column("size").to_numpy()
    return ReleaseStats(
        images=table.num_rows,
        bytes=int(sizes.sum()),
        creators=creators.num_rows,
        licenses=_ranked(Counter({row["value"]: row["count"] for row in _counts(table.column("license")).to_pylist()})),
        sources=_ranked(sources),
        top_creators=[(row["value"], row["count"]) for row in ranked_creators.to_pylist()],
        per_creator=np.sort(creators.column("count").to_numpy()),
        short_sides=np.minimum(widths, heights),
        sizes=sizes,
    )


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"

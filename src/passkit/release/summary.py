"""Writing a release's metadata shard by shard, and the figures the documents need, in one streaming pass.

The builder (and a takedown) hands over each release shard's metadata rows, sorted by key, in shard order. They go
to ``metadata.parquet`` (row groups of ``ROW_GROUP`` rows: a release up to that size has one, as one
``pq.write_table`` call would give), ``metadata.csv`` and the shard's ``pass-NNNNN.parquet`` manifest at once;
what the datasheet, card and Croissant show (counts per license, source and creator, size histograms, the sample
grid) is accumulated on the way. Memory: one release shard's rows, one row group, the counts per creator, and
three small integers per image (width, height, size) for the histograms.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.manifest import write_manifest
from passkit.release.metadata import METADATA_CSV, METADATA_PARQUET, schema
from passkit.release.stats import ReleaseStats, ranked

ROW_GROUP = 8_192  # metadata.parquet rows per row group (~4 MB of metadata: the sink's memory bound)
CSV_BATCH = 8_192  # rows turned into Python values at a time
GRID_SALT = "passkit-sample-grid:"
MANIFEST_COLUMNS = ["key", "sha256", "size", "width", "height"]


def grid_rank(key: str) -> bytes:
    """The sample grid's order: sha256 of the key (the same release always shows the same images)."""
    return hashlib.sha256(f"{GRID_SALT}{key}".encode()).digest()


@dataclass
class ReleaseSummary:
    """What the documents show about the released images (filled by :class:`MetadataSink`)."""

    include_gps: bool
    grid_size: int
    schema: pa.Schema = field(init=False)
    images: int = 0
    shards: list[str] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    licenses: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    _creators: list[pa.Table] = field(default_factory=list, repr=False)  # (creator, count) per shard, merged
    _sides: list[np.ndarray] = field(default_factory=list, repr=False)
    _sizes: list[np.ndarray] = field(default_factory=list, repr=False)
    _grid: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list, repr=False)  # (rank, row), best first

    def __post_init__(self) -> None:
        self.schema = schema(self.include_gps)

    def add(self, shard: str, table: pa.Table) -> None:
        self.images += table.num_rows
        self.shards.append(shard)
        self.formats.update(pc.unique(table.column("format")).to_pylist())
        for name, counter in (("license", self.licenses), ("source", self.sources)):
            for item in pc.value_counts(table.column(name)).to_pylist():
                counter[item["values"] or ("unknown" if name == "source" else "")] += item["counts"]
        counts = pc.value_counts(table.column("creator"))
        self._creators.append(pa.table({"creator": counts.field("values"), "count": counts.field("counts")}))
        if sum(part.num_rows for part in self._creators) > 4 * max(self._creators[0].num_rows, 1024):
            self._creators = [self._merged_creators()]
        widths, heights = table.column("width").to_numpy(), table.column("height").to_numpy()
        self._sides.append(np.minimum(widths, heights).astype(np.int32))
        self._sizes.append(table.column("size").to_numpy().astype(np.int64))
        self._add_grid(table)

    def _add_grid(self, table: pa.Table) -> None:
        if self.grid_size == 0:
            return
        keys = table.column("key").to_pylist()
        best = heapq.nsmallest(
            self.grid_size,
            [(rank, None, index) for index, (rank, _) in enumerate(self._grid)]
            + [(grid_rank(key), position, -1) for position, key in enumerate(keys)],
        )
        new_positions = [position for _, position, _ in best if position is not None]
        new_rows = iter(table.take(pa.array(new_positions, pa.int64())).to_pylist()) if new_positions else iter(())
        self._grid = [
            (rank, self._grid[index][1] if position is None else next(new_rows)) for rank, position, index in best
        ]

    def _merged_creators(self) -> pa.Table:
        merged = pa.concat_tables(self._creators).group_by("creator").aggregate([("count", "sum")])
        return merged.rename_columns(["creator", "count"])

    def grid_rows(self) -> list[dict[str, Any]]:
        """Metadata rows of the sample grid's images, in grid order."""
        return [row for _, row in self._grid]

    def stats(self, top: int = 10) -> ReleaseStats:
        creators = (
            self._merged_creators() if self._creators else pa.table({"creator": [], "count": pa.array([], pa.int64())})
        )
        top_creators = creators.sort_by([("count", "descending"), ("creator", "ascending")]).slice(0, top)
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, np.int64)
        return ReleaseStats(
            images=self.images,
            bytes=int(sizes.sum()),
            creators=creators.num_rows,
            licenses=ranked(self.licenses),
            sources=ranked(self.sources),
            top_creators=[(row["creator"], row["count"]) for row in top_creators.to_pylist()],
            per_creator=np.sort(creators.column("count").to_numpy()),
            short_sides=np.concatenate(self._sides) if self._sides else np.zeros(0, np.int32),
            sizes=sizes,
        )


class MetadataSink:
    """``add(shard, rows)`` per release shard in shard order (rows sorted by key), then ``close()``."""

    def __init__(self, folder: Path, include_gps: bool, grid_size: int) -> None:
        self.folder = folder
        self.summary = ReleaseSummary(include_gps, grid_size)
        self._parquet = pq.ParquetWriter(
            folder / METADATA_PARQUET, self.summary.schema, compression="zstd", write_statistics=True
        )
        self._csv_file = (folder / METADATA_CSV).open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._csv.writerow(self.summary.schema.names)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._last_key: str | None = None

    def add(self, shard: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        rows = rows.select(self.summary.schema.names).cast(self.summary.schema)
        first = rows.column("key")[0].as_py()
        if self._last_key is not None and first <= self._last_key:
            raise ValueError(f"{shard}: metadata rows must come in key order ({first!r} after {self._last_key!r})")
        self._last_key = rows.column("key")[-1].as_py()
        self.summary.add(shard, rows)
        manifest = rows.select(MANIFEST_COLUMNS)
        manifest = manifest.append_column("status", pa.array(["kept"] * rows.num_rows, pa.string()))
        manifest = manifest.append_column("reason", pa.array([""] * rows.num_rows, pa.string()))
        write_manifest(self.folder / (shard.removesuffix(".tar") + ".parquet"), manifest)
        for batch in rows.to_batches(max_chunksize=CSV_BATCH):
            columns = [batch.column(index).to_pylist() for index in range(batch.num_columns)]
            self._csv.writerows(["" if value is None else value for value in row] for row in zip(*columns, strict=True))
        self._pending.append(rows)
        self._pending_rows += rows.num_rows
        while self._pending_rows >= ROW_GROUP:
            self._write_row_group(ROW_GROUP)

    def _write_row_group(self, rows: int) -> None:
        table = pa.concat_tables(self._pending).combine_chunks() if self._pending else self.summary.schema.empty_table()
        self._parquet.write_table(table.slice(0, rows), row_group_size=ROW_GROUP)
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> ReleaseSummary:
        if self._pending_rows or self.summary.images == 0:
            self._write_row_group(self._pending_rows)
        self._parquet.close()
        self._csv_file.close()
        return self.summary

    def abort(self) -> None:
        self._parquet.close()
        self._csv_file.close()

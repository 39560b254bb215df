"""Everything of a release that is derived from its record, metadata and shards (build and takedown share it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from passkit.release import layout
from passkit.release.card import render_card, render_changelog
from passkit.release.checksums import file_sha256, write_checksums
from passkit.release.croissant import render_croissant
from passkit.release.datasheet import render_datasheet
from passkit.release.metadata import METADATA_PARQUET, shard_groups
from passkit.release.record import ReleaseRecord
from passkit.release.summary import MetadataSink, ReleaseSummary


def write_metadata_of(folder: Path, table: pa.Table, record: ReleaseRecord) -> ReleaseSummary:
    """metadata.parquet/csv and the shard manifests of a release whose metadata table is at hand (a takedown)."""
    sink = MetadataSink(folder, record.include_gps, record.sample_grid)
    try:
        for shard, rows in shard_groups(table):
            sink.add(shard, rows)
    except BaseException:
        sink.abort()
        raise
    return sink.close()


def write_documents(
    folder: Path,
    record: ReleaseRecord,
    summary: ReleaseSummary,
    images: Mapping[str, bytes] | None = None,
    digests: Mapping[str, str] | None = None,
) -> None:
    """VERSION, release.json, Croissant, datasheet, card, changelog, SHA256SUMS (metadata and shard manifests are
    written by ``MetadataSink``). ``images``: bytes of released images already in memory (saves reading shards for
    the sample grid); ``digests``: sha256 of shard files known to be unchanged (a takedown's untouched shards)."""
    (folder / layout.VERSION_FILE).write_text(f"{record.version}\n", encoding="utf-8")
    record.write(folder)
    known = digests or {}
    names = [*sorted(summary.shards), METADATA_PARQUET]
    digests = {name: known.get(name) or file_sha256(folder / name) for name in names}
    (folder / layout.CROISSANT_FILE).write_text(render_croissant(folder, record, summary, digests), encoding="utf-8")
    (folder / layout.DATASHEET_FILE).write_text(render_datasheet(folder, record, summary, images), encoding="utf-8")
    (folder / layout.CARD_FILE).write_text(render_card(record, summary), encoding="utf-8")
    (folder / layout.CHANGELOG_FILE).write_text(render_changelog(record), encoding="utf-8")
    write_checksums(folder, known=digests)

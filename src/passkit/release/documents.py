"""Everything of a release that is derived from its record, metadata and shards (build and takedown share it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from passkit.core.manifest import write_manifest
from passkit.release import layout
from passkit.release.card import render_card, render_changelog
from passkit.release.checksums import file_sha256, write_checksums
from passkit.release.croissant import render_croissant
from passkit.release.datasheet import render_datasheet
from passkit.release.metadata import METADATA_PARQUET, shard_groups, shard_names, write_metadata
from passkit.release.record import ReleaseRecord


def write_shard_manifests(folder: Path, table: pa.Table) -> None:
    """``shards/pass-NNNNN.parquet`` next to each tar (``passkit verify RELEASE/shards --prefix pass-``)."""
    for shard, rows in shard_groups(table.select(["shard", "key", "sha256", "size", "width", "height"])):
        rows = rows.select(["key", "sha256", "size", "width", "height"])
        manifest = rows.append_column("status", pa.array(["kept"] * rows.num_rows, pa.string()))
        manifest = manifest.append_column("reason", pa.array([""] * rows.num_rows, pa.string()))
        write_manifest(folder / _manifest(shard), manifest)


def _manifest(shard_tar: str) -> str:
    return shard_tar.removesuffix(".tar") + ".parquet"


def write_documents(
    folder: Path,
    record: ReleaseRecord,
    table: pa.Table,
    images: Mapping[str, bytes] | None = None,
    digests: Mapping[str, str] | None = None,
) -> None:
    """Metadata, shard manifests, VERSION, release.json, Croissant, datasheet, card, changelog, SHA256SUMS.
    ``images``: bytes of released images already in memory (saves reading shards for the sample grid);
    ``digests``: sha256 of shard files known to be unchanged (a takedown's untouched shards)."""
    write_metadata(folder, table)
    write_shard_manifests(folder, table)
    (folder / layout.VERSION_FILE).write_text(f"{record.version}\n", encoding="utf-8")
    record.write(folder)
    shards = shard_names(table)
    known = digests or {}
    digests = {name: known.get(name) or file_sha256(folder / name) for name in [*shards, METADATA_PARQUET]}
    (folder / layout.CROISSANT_FILE).write_text(render_croissant(folder, record, table, digests), encoding="utf-8")
    (folder / layout.DATASHEET_FILE).write_text(render_datasheet(folder, record, table, images), encoding="utf-8")
    (folder / layout.CARD_FILE).write_text(render_card(record, table), encoding="utf-8")
    (folder / layout.CHANGELOG_FILE).write_text(render_changelog(record), encoding="utf-8")
    write_checksums(folder, known=digests)

"""Shard folders: naming (``NNNNN.tar`` + ``NNNNN.parquet``), completion and verification.

A shard is the unit of resume, retries and statistics: it is done iff its manifest exists (the manifest is
written last, atomically). Verification checks that the tar and the manifest agree: the kept rows are exactly
the samples of the tar, and a ``sha256`` column, where present, matches the stored image bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.manifest import KEPT, ManifestError, read_manifest, status_counts
from passkit.core.tar import ShardError, read_shard

SHARD_DIGITS = 5


def shard_name(index: int, prefix: str = "") -> str:
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"{prefix}{index:0{SHARD_DIGITS}d}"


@dataclass(frozen=True)
class ShardPaths:
    root: Path
    index: int
    prefix: str = ""

    @property
    def name(self) -> str:
        return shard_name(self.index, self.prefix)

    @property
    def tar(self) -> Path:
        return self.root / f"{self.name}.tar"

    @property
    def manifest(self) -> Path:
        return self.root / f"{self.name}.parquet"

    @property
    def done(self) -> bool:
        return self.manifest.exists()


def list_shards(root: str | os.PathLike[str], prefix: str = "", done_only: bool = True) -> list[ShardPaths]:
    """Shards of a folder in index order; by default only finished ones (manifest present)."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{{SHARD_DIGITS},}})\.(tar|parquet)$")
    indices = set()
    root_path = Path(root)
    for entry in root_path.iterdir() if root_path.is_dir() else ():
        match = pattern.match(entry.name)
        if match:
            indices.add(int(match.group(1)))
    shards = [ShardPaths(root_path, index, prefix) for index in sorted(indices)]
    return [shard for shard in shards if shard.done] if done_only else shards


@dataclass
class ShardReport:
    shard: str
    rows: int = 0
    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_shard(shard: ShardPaths) -> ShardReport:
    """Check manifest contract, tar readability and tar/manifest agreement; never raises for bad data."""
    report = ShardReport(shard.name)
    try:
        table = read_manifest(shard.manifest)
    except (OSError, pa.ArrowException, ManifestError) as error:
        report.problems.append(f"manifest: {error}")
        return report
    report.rows = table.num_rows
    report.counts = status_counts(table)
    kept = {
        key: row_sha
        for key, status, row_sha in zip(
            table.column("key").to_pylist(),
            table.column("status").to_pylist(),
            table.column("sha256").to_pylist() if "sha256" in table.column_names else [None] * table.num_rows,
            strict=True,
        )
        if status == KEPT
    }
    if not shard.tar.exists():
        if kept:
            report.problems.append(f"tar missing but {len(kept)} rows are kept")
        return report
    in_tar: set[str] = set()
    try:
        for sample in read_shard(shard.tar):
            in_tar.add(sample.key)
            expected_sha = kept.get(sample.key)
            image_ext = sample.image_ext()
            if expected_sha and image_ext:
                actual = hashlib.sha256(sample.parts[image_ext]).hexdigest()
                if actual != expected_sha:
                    report.problems.append(f"{sample.key}: sha256 of {image_ext} differs from manifest")
    except ShardError as error:
        report.problems.append(f"tar: {error}")
    report.samples = len(in_tar)
    if set(kept) - in_tar:
        report.problems.append(f"kept in manifest but absent from tar: {sorted(set(kept) - in_tar)[:5]}")
    if in_tar - set(kept):
        report.problems.append(f"in tar but not kept in manifest: {sorted(in_tar - set(kept))[:5]}")
    return report


def verify_folder(root: str | os.PathLike[str], prefix: str = "") -> Iterator[ShardReport]:
    for shard in list_shards(root, prefix):
        yield verify_shard(shard)


def superseded_keys(shards: list[ShardPaths]) -> dict[int, frozenset[str]]:
    """Keys whose row in a shard is superseded by a row in a later shard of the same folder.

    A retry round (``passkit download --retry-failed``) writes new shards for keys that failed before and leaves
    the finished shards untouched, so a key may have rows in several shards: its row in the highest shard index is
    the current one. Returns, per shard index, the keys whose row there is out of date (only shards that have any).
    """
    tables = [pq.read_table(shard.manifest, columns=["key"]).column("key") for shard in shards]
    if not tables:
        return {}
    keys = pa.chunked_array([chunk for table in tables for chunk in table.chunks], pa.string())
    if len(keys) < 2:
        return {}
    # Almost always no key repeats: a sort finds that with 8 bytes a row (no hash table of every key).
    ordered = keys.take(pc.sort_indices(keys))
    repeats = pc.equal(ordered.slice(0, len(ordered) - 1), ordered.slice(1))
    if not pc.any(repeats).as_py():
        return {}
    repeated = pc.unique(ordered.slice(0, len(ordered) - 1).filter(repeats))
    del keys, ordered, repeats
    parts = []
    for shard, column in zip(shards, tables, strict=True):
        mine = column.filter(pc.is_in(column, repeated))
        parts.append(pa.table({"key": mine, "shard": pa.array([shard.index] * len(mine), pa.int64())}))
    rows = pa.concat_tables(parts)
    latest = rows.group_by("key").aggregate([("shard", "max")])
    joined = rows.join(latest, keys="key")
    stale = joined.filter(pc.less(joined["shard"], joined["shard_max"]))
    result: dict[int, set[str]] = {}
    for key, index in zip(stale["key"].to_pylist(), stale["shard"].to_pylist(), strict=True):
        result.setdefault(index, set()).add(key)
    return {index: frozenset(keys) for index, keys in result.items()}

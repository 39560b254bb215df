"""The filtered folder a release is built from: finished shards, their manifests, and select's rejects."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.manifest import KEPT, ManifestError, read_manifest
from passkit.core.reasons import is_valid_reason
from passkit.core.shards import ShardPaths, list_shards, shard_name

PRIVACY_ACTIONS = ("stripped", "reencoded")  # the filter's privacy stage stored these bytes metadata-free


class ReleaseError(ValueError):
    """Input that cannot become a release (missing, unfinished, inconsistent or corrupt), or an output in the way."""


SHA256 = pa.binary(32)
KEPT_SCHEMA = pa.schema([("key", pa.string()), ("shard", pa.int32()), ("sha256", SHA256), ("scrubbed", pa.bool_())])


@dataclass
class SourceScan:
    """What a release needs of the manifests, compact: one Arrow row per kept image (``kept``: key, input shard
    index, sha256 of the stored bytes (32 bytes, null where the manifest has none), whether the filter's privacy
    stage stored them), counts otherwise."""

    shards: list[ShardPaths]
    kept: pa.Table = field(default_factory=KEPT_SCHEMA.empty_table)  # in manifest order
    reasons: Counter[str] = field(default_factory=Counter)  # non-kept manifest rows and select rejects
    rows: int = 0  # manifest rows + select rejects


def _digest(value: str | None, shard: ShardPaths) -> bytes | None:
    if not value:
        return None
    try:
        digest = bytes.fromhex(value)
    except (TypeError, ValueError):
        digest = b""
    if len(digest) != 32:
        raise ReleaseError(f"{shard.manifest}: sha256 {value!r} is not 64 hex digits")
    return digest


def _read_select_rejects(path: Path) -> Counter[str]:
    try:
        table = pq.read_table(path, columns=["reason"])
    except (OSError, pa.ArrowException) as error:
        raise ReleaseError(f"{path}: cannot read select's rejects ({error})") from error
    counts = Counter(table.column("reason").to_pylist())
    bad = [reason for reason in counts if not is_valid_reason(reason)]
    if bad:
        raise ReleaseError(f"{path}: invalid reason codes {bad[:5]}")
    return counts


def scan_source(directory: str | Path, candidates_rejects: str | Path | None = None) -> SourceScan:
    root = Path(directory)
    if not root.is_dir():
        raise ReleaseError(f"{root}: no such folder (expected the output folder of `passkit filter`)")
    every = list_shards(root, done_only=False)
    unfinished = [shard.name for shard in every if not shard.done]
    if unfinished:
        raise ReleaseError(
            f"{root}: unfinished shards (tar without manifest): {', '.join(unfinished[:5])}"
            f"{' ...' if len(unfinished) > 5 else ''}; finish `passkit filter` first"
        )
    if not every:
        raise ReleaseError(f"{root}: no finished shards (NNNNN.tar + NNNNN.parquet); is this a filtered folder?")
    scan = SourceScan(every)
    kept_parts: list[pa.Table] = []
    key_parts: list[pa.Table] = []
    for shard in every:
        try:
            table = read_manifest(shard.manifest)
        except (OSError, pa.ArrowException, ManifestError) as error:
            raise ReleaseError(f"{shard.manifest}: unreadable manifest ({error})") from error
        scan.rows += table.num_rows
        is_kept = pc.equal(table.column("status"), KEPT)
        rejected = table.column("reason").filter(pc.invert(is_kept))
        for item in pc.value_counts(rejected).to_pylist():
            scan.reasons[item["values"]] += item["counts"]
        kept = table.filter(is_kept)
        rows = kept.num_rows
        hexes = kept.column("sha256").to_pylist() if "sha256" in kept.column_names else [None] * rows
        sha256 = pa.array([_digest(value, shard) for value in hexes], SHA256)
        privacy = kept.column("privacy") if "privacy" in kept.column_names else pa.nulls(rows, pa.string())
        scrubbed = pc.and_(pc.is_valid(sha256), pc.is_in(privacy.cast(pa.string()), pa.array(PRIVACY_ACTIONS)))
        kept_parts.append(
            pa.table(
                [kept.column("key"), pa.array(np.full(rows, shard.index, np.int32)), sha256, scrubbed],
                schema=KEPT_SCHEMA,
            )
        )
        shard_column = pa.array(np.full(table.num_rows, shard.index, np.int32))
        key_parts.append(pa.table({"key": table.column("key"), "kept": is_kept, "shard": shard_column}))
    scan.kept = pa.concat_tables(kept_parts).combine_chunks()
    _check_kept_once(root, pa.concat_tables(key_parts))
    if candidates_rejects is not None:
        rejects = _read_select_rejects(Path(candidates_rejects))
        scan.reasons.update(rejects)
        scan.rows += sum(rejects.values())
    return scan


def _check_kept_once(root: Path, rows: pa.Table) -> None:
    """A key kept in one shard may not appear again in a later one (``rows``: key, kept, shard; manifest order).
    Keys are unique within a manifest; across them a sort finds repeats (8 bytes a row, no hash table)."""
    keys = rows.column("key")
    if len(keys) < 2:
        return
    ordered = keys.take(pc.sort_indices(keys))
    repeats = pc.equal(ordered.slice(0, len(ordered) - 1), ordered.slice(1))
    if not pc.any(repeats).as_py():
        return
    repeated = pc.unique(ordered.slice(0, len(ordered) - 1).filter(repeats))
    kept_in: dict[str, int] = {}
    for row in rows.filter(pc.is_in(keys, repeated)).to_pylist():  # only the repeated keys' rows, manifest order
        if row["key"] in kept_in:
            name = shard_name(row["shard"])
            raise ReleaseError(f"{root}: key {row['key']!r} is kept in two shards ({kept_in[row['key']]:05d}, {name})")
        if row["kept"]:
            kept_in[row["key"]] = row["shard"]

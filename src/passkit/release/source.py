"""The filtered folder a release is built from: finished shards, their manifests, and select's rejects."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from passkit.core.manifest import KEPT, ManifestError, read_manifest
from passkit.core.reasons import is_valid_reason
from passkit.core.shards import ShardPaths, list_shards

PRIVACY_ACTIONS = ("stripped", "reencoded")  # the filter's privacy stage stored these bytes metadata-free


class ReleaseError(ValueError):
    """Input that cannot become a release (missing, unfinished, inconsistent or corrupt), or an output in the way."""


@dataclass
class SourceScan:
    shards: list[ShardPaths]
    kept: dict[str, int] = field(default_factory=dict)  # key -> input shard index
    kept_sha256: dict[str, str] = field(default_factory=dict)  # where the manifest has one
    scrubbed: set[str] = field(default_factory=set)  # kept keys the filter's privacy stage stored (and hashed)
    reasons: Counter[str] = field(default_factory=Counter)  # non-kept manifest rows and select rejects
    rows: int = 0  # manifest rows + select rejects


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
    for shard in every:
        try:
            table = read_manifest(shard.manifest)
        except (OSError, pa.ArrowException, ManifestError) as error:
            raise ReleaseError(f"{shard.manifest}: unreadable manifest ({error})") from error
        columns = ["key", "status", "reason"] + [c for c in ("sha256", "privacy") if c in table.column_names]
        rows = table.select(columns).to_pylist()
        scan.rows += len(rows)
        for row in rows:
            key = row["key"]
            if key in scan.kept:
                raise ReleaseError(f"{root}: key {key!r} is kept in two shards ({scan.kept[key]:05d}, {shard.name})")
            if row["status"] == KEPT:
                scan.kept[key] = shard.index
                if row.get("sha256"):
                    scan.kept_sha256[key] = row["sha256"]
                    if row.get("privacy") in PRIVACY_ACTIONS:
                        scan.scrubbed.add(key)
            else:
                scan.reasons[row["reason"]] += 1
    if candidates_rejects is not None:
        rejects = _read_select_rejects(Path(candidates_rejects))
        scan.reasons.update(rejects)
        scan.rows += sum(rejects.values())
    return scan

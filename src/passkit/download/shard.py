"""One shard: fetch its candidates concurrently, write ``NNNNN.tar`` then ``NNNNN.parquet`` (the manifest, last).

``download_shard`` is the picklable task the local runner hands to a worker process. Inside, ``concurrency``
coroutines share one HTTP session and pull candidates from a queue; each fetched image is written to the shard
at once (the tar writer spools to disk), so memory holds only the images in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from passkit.core.manifest import ManifestBuilder, status_counts, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import ShardWriter
from passkit.download.config import DownloadConfig
from passkit.download.fetch import Fetcher, Outcome, open_session

MANIFEST_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("http_status", pa.int32()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("content_type", pa.string()),
        ("ext", pa.string()),
        ("elapsed", pa.float64()),
        ("attempts", pa.int32()),
        ("round", pa.int32()),
        ("detail", pa.string()),
    ]
)
"""``round`` is 1 for the first pass and n for the (n-1)th ``--retry-failed``; a later round supersedes."""


@dataclass(frozen=True)
class ShardTask:
    out: str
    index: int
    rows: pa.Table
    """Candidate rows of this shard (the candidates.parquet columns)."""
    config: DownloadConfig
    base_dir: str
    """Folder that relative local paths are resolved from (the candidates file's folder)."""
    round: int = 1

    @property
    def paths(self) -> ShardPaths:
        return ShardPaths(Path(self.out), self.index)


@dataclass(frozen=True)
class ShardResult:
    index: int
    counts: dict[str, int]
    bytes: int
    seconds: float


def json_safe(value: Any) -> Any:
    """A candidate field as JSON: NaN becomes null, dates ISO strings, anything else exotic its string."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def sample_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """The ``<key>.json`` part: the attribution and source fields of the candidate, as given."""
    return {name: json_safe(value) for name, value in row.items()}


def record(manifest: ManifestBuilder, writer: ShardWriter, row: dict[str, Any], outcome: Outcome, round_: int) -> int:
    """Write the sample (when fetched) and its manifest row; returns the bytes stored."""
    key = row["key"]
    measures = {
        "http_status": outcome.http_status,
        "bytes": outcome.size,
        "content_type": outcome.content_type or None,
        "elapsed": round(outcome.elapsed, 4),
        "attempts": outcome.attempts,
        "round": round_,
        "detail": outcome.detail or None,
    }
    if not outcome.ok:
        manifest.failed(key, outcome.reason, **measures)
        return 0
    writer.write(Sample.build(key, **{outcome.ext: outcome.data, "json": sample_metadata(row)}))
    manifest.kept(key, sha256=hashlib.sha256(outcome.data).hexdigest(), ext=outcome.ext, **measures)
    return len(outcome.data)


async def _fetch_all(task: ShardTask, writer: ShardWriter, manifest: ManifestBuilder) -> int:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for row in task.rows.to_pylist():
        queue.put_nowait(row)
    stored = 0

    async def worker(fetcher: Fetcher) -> None:
        nonlocal stored
        while not queue.empty():
            row = queue.get_nowait()
            outcome = await fetcher.fetch(row["url"])
            stored += record(manifest, writer, row, outcome, task.round)

    async with open_session(task.config) as session:
        fetcher = Fetcher(session, task.config, Path(task.base_dir), seed=task.index)
        workers = min(task.config.concurrency, max(1, task.rows.num_rows))
        await asyncio.gather(*(worker(fetcher) for _ in range(workers)))
    return stored


def download_shard(task: ShardTask) -> ShardResult:
    """Download one shard and publish it: the tar first, the manifest last (a shard is done iff it exists)."""
    paths = task.paths
    manifest = ManifestBuilder()
    started = time.monotonic()
    with ShardWriter(paths.tar) as writer:
        stored = asyncio.run(_fetch_all(task, writer, manifest))
    table = manifest.to_table(MANIFEST_SCHEMA)
    write_manifest(paths.manifest, table, expected_keys=task.rows.column("key").to_pylist())
    return ShardResult(task.index, status_counts(table), stored, time.monotonic() - started)

"""One shard: fetch its candidates concurrently, write ``NNNNN.tar`` then ``NNNNN.parquet`` (the manifest, last).

``download_shard`` is the picklable task the local runner hands to a worker process. Inside, ``concurrency``
coroutines share one HTTP session and pull candidates from a queue in key order; each fetched image goes to the
tar writer (which spools to disk) in key order as soon as its predecessors are done, so memory holds only the
images in flight and a bounded backlog.
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
from passkit.download.candidates import CandidateRange
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
    rows: pa.Table | CandidateRange
    """Candidate rows of this shard (the candidates.parquet columns), or the row range of the candidates file that
    holds them (read by the worker, so the driver and the pickled task stay small)."""
    config: DownloadConfig
    base_dir: str
    """Folder that relative local paths are resolved from (the candidates file's folder)."""
    round: int = 1

    @property
    def paths(self) -> ShardPaths:
        return ShardPaths(Path(self.out), self.index)

    def candidate_rows(self) -> pa.Table:
        return self.rows.read() if isinstance(self.rows, CandidateRange) else self.rows


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


class KeyOrderedSink:
    """Hands fetched samples to the shard writer in key order while little is waiting, so the writer needs no
    reordering pass over the whole shard at close; past ``limit`` bytes waiting (a straggler), it writes samples
    as they come and the writer sorts the shard once at close."""

    def __init__(self, writer: ShardWriter, keys: list[str], limit: int = 64 * 2**20) -> None:
        self.writer = writer
        self.order = sorted(keys)
        self.next = 0
        self.waiting: dict[str, Sample | None] = {}
        self.waiting_bytes = 0
        self.limit = limit

    def put(self, key: str, sample: Sample | None) -> None:
        """``sample`` is ``None`` for a candidate that failed (nothing to store, but its turn has passed)."""
        if self.limit < 0:
            if sample is not None:
                self.writer.write(sample)
            return
        self.waiting[key] = sample
        self.waiting_bytes += _size(sample)
        while self.next < len(self.order) and self.order[self.next] in self.waiting:
            ready = self.waiting.pop(self.order[self.next])
            self.next += 1
            if ready is not None:
                self.waiting_bytes -= _size(ready)
                self.writer.write(ready)
        if self.waiting_bytes > self.limit:
            self.limit = -1  # stop ordering: write what waits, and everything after as it comes
            for waiting_key in sorted(self.waiting):
                if (waiting := self.waiting[waiting_key]) is not None:
                    self.writer.write(waiting)
            self.waiting.clear()


def _size(sample: Sample | None) -> int:
    return sum(len(part) for part in sample.parts.values()) if sample is not None else 0


def record(manifest: ManifestBuilder, sink: KeyOrderedSink, row: dict[str, Any], outcome: Outcome, round_: int) -> int:
    """Hand the sample (when fetched) to the sink and add its manifest row; returns the bytes stored."""
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
        sink.put(key, None)
        return 0
    sink.put(key, Sample.build(key, **{outcome.ext: outcome.data, "json": sample_metadata(row)}))
    manifest.kept(key, sha256=hashlib.sha256(outcome.data).hexdigest(), ext=outcome.ext, **measures)
    return len(outcome.data)


async def _fetch_all(task: ShardTask, candidates: pa.Table, writer: ShardWriter, manifest: ManifestBuilder) -> int:
    rows = sorted(candidates.to_pylist(), key=lambda row: row["key"])  # dispatched in key order
    sink = KeyOrderedSink(writer, [row["key"] for row in rows])
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)
    stored = 0

    async def worker(fetcher: Fetcher) -> None:
        nonlocal stored
        while not queue.empty():
            row = queue.get_nowait()
            outcome = await fetcher.fetch(row["url"])
            stored += record(manifest, sink, row, outcome, task.round)

    async with open_session(task.config) as session:
        fetcher = Fetcher(session, task.config, Path(task.base_dir), seed=task.index)
        workers = min(task.config.concurrency, max(1, len(rows)))
        await asyncio.gather(*(worker(fetcher) for _ in range(workers)))
    return stored


def download_shard(task: ShardTask) -> ShardResult:
    """Download one shard and publish it: the tar first, the manifest last (a shard is done iff it exists)."""
    paths = task.paths
    manifest = ManifestBuilder()
    started = time.monotonic()
    candidates = task.candidate_rows()
    with ShardWriter(paths.tar) as writer:
        stored = asyncio.run(_fetch_all(task, candidates, writer, manifest))
    table = manifest.to_table(MANIFEST_SCHEMA)
    write_manifest(paths.manifest, table, expected_keys=candidates.column("key").to_pylist())
    return ShardResult(task.index, status_counts(table), stored, time.monotonic() - started)

"""``passkit download``: plan shards from candidates.parquet, run them on the local runner, resume, retry.

The output folder holds ``NNNNN.tar`` + ``NNNNN.parquet`` per shard and a small state folder
``.passkit-download/`` (the plan: candidates fingerprint, shard size, retry rounds). First-pass shard ``i`` holds
candidate rows ``[i * shard_size, (i + 1) * shard_size)``; a rerun skips shards whose manifest exists.
``--retry-failed`` puts the keys whose latest row failed with a retryable reason into NEW shards (a retry round,
``round`` column = 2, 3, ...) after the last one; finished shards are never rewritten. A key's latest row (highest
shard index) is its outcome: :func:`final_rows` resolves that, one row per candidate.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from passkit.core.atomic import atomic_path
from passkit.core.manifest import FAILED, KEPT, read_manifest
from passkit.core.shards import list_shards, superseded_keys
from passkit.download.candidates import CandidateRange, CandidatesError, CandidatesScan, rows_with_keys, scan_candidates
from passkit.download.config import DownloadConfig
from passkit.download.policy import is_retryable
from passkit.download.shard import ShardResult, ShardTask, download_shard
from passkit.run.local import run_shards

DEFAULT_SHARD_SIZE = 10_000
STATE_DIR = ".passkit-download"


class DownloadError(RuntimeError):
    """A problem with the inputs or the output folder, found before any download starts."""


@dataclass
class Plan:
    candidates_rows: int
    candidates_fingerprint: str
    shard_size: int
    first_pass_shards: int
    retry_rounds: list[dict[str, int]] = field(default_factory=list)
    """``{"round": 2, "first_shard": 17, "shards": 1}`` per ``--retry-failed`` round."""

    @property
    def next_shard(self) -> int:
        last = self.retry_rounds[-1] if self.retry_rounds else None
        return last["first_shard"] + last["shards"] if last else self.first_pass_shards


@dataclass
class DownloadReport:
    candidates: int
    counts: dict[str, int]
    """Final outcome per candidate: ``kept`` or the failure reason (adds up to ``candidates``)."""
    shards_run: int
    shards_skipped: int
    failed_shards: list[tuple[int, str]]
    bytes: int
    seconds: float
    retried: int = 0
    """Rows put into a new retry round by this run."""

    @property
    def complete(self) -> bool:
        return not self.failed_shards


def scan(path: Path) -> CandidatesScan:
    """Check candidates.parquet (contract columns, keys valid and unique) and fingerprint it, streaming."""
    try:
        return scan_candidates(path)
    except CandidatesError as error:
        raise DownloadError(str(error)) from error


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One ``passkit download`` per output folder at a time."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with (state / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise DownloadError(f"another passkit download is writing to {out}") from error
        yield


def load_plan(out: Path, candidates: CandidatesScan, shard_size: int | None) -> Plan:
    """The folder's plan, created on the first run; a rerun must bring the same candidates and shard size."""
    plan = saved_plan(out)
    if plan is not None:
        if plan.candidates_fingerprint != candidates.fingerprint:
            raise DownloadError(f"{out} was started from other candidates; use another --out or the same file")
        if shard_size is not None and shard_size != plan.shard_size:
            raise DownloadError(f"{out} was started with --shard-size {plan.shard_size}, not {shard_size}")
        return plan
    size = shard_size or DEFAULT_SHARD_SIZE
    plan = Plan(candidates.rows, candidates.fingerprint, size, -(-candidates.rows // size))
    save_plan(out, plan)
    return plan


def saved_plan(out: Path) -> Plan | None:
    """The plan a download into ``out`` started with, or None before the first run."""
    path = out / STATE_DIR / "plan.json"
    return Plan(**json.loads(path.read_text())) if path.exists() else None


def first_pass_complete(out: str | os.PathLike[str]) -> bool:
    """Every shard of the first pass has its manifest (retry rounds aside): nothing is left to fetch."""
    plan = saved_plan(Path(out))
    if plan is None:
        return False
    done = {shard.index for shard in list_shards(Path(out))}
    return all(index in done for index in range(plan.first_pass_shards))


def save_plan(out: Path, plan: Plan) -> None:
    with atomic_path(out / STATE_DIR / "plan.json") as temp:
        temp.write_text(json.dumps(asdict(plan), indent=1))


def remove_leftovers(out: Path) -> None:
    """Temporary files of killed runs, and tars whose manifest never came (the shard will be redone)."""
    for entry in out.iterdir():
        if entry.name.startswith(".") and ".tmp-" in entry.name and entry.is_file():
            entry.unlink()
    for shard in list_shards(out, done_only=False):
        if not shard.done:
            shard.tar.unlink(missing_ok=True)


def _retry_round_path(out: Path, round_: int) -> Path:
    return out / STATE_DIR / f"round-{round_:02d}.parquet"


def plan_tasks(
    out: Path, candidates: CandidatesScan, plan: Plan, config: DownloadConfig, base_dir: Path
) -> list[ShardTask]:
    """Every shard of the plan (first pass and recorded retry rounds); the runner skips the finished ones.

    A first-pass task names its row range of the candidates file (the worker reads it); a retry round's tasks carry
    their rows, picked out of the file in one streaming pass (memory: the retried rows only)."""
    source = str(candidates.path.resolve())
    tasks = [
        ShardTask(
            str(out),
            index,
            CandidateRange(
                source, index * plan.shard_size, min(plan.shard_size, plan.candidates_rows - index * plan.shard_size)
            ),
            config,
            str(base_dir),
        )
        for index in range(plan.first_pass_shards)
    ]
    for retry in plan.retry_rounds:
        assignment = pq.read_table(_retry_round_path(out, retry["round"]))
        assignment = assignment.sort_by([("shard", "ascending"), ("key", "ascending")])
        found = rows_with_keys(candidates.path, assignment["key"].combine_chunks())
        rows = found.take(pc.index_in(assignment["key"], value_set=found["key"]))  # assignment order
        shard_of_row = assignment["shard"].to_numpy()
        for index in range(retry["first_shard"], retry["first_shard"] + retry["shards"]):
            start, stop = np.searchsorted(shard_of_row, [index, index + 1])
            shard_rows = _own_copy(rows.slice(start, stop - start))
            tasks.append(ShardTask(str(out), index, shard_rows, config, str(base_dir), round=retry["round"]))
    return tasks


def _own_copy(rows: pa.Table) -> pa.Table:
    """A slice pickles with its parent's whole buffers; a task must carry only its own rows."""
    return rows.take(np.arange(rows.num_rows))


def final_rows(out: str | os.PathLike[str]) -> pa.Table:
    """One manifest row per candidate, sorted by key, with its ``shard``: for a retried key, its latest row."""
    shards = list_shards(out)
    stale = superseded_keys(shards)
    tables = []
    for shard in shards:
        manifest = read_manifest(shard.manifest)
        if shard.index in stale:
            old_rows = pc.is_in(manifest["key"], pa.array(sorted(stale[shard.index]), pa.string()))
            manifest = manifest.filter(pc.invert(old_rows))
        tables.append(manifest.append_column("shard", pa.array([shard.index] * manifest.num_rows, pa.int64())))
    if not tables:
        return pa.table({"key": pa.array([], pa.string()), "status": pa.array([], pa.string())})
    return pa.concat_tables(tables, promote_options="default").sort_by([("key", "ascending")])


def current_rows(out: Path, columns: list[str]) -> Iterator[pa.Table]:
    """Each finished shard's manifest columns without its superseded rows (a later retry round holds the key)."""
    shards = list_shards(out)
    plan = saved_plan(out)
    stale = superseded_keys(shards) if plan is None or plan.retry_rounds else {}
    for shard in shards:
        manifest = pq.read_table(shard.manifest, columns=columns)
        if shard.index in stale:
            old_rows = pc.is_in(manifest["key"], pa.array(sorted(stale[shard.index]), pa.string()))
            manifest = manifest.filter(pc.invert(old_rows))
        yield manifest


def new_retry_round(out: Path, plan: Plan) -> int:
    """Record a retry round for the keys whose latest row failed with a retryable reason; returns its size."""
    retry_keys: list[str] = []
    for rows in current_rows(out, ["key", "status", "reason"]):
        failed = rows.filter(pc.equal(rows["status"], FAILED))
        retry_keys += [
            key
            for key, reason in zip(failed["key"].to_pylist(), failed["reason"].to_pylist(), strict=True)
            if is_retryable(reason)
        ]
    if not retry_keys:
        return 0
    retry_keys.sort()
    round_ = 1 + max([1, *(r["round"] for r in plan.retry_rounds)])
    first = plan.next_shard
    shards = [first + i // plan.shard_size for i in range(len(retry_keys))]
    with atomic_path(_retry_round_path(out, round_)) as temp:
        pq.write_table(pa.table({"key": retry_keys, "shard": pa.array(shards, pa.int64())}), temp)
    plan.retry_rounds.append({"round": round_, "first_shard": first, "shards": shards[-1] - first + 1})
    save_plan(out, plan)
    return len(retry_keys)


def download(
    candidates: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: DownloadConfig | None = None,
    *,
    workers: int = 1,
    shard_size: int | None = None,
    retry_failed: bool = False,
    console: Console | None = None,
) -> DownloadReport:
    """Download every candidate into shards of ``out``; resumable, and ``retry_failed`` adds a retry round."""
    config = config or DownloadConfig()
    candidates_path = Path(candidates)
    out_path = Path(out)
    if shard_size is not None and shard_size < 1:
        raise DownloadError(f"--shard-size must be >= 1, got {shard_size}")
    candidates_scan = scan(candidates_path)
    base_dir = candidates_path.resolve().parent
    started = time.monotonic()
    report = DownloadReport(candidates_scan.rows, {}, 0, 0, [], 0, 0.0)
    with locked(out_path):
        plan = load_plan(out_path, candidates_scan, shard_size)
        remove_leftovers(out_path)
        tasks = plan_tasks(out_path, candidates_scan, plan, config, base_dir)
        report.shards_skipped = sum(task.paths.done for task in tasks)
        _run(tasks, workers, console, report)
        if retry_failed and report.complete:
            report.retried = new_retry_round(out_path, plan)
            if report.retried:
                _run(plan_tasks(out_path, candidates_scan, plan, config, base_dir), workers, console, report)
    report.seconds = time.monotonic() - started
    report.counts = _counts(out_path, candidates_scan.rows)
    return report


def _run(tasks: list[ShardTask], workers: int, console: Console | None, report: DownloadReport) -> None:
    def on_result(task: ShardTask, result: ShardResult) -> None:
        report.bytes += result.bytes

    run = run_shards(
        tasks,
        download_shard,
        workers=workers,
        description="downloading shards",
        is_done=lambda task: task.paths.done,
        on_result=on_result,
        console=console,
    )
    report.shards_run += len(run.results)
    report.failed_shards = [(task.index, error) for task, error in run.failed]


def _counts(out: Path, candidates: int) -> dict[str, int]:
    """Outcome per candidate (kept or the failure reason), summed shard by shard over the current rows."""
    counts: dict[str, int] = {}
    rows_seen = 0
    for rows in current_rows(out, ["key", "status", "reason"]):
        rows_seen += rows.num_rows
        labels = pc.if_else(pc.equal(rows["status"], KEPT), KEPT, rows["reason"])
        for item in pc.value_counts(labels).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    pending = candidates - rows_seen
    if pending:
        counts["pending"] = pending
    return counts

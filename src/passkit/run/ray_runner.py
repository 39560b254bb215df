"""The Ray runner: the same per-shard work as the local runner, distributed by Ray Data.

One dataset row per unfinished shard flows through two ``map_batches`` operators:

* **download** — tasks (``concurrency`` = ``runner.workers``) running :func:`passkit.download.shard.download_shard`;
* **filter pass 1** — an actor pool (``ActorPoolStrategy(size=runner.filter_actors)``, ``num_gpus`` per actor when
  configured) running :func:`passkit.run.filter.filter_shard`; each actor loads the detector models once in its
  constructor and keeps them for every shard it gets.

Ray Data streams rows between the operators, so a shard is filtered while later ones still download. Both write
exactly the files the local runner writes (``download/NNNNN.{tar,parquet}``, ``filtered/per-shard/NNNNN.*``) and skip
shards whose manifest exists, so a run started with one runner finishes with the other. A shard whose work raises
is reported and publishes no manifest (the next run redoes it), as with the local runner. The global filter pass and
the summaries run on the driver afterwards (the build calls the local modules, which find every shard done).
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from passkit.core.shards import ShardPaths, superseded_keys
from passkit.detect.registry import MODELS_ENV
from passkit.download.runner import load_plan, locked, plan_tasks, remove_leftovers, scan
from passkit.download.shard import download_shard
from passkit.run.filter import PER_SHARD_DIR, ShardTask, filter_shard, shard_stages
from passkit.stages.humans import HumansConfig, humans_stage

if TYPE_CHECKING:
    from passkit.config import BuildConfig

RESULT_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("filter_task", pa.binary()),
        ("stage", pa.string()),  # the stage that last handled the shard
        ("error", pa.string()),  # "" when the shard is done
        ("seconds", pa.float64()),
    ]
)


class RayUnavailableError(RuntimeError):
    pass


@dataclass
class RayReport:
    shards: int = 0  # shards that had work left
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def download_batch(batch: pa.Table) -> pa.Table:
    """Ray Data operator: download each row's shard unless its manifest exists."""
    out: list[dict[str, Any]] = []
    for row in batch.to_pylist():
        started = time.monotonic()
        error = ""
        task = pickle.loads(row["download_task"])
        if not task.paths.done:
            try:
                download_shard(task)
            except Exception as failure:  # noqa: BLE001 -- recorded as a failed shard; the run goes on
                error = _describe(failure)
        out.append(
            {
                "index": row["index"],
                "filter_task": row["filter_task"],
                "stage": "download",
                "error": error,
                "seconds": time.monotonic() - started,
            }
        )
    return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)


class FilterActor:
    """Ray Data actor: filter pass 1 per shard; the detector models are loaded once, here."""

    def __init__(self, humans: HumansConfig | None, models_dir: str = "") -> None:
        if models_dir:
            os.environ[MODELS_ENV] = models_dir
        if humans is not None:
            humans_stage([], humans)  # builds and caches the ensemble of this worker process

    def __call__(self, batch: pa.Table) -> pa.Table:
        out: list[dict[str, Any]] = []
        for row in batch.to_pylist():
            started = time.monotonic()
            error = row["error"]
            task: ShardTask = pickle.loads(row["filter_task"])
            if not error and not task.staged.done:
                if not task.source.done:
                    error = f"download shard {task.source.name} has no manifest"
                else:
                    try:
                        filter_shard(task)
                    except Exception as failure:  # noqa: BLE001 -- recorded as a failed shard; the run goes on
                        error = _describe(failure)
            out.append(
                {
                    "index": row["index"],
                    "filter_task": b"",
                    "stage": row["stage"] if row["error"] else "filter",
                    "error": error,
                    "seconds": row["seconds"] + time.monotonic() - started,
                }
            )
        return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)


def connect(address: str, models_dir: str) -> bool:
    """Join the cluster at ``address`` (``''``: ``$RAY_ADDRESS``, else a Ray instance on this machine); returns
    whether this call started the connection (and so should end it)."""
    try:
        import ray
    except ImportError as error:
        raise RayUnavailableError("runner = ray needs the ray extra: pip install 'passkit[ray]'") from error
    if ray.is_initialized():
        return False
    env = {MODELS_ENV: models_dir} if models_dir else {}
    target = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    if target is None:
        kwargs.update(include_dashboard=False)
    try:
        ray.init(address=target, logging_level="WARNING", **kwargs)
    except ConnectionError as error:
        raise RayUnavailableError(
            f"cannot reach a Ray cluster at {target!r} ({error}); start one with `ray start --head` (then "
            'ray_address = "auto" or the head\'s address), or leave ray_address empty for a Ray instance here'
        ) from error
    return True


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _execute(dataset: Any, total: int, description: str, console: Console, report: RayReport) -> None:
    with _progress(console) as progress:
        bar = progress.add_task(description, total=total)
        for batch in dataset.iter_batches(batch_size=1, batch_format="pyarrow"):
            for row in batch.select(["index", "stage", "error"]).to_pylist():
                if row["error"]:
                    report.failed.append(f"{row['stage']} {row['index']:05d}: {row['error']}")
                progress.advance(bar)


def run_on_ray(
    cfg: BuildConfig,
    candidates: Path,
    download_dir: Path,
    filtered_dir: Path,
    *,
    console: Console | None = None,
) -> RayReport:
    """Download and filter (pass 1) every unfinished shard of the run on Ray."""
    console = console or Console(stderr=True)
    started_connection = connect(cfg.runner.ray_address, cfg.humans_options.models)
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    report = RayReport()
    started = time.monotonic()
    filter_cfg = cfg.filter_config
    chain = tuple(shard_stages(filter_cfg))
    staged_root = filtered_dir / PER_SHARD_DIR
    try:
        candidates_scan = scan(candidates)
        with locked(download_dir):
            plan = load_plan(download_dir, candidates_scan, cfg.sharding.shard_size)
            remove_leftovers(download_dir)
            download_tasks = plan_tasks(download_dir, candidates_scan, plan, cfg.download, candidates.resolve().parent)
            streamed = not plan.retry_rounds  # retried keys supersede earlier rows: filter after all downloads

            def filter_task(index: int, superseded: frozenset[str] = frozenset()) -> ShardTask:
                return ShardTask(
                    ShardPaths(download_dir, index), ShardPaths(staged_root, index), chain, filter_cfg.batch_size,
                    superseded,
                )  # fmt: skip

            pending = [task for task in download_tasks if not ShardPaths(staged_root, task.index).done]
            report.shards = len(pending)
            if not pending:
                return report
            items = [
                {
                    "index": task.index,
                    "download_task": pickle.dumps(task),
                    "filter_task": pickle.dumps(filter_task(task.index)) if streamed else b"",
                }
                for task in pending
            ]
            dataset = ray.data.from_items(items, override_num_blocks=len(items))
            dataset = dataset.map_batches(
                download_batch, batch_size=1, batch_format="pyarrow", concurrency=cfg.runner.workers, num_cpus=1
            )
            actors = {
                "fn_constructor_args": (filter_cfg.humans, cfg.humans_options.models),
                "batch_size": 1,
                "batch_format": "pyarrow",
                "compute": ray.data.ActorPoolStrategy(size=cfg.runner.filter_actors),
                "num_cpus": cfg.runner.cpus_per_actor,
            }
            if cfg.runner.gpus_per_actor > 0:
                actors["num_gpus"] = cfg.runner.gpus_per_actor
            if streamed:
                _execute(
                    dataset.map_batches(FilterActor, **actors), len(items), "ray: download + filter", console, report
                )
                return report
            _execute(dataset, len(items), "ray: download", console, report)
            if report.failed:
                return report
            finished = [ShardPaths(download_dir, task.index) for task in download_tasks]
            stale = superseded_keys(finished)
            rows = [
                {
                    "index": task.index,
                    "filter_task": pickle.dumps(filter_task(task.index, stale.get(task.index, frozenset()))),
                    "stage": "download",
                    "error": "",
                    "seconds": 0.0,
                }
                for task in pending
            ]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            _execute(dataset.map_batches(FilterActor, **actors), len(rows), "ray: filter", console, report)
            return report
    finally:
        report.seconds = time.monotonic() - started
        if started_connection:
            ray.shutdown()

"""Local runner: a process pool over shards, shard-level resume, progress, and failures recorded per shard.

The runner knows nothing of what a shard task does. It skips tasks that are already done (the caller says how:
normally "the shard's manifest exists"), runs the rest on ``workers`` processes (inline when ``workers <= 1``),
shows a progress bar, and records a task that raises as a failed shard instead of stopping the run. A failed
shard publishes no manifest, so the next run retries it.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")


@dataclass
class RunReport(Generic[TaskT, ResultT]):
    results: list[tuple[TaskT, ResultT]] = field(default_factory=list)
    skipped: list[TaskT] = field(default_factory=list)
    failed: list[tuple[TaskT, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def run_shards(
    tasks: Sequence[TaskT],
    work: Callable[[TaskT], ResultT],
    *,
    workers: int = 1,
    description: str = "shards",
    is_done: Callable[[TaskT], bool] | None = None,
    on_result: Callable[[TaskT, ResultT], None] | None = None,
    console: Console | None = None,
    mp_context: str = "spawn",
) -> RunReport[TaskT, ResultT]:
    """Run ``work(task)`` for every task not yet done; ``work`` must be a picklable module-level function."""
    report: RunReport[TaskT, ResultT] = RunReport()
    pending = []
    for task in tasks:
        if is_done is not None and is_done(task):
            report.skipped.append(task)
        else:
            pending.append(task)

    def record(task: TaskT, result: ResultT) -> None:
        report.results.append((task, result))
        if on_result is not None:
            on_result(task, result)

    with _progress(console) as progress:
        bar = progress.add_task(description, total=len(pending))
        if workers <= 1 or len(pending) <= 1:
            for task in pending:
                try:
                    result = work(task)
                except Exception as error:  # noqa: BLE001 -- recorded as a failed shard; the run goes on
                    report.failed.append((task, _describe(error)))
                else:
                    record(task, result)
                progress.advance(bar)
            return report
        context = multiprocessing.get_context(mp_context)
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context) as pool:
            futures: dict[Future[ResultT], TaskT] = {pool.submit(work, task): task for task in pending}
            try:
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        task = futures.pop(future)
                        try:
                            result = future.result()
                        except BrokenProcessPool as error:
                            report.failed.append((task, f"worker process died: {_describe(error)}"))
                        except Exception as error:  # noqa: BLE001 -- recorded as a failed shard; the run goes on
                            report.failed.append((task, _describe(error)))
                        else:
                            record(task, result)
                        progress.advance(bar)
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                raise
    return report

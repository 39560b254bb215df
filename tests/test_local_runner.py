import os
import signal

import pytest

from passkit.run.local import run_shards


def square(task: int) -> int:
    if task == 3:
        raise ValueError("shard 3 is broken")
    return task * task


def die_on_five(task: int) -> int:
    if task == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return task


@pytest.mark.parametrize("workers", [1, 2])
def test_results_failures_and_skips(workers):
    seen = []
    report = run_shards(
        list(range(6)),
        square,
        workers=workers,
        is_done=lambda task: task == 0,
        on_result=lambda task, result: seen.append((task, result)),
    )
    assert sorted(report.results) == [(1, 1), (2, 4), (4, 16), (5, 25)]
    assert sorted(seen) == sorted(report.results)
    assert report.skipped == [0]
    assert [(task, "shard 3 is broken" in message) for task, message in report.failed] == [(3, True)]
    assert not report.ok


def test_a_dead_worker_fails_its_shards_not_the_run():
    report = run_shards([5, 6], die_on_five, workers=2)
    failed = dict(report.failed)
    assert 5 in failed and "worker process died" in failed[5]
    assert len(report.results) + len(report.failed) == 2


def test_nothing_to_do():
    report = run_shards([1, 2], square, workers=2, is_done=lambda task: True)
    assert report.skipped == [1, 2] and report.results == [] and report.ok

"""`passkit build` end to end over real HTTP: accounting, run.json, resume, SIGKILL at several points, Ray."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from typer.testing import CliRunner

from build_helpers import kept_keys, make_pool, real_photos, serving, snapshot, write_config, write_pool
from conftest import PEOPLE_DEV, SHARED_MODELS
from passkit.build import BuildError, build, print_report
from passkit.cli import app
from passkit.config import load_config, with_overrides
from passkit.core.shards import list_shards, verify_shard

pytestmark = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="detector models of ../shared/models are needed")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A pool served over loopback for the whole module: generated photos, real photos with and without people."""
    folder = tmp_path_factory.mktemp("pool")
    photos = real_photos(PEOPLE_DEV, with_people=3, without=6) if (PEOPLE_DEV / "labels.csv").is_file() else []
    content = make_pool(folder, generated=16, photos=photos)
    with serving(content["files"], latency=0.02) as server:
        yield write_pool(folder / "pool.parquet", content, server.base)


@pytest.fixture(scope="module")
def reference(pool, tmp_path_factory):
    """An uninterrupted local run (one process) of the humans-on config."""
    folder = tmp_path_factory.mktemp("reference")
    cfg = load_config(write_config(folder / "build.toml", pool, humans="fast"))
    report = build(cfg, console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert report.balanced
    return folder / "run", report


def test_build_end_to_end_counts_add_up(reference, pool):
    run, report = reference
    outcomes = report.outcomes
    assert sum(outcomes.values()) == report.records == pq.read_metadata(pool).num_rows
    # every stage contributed its reject reasons, select's included
    for reason in ("license:not-allowed", "attribution:incomplete:creator", "cap:creator", "download:http-404",
                   "image:too-small", "dedup:exact"):  # fmt: skip
        assert outcomes[reason] >= 1, reason
    assert any(reason.startswith("humans:") for reason in outcomes)
    assert report.kept == len(kept_keys(run)) > 0
    assert all(verify_shard(shard).ok for shard in list_shards(run / "filtered"))
    data = json.loads((run / "run.json").read_text())
    assert data["balanced"] and data["records"] == report.records and data["kept"] == report.kept
    assert data["config_hash"] == report.config_hash and data["passkit"]
    assert set(data["models"]) == {"yolox_nano", "fastestdet", "yunet"}
    assert all(len(model["sha256"]) == 64 for model in data["models"].values())
    assert {t["stage"] for t in data["timings"]} == {"select", "download", "filter", "release"}
    assert all(t["items"] > 0 and t["per_second"] > 0 for t in data["timings"])
    assert sum(sum(stage["rows"].values()) for stage in data["stages"].values()) == report.records
    assert (run / "config.toml").is_file() and "v1, " in data["release"]
    release = run / "release" / "v1"
    assert (release / "VERSION").read_text().strip() == "1"
    metadata = pq.read_table(release / "metadata.parquet")
    assert sorted(metadata.column("key").to_pylist()) == sorted(kept_keys(run))
    listed = {line.split()[-1] for line in (release / "SHA256SUMS").read_text().splitlines()}
    assert {"metadata.parquet", "datasheet.html", "croissant.json"} <= listed


def test_rerun_resumes_everything_and_changes_nothing(reference, pool, tmp_path):
    run, _ = reference
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = with_overrides(load_config(write_config(tmp_path / "build.toml", pool, humans="fast")), out=copy)
    report = build(cfg, console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert report.balanced
    assert all(timing.resumed for timing in report.timings)
    assert snapshot(copy) == snapshot(run)
    assert len(json.loads((copy / "run.json").read_text())["invocations"]) == 2


def test_a_started_run_refuses_another_data_config(reference, pool, tmp_path):
    run, _ = reference
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    changed = write_config(tmp_path / "b.toml", pool, humans="fast", extra="[dedup]\nnear_threshold = 4")
    with pytest.raises(BuildError, match="differs in: dedup"):
        build(with_overrides(load_config(changed), out=copy), console=Console(file=open(os.devnull, "w")))  # noqa: SIM115


def test_cli_build_prints_a_summary_that_adds_up(pool, tmp_path, monkeypatch):
    from passkit import cli

    monkeypatch.setattr(cli, "console", Console(width=200))
    config = write_config(tmp_path / "build.toml", pool, humans="off")
    result = CliRunner().invoke(app, ["build", str(config)])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "run" / "run.json").read_text())["records"]
    assert f"records in: {records:,} = " in result.output and "add up" in result.output
    assert "release: pass v1" in result.output


def _count(folder: Path) -> int:
    return len(list_shards(folder)) if folder.is_dir() else 0


def _kill_when(command: list[str], ready, what: str) -> None:
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"the build ended before the kill point ({what})"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun_matches_an_uninterrupted_run(reference, pool, tmp_path):
    """A real `passkit build` (2 worker processes) killed in download, in filter pass 1 and in the global pass."""
    run, _ = reference
    config = write_config(tmp_path / "build.toml", pool, humans="fast", workers=2)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "passkit.cli", "build", str(config)]
    shards = len(list_shards(run / "download"))

    _kill_when(command, lambda: _count(out / "download") >= 2, "download")
    assert 2 <= _count(out / "download") < shards
    _kill_when(command, lambda: _count(out / "filtered" / "per-shard") >= 2, "filter pass 1")
    assert _count(out / "download") == shards and 2 <= _count(out / "filtered" / "per-shard") < shards
    _kill_when(command, lambda: _count(out / "filtered") >= 1, "global pass")

    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "add up" in finished.stdout
    assert snapshot(out) == snapshot(run)
    assert not [path for path in out.rglob("*") if ".tmp-" in path.name]
    assert len(json.loads((out / "run.json").read_text())["invocations"]) == 1  # killed runs write no report


# ---- Ray ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the Ray runner needs the `ray` extra: pip install 'passkit[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _remove_shard(run: Path, index: int, stages: tuple[str, ...]) -> None:
    for stage in stages:
        for suffix in (".tar", ".parquet"):
            (run / stage / f"{index:05d}{suffix}").unlink(missing_ok=True)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_runner_writes_what_the_local_runner_writes_and_runs_finish_across_runners(
    ray_session, reference, pool, tmp_path
):
    run, local_report = reference
    config = write_config(tmp_path / "build.toml", pool, humans="fast", extra='kind = "ray"\nfilter_actors = 1')
    cfg = load_config(config)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    report = build(cfg, console=quiet)
    out = tmp_path / "run"
    assert report.balanced and report.runner == "ray"
    assert kept_keys(out) == kept_keys(run)
    assert snapshot(out) == snapshot(run)
    assert report.outcomes == local_report.outcomes

    # started on Ray, finished locally: a shard lost in both stages, another only in filter pass 1
    _remove_shard(out, 1, ("download", "filtered/per-shard", "filtered"))
    _remove_shard(out, 3, ("filtered/per-shard",))
    local = build(with_overrides(cfg, runner="local"), console=quiet)
    assert local.balanced and snapshot(out) == snapshot(run)

    # started locally, finished on Ray
    _remove_shard(out, 0, ("download", "filtered/per-shard"))
    _remove_shard(out, 2, ("filtered/per-shard",))
    again = build(cfg, console=quiet)
    assert again.balanced and snapshot(out) == snapshot(run)
    timings = {timing.stage: timing for timing in again.timings}
    assert timings["download"].items == 4 and timings["filter"].items == 8


def test_summary_screen_of_an_unfinished_run_says_so(reference):
    _, report = reference
    from copy import copy

    unfinished = copy(report)
    unfinished.finished = False
    unfinished.failed_shards = ["download 00003: worker process died"]
    console = Console(width=200, record=True)
    print_report(unfinished, console)
    text = console.export_text()
    assert "not finished" in text and "rerun the same command to resume" in text


def test_global_pass_rerun_over_hard_linked_tars_leaves_no_temporary_files(reference, tmp_path):
    """filter's global pass hard-links unchanged tars; redoing it (a rerun after a kill) must not leave temp files."""
    from passkit.run.filter import FilterConfig, run_filter

    run, _ = reference
    shutil.copytree(run / "download", tmp_path / "download")
    cfg = FilterConfig(humans=None)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    run_filter(tmp_path / "download", tmp_path / "filtered", cfg, console=quiet)
    first = snapshot_files(tmp_path / "filtered")
    run_filter(tmp_path / "download", tmp_path / "filtered", cfg, console=quiet)
    assert snapshot_files(tmp_path / "filtered") == first
    assert not [path.name for path in (tmp_path / "filtered").iterdir() if ".tmp-" in path.name]


def snapshot_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())

"""``passkit build CONFIG.toml``: select -> download -> filter (-> release) into one run folder, resumable.

The run folder (RUN, the config's ``out``)::

    RUN/config.toml, RUN/run.json                         resolved config; versions, counts, timings
    RUN/candidates.parquet, RUN/candidates.rejects.parquet  select (published atomically: done iff present)
    RUN/download/NNNNN.{tar,parquet}                       download (a shard is done iff its manifest exists)
    RUN/filtered/NNNNN.{tar,parquet} (+ per-shard/)        filter (pass 1 per shard, then the global pass)
    RUN/release/vN/                                        release

Every stage is the existing module (:mod:`passkit.selection`, :mod:`passkit.download.runner`,
:mod:`passkit.run.filter`); this module only chains them, picks the runner (the local process pool or
:mod:`passkit.run.ray_runner`, which writes the same shards), and accounts for every pool record: the summary's
rows are select's rejects plus one row per candidate in the filtered manifests, and they add up to the records read.
A rerun resumes at shard level; a killed run leaves only temporary files, which the next run removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from passkit import __version__
from passkit.config import BuildConfig, ConfigError, config_hash, from_dict, render
from passkit.core.atomic import atomic_path
from passkit.core.manifest import KEPT
from passkit.core.shards import list_shards
from passkit.selection import rejects_path_for

CANDIDATES = "candidates.parquet"
DOWNLOAD_DIR = "download"
FILTERED_DIR = "filtered"
RELEASE_DIR = "release"
RUN_JSON = "run.json"
CONFIG_COPY = "config.toml"
LOCK = ".passkit-build.lock"
SELECT_STAGE = "select"
DOWNLOAD_STAGE = "download"


class BuildError(RuntimeError):
    """The build cannot go on (bad run folder, another config, unfinished shards); the message says what to do."""


@dataclass
class StageTiming:
    stage: str
    seconds: float = 0.0
    items: int = 0  # items this invocation processed (records, candidates, rows); resumed work is not counted
    resumed: bool = False  # nothing (left) to do: the stage's output was already there
    note: str = ""

    @property
    def per_second(self) -> float | None:
        return self.items / self.seconds if self.items and self.seconds > 0 else None


@dataclass
class BuildReport:
    run_dir: Path
    config_hash: str
    runner: str
    records: int = 0  # pool records read by select
    candidates: int = 0
    select_rejects: Counter[str] = field(default_factory=Counter)
    filter_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, label) over final manifests
    timings: list[StageTiming] = field(default_factory=list)
    failed_shards: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    release: str = "release: not run"
    finished: bool = False

    @property
    def kept(self) -> int:
        return sum(count for (_, label), count in self.filter_counts.items() if label == KEPT)

    @property
    def outcomes(self) -> Counter[str]:
        """Every pool record's outcome: kept or its reject/failure reason (select's included)."""
        counts = Counter(self.select_rejects)
        for (_, label), count in self.filter_counts.items():
            counts[label] += count
        return counts

    @property
    def balanced(self) -> bool:
        return self.finished and sum(self.outcomes.values()) == self.records

    def by_stage(self) -> list[tuple[str, str, int]]:
        """(stage, outcome, rows): select's rejects, then the filter's rows per stage (download failures come in as
        the filter's carried-over rows), kept last."""
        rows = [(SELECT_STAGE, reason, count) for reason, count in sorted(self.select_rejects.items())]
        order = {"input": 0, "validate": 1, "humans": 2, "privacy": 3, "dedup": 8, "cap": 9, KEPT: 10}
        for (stage, label), count in sorted(
            self.filter_counts.items(),
            key=lambda item: (order.get(item[0][0].split(" ")[0], 5), item[0][0], item[0][1]),
        ):
            shown = DOWNLOAD_STAGE if stage == "input (download)" else stage
            rows.append((shown, label, count))
        return rows


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One build per run folder at a time (the leftovers of killed runs are removed under this lock)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BuildError(f"another passkit build is running in {run_dir}") from error
        yield


def remove_temporaries(folder: Path) -> None:
    """Temporary files (``.NAME.tmp-PID-XXXX``) a killed run left in a filter folder; outputs are atomic."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.startswith(".") and ".tmp-" in entry.name:
            entry.unlink(missing_ok=True)


def check_run_config(run_dir: Path, cfg: BuildConfig) -> None:
    """A started run continues only with the same data settings (the runner and release options may change)."""
    previous_path = run_dir / CONFIG_COPY
    if not previous_path.exists():
        return
    import tomllib

    try:
        previous = from_dict(tomllib.loads(previous_path.read_text(encoding="utf-8")))
    except (ConfigError, tomllib.TOMLDecodeError) as error:
        raise BuildError(f"{previous_path} is not a config this passkit can read ({error}); use another out") from error
    if config_hash(previous) == config_hash(cfg):
        return
    from passkit.config import DATA_SECTIONS

    differ = [
        name
        for name in DATA_SECTIONS
        if render(previous, comments=False, sections=(name,)) != render(cfg, comments=False, sections=(name,))
    ]
    raise BuildError(
        f"{run_dir} was started with another config (differs in: {', '.join(differ)}); "
        f"use another out, or the config in {previous_path}"
    )


def model_versions(cfg: BuildConfig) -> dict[str, dict[str, str | None]]:
    """The detector models of the humans preset with their registry sha256, license and URL."""
    humans = cfg.filter_config.humans
    if humans is None:
        return {}
    from passkit.detect.presets import get_preset
    from passkit.detect.registry import expected_sha256, get_entry

    versions: dict[str, dict[str, str | None]] = {}
    for name in sorted({item.model for item in get_preset(humans.preset).passes}):
        entry = get_entry(name)
        versions[name] = {"sha256": expected_sha256(entry), "license": entry.license, "url": entry.url}
    return versions


def _manifest_rows(folder: Path) -> int:
    return sum(pq.read_metadata(shard.manifest).num_rows for shard in list_shards(folder))


def reject_counts(rejects: Path) -> Counter[str]:
    """Rows per reason of select's rejects file, counted batch by batch (the file can hold most of the pool)."""
    counts: Counter[str] = Counter()
    for batch in pq.ParquetFile(rejects).iter_batches(batch_size=65_536, columns=["reason"]):
        for item in batch.column(0).value_counts().to_pylist():
            counts[item["values"]] += item["counts"]
    return counts


# ---- stages ------------------------------------------------------------------------------------------------------


def run_select_step(cfg: BuildConfig, run_dir: Path, report: BuildReport, console: Console) -> None:
    candidates = run_dir / CANDIDATES
    rejects = rejects_path_for(candidates)
    timing = StageTiming(SELECT_STAGE)
    started = time.monotonic()
    if candidates.exists() and rejects.exists():
        timing.resumed = True
    else:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from passkit.selection import SourceError, open_source, run_select

        if not cfg.sources.paths:
            raise BuildError("sources.paths is empty: name at least one pool source in the config")
        try:
            readers = [
                open_source(spec, columns=cfg.sources.columns, source_name=cfg.sources.source_name or None)
                for spec in cfg.sources.paths
            ]
        except (SourceError, ValueError) as error:
            raise BuildError(f"sources: {error}") from error
        with Progress(
            SpinnerColumn(), TextColumn("select: {task.description}"), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("reading")

            def on_progress(source: str, rows: int) -> None:
                progress.update(task, description=f"{Path(source).name}: {rows:,} records read")

            summary = run_select(readers, candidates, cfg.select, on_progress=on_progress)
        report.problems += summary.problems
        timing.items = summary.rows_in
    report.candidates = pq.read_metadata(candidates).num_rows
    report.select_rejects = reject_counts(rejects)
    report.records = report.candidates + sum(report.select_rejects.values())
    timing.seconds = time.monotonic() - started
    report.timings.append(timing)


def run_shard_steps(cfg: BuildConfig, run_dir: Path, report: BuildReport, console: Console) -> bool:
    """Download and filter; returns False (with the failed shards in the report) when shards are unfinished."""
    from passkit.download import DownloadError
    from passkit.download import download as run_download
    from passkit.run.filter import PER_SHARD_DIR, require_models, run_filter

    download_dir, filtered_dir = run_dir / DOWNLOAD_DIR, run_dir / FILTERED_DIR
    filter_cfg = cfg.filter_config
    from passkit.detect.registry import ModelError

    try:
        require_models(filter_cfg)  # a missing model is an error before anything is fetched
    except ModelError as error:
        raise BuildError(str(error)) from error
    for folder in (filtered_dir, filtered_dir / PER_SHARD_DIR):
        remove_temporaries(folder)
    download_before = _manifest_rows(download_dir) if download_dir.is_dir() else 0
    staged_before = _manifest_rows(filtered_dir / PER_SHARD_DIR) if (filtered_dir / PER_SHARD_DIR).is_dir() else 0
    download_timing, filter_timing = StageTiming(DOWNLOAD_STAGE), StageTiming("filter")

    if cfg.runner.kind == "ray":
        from passkit.run.ray_runner import RayUnavailableError, run_on_ray

        try:
            ray_report = run_on_ray(cfg, run_dir / CANDIDATES, download_dir, filtered_dir, console=console)
        except (RayUnavailableError, DownloadError) as error:
            raise BuildError(str(error)) from error
        report.failed_shards += ray_report.failed
        download_timing.seconds = ray_report.seconds
        filter_timing.seconds = ray_report.seconds
        note = "ray: download and filter pass 1 stream together; both show the shared wall-clock time"
        download_timing.note = filter_timing.note = note
        if ray_report.failed:
            report.timings += [download_timing, filter_timing]
            return False

    started = time.monotonic()
    try:
        downloaded = run_download(
            run_dir / CANDIDATES,
            download_dir,
            cfg.download,
            workers=cfg.runner.workers,
            shard_size=cfg.sharding.shard_size,
            console=console,
        )
    except DownloadError as error:
        raise BuildError(str(error)) from error
    download_timing.seconds += time.monotonic() - started
    download_timing.items = _manifest_rows(download_dir) - download_before
    download_timing.resumed = download_timing.items == 0 and downloaded.complete
    report.timings.append(download_timing)
    if not downloaded.complete:
        report.failed_shards += [f"download {index:05d}: {error}" for index, error in downloaded.failed_shards]
        return False

    started = time.monotonic()
    summary = run_filter(
        download_dir,
        filtered_dir,
        filter_cfg,
        workers=cfg.runner.workers,
        exclude_near=cfg.dedup_options.exclude_near,
        console=console,
    )
    filter_timing.seconds += time.monotonic() - started
    filter_timing.items = _manifest_rows(filtered_dir / PER_SHARD_DIR) - staged_before
    filter_timing.resumed = filter_timing.items == 0
    report.timings.append(filter_timing)
    report.problems += summary.problems
    report.failed_shards += [f"filter {name}: {error}" for name, error in summary.failed]
    if summary.failed or summary.unfinished_inputs:
        return False
    report.filter_counts = summary.counts
    return True


def run_release_step(cfg: BuildConfig, run_dir: Path, report: BuildReport) -> None:
    """RUN/filtered -> RUN/release/v1 (kept images minus review rejects; see ``passkit.release``).

    A release that exists is left as it is (resume); later versions come from ``passkit release`` after review or
    from ``passkit takedown``.
    """
    if not cfg.release.enabled:
        report.release = "release: disabled in the config ([release] enabled = false)"
        return
    from passkit.release import ReleaseConfig, build_release

    out = run_dir / RELEASE_DIR / "v1"
    if (out / "VERSION").exists():
        report.release = f"release: {out} exists (resumed; `passkit release` writes a new version)"
        report.timings.append(StageTiming("release", resumed=True))
        return
    options = cfg.release
    release_cfg = ReleaseConfig(
        name=options.name,
        shard_size=options.shard_size,
        layout_folder=options.layout_folder,
        include_gps=options.include_gps,
        license_policy=cfg.select.policy,
        title=options.title,
        description=options.description,
        url=options.url,
        contact=options.contact,
        date_published=options.date_published,
    )
    started = time.perf_counter()
    rejects = run_dir / "candidates.rejects.parquet"
    result = build_release(
        run_dir / FILTERED_DIR, out, release_cfg, candidates_rejects=rejects if rejects.exists() else None
    )
    report.timings.append(StageTiming("release", time.perf_counter() - started, result.images))
    report.release = (
        f"release: {result.name} v{result.version}, {result.images:,} images in {result.shards} shards -> {out}"
    )


# ---- the whole build ---------------------------------------------------------------------------------------------


def build(cfg: BuildConfig, *, console: Console | None = None) -> BuildReport:
    """Run (or resume) the pipeline of ``cfg`` into ``cfg.out``; returns the report (also written to run.json)."""
    console = console or Console(stderr=True)
    run_dir = cfg.out.resolve()
    report = BuildReport(run_dir, config_hash(cfg), cfg.runner.kind)
    if cfg.humans_options.models:
        from passkit.detect.registry import MODELS_ENV

        os.environ[MODELS_ENV] = cfg.humans_options.models  # inherited by the worker processes
    started_at = datetime.now(UTC)
    with run_lock(run_dir):
        check_run_config(run_dir, cfg)
        with atomic_path(run_dir / CONFIG_COPY) as temp:
            temp.write_text(render(cfg), encoding="utf-8")
        run_select_step(cfg, run_dir, report, console)
        if report.candidates == 0:
            raise BuildError(f"select admitted no candidates from {report.records:,} records; nothing to download")
        if run_shard_steps(cfg, run_dir, report, console):
            report.finished = True
            run_release_step(cfg, run_dir, report)
        write_run_json(cfg, report, started_at)
    return report


def write_run_json(cfg: BuildConfig, report: BuildReport, started_at: datetime) -> None:
    path = report.run_dir / RUN_JSON
    history: list[dict[str, Any]] = []
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            history = json.loads(path.read_text(encoding="utf-8")).get("invocations", [])
    now = datetime.now(UTC)
    history.append(
        {
            "started": started_at.isoformat(timespec="seconds"),
            "seconds": round((now - started_at).total_seconds(), 3),
            "runner": report.runner,
            "finished": report.finished,
        }
    )
    stages: dict[str, dict[str, Any]] = {
        SELECT_STAGE: {"records": report.records, "candidates": report.candidates, "rows": {}}
    }
    for stage, label, count in report.by_stage():
        stages.setdefault(stage, {}).setdefault("rows", {})[label] = count
    data = {
        "passkit": __version__,
        "python": platform.python_version(),
        "config_hash": report.config_hash,
        "runner": report.runner,
        "finished": report.finished,
        "balanced": report.balanced,
        "records": report.records,
        "candidates": report.candidates,
        "kept": report.kept if report.finished else None,
        "outcomes": dict(sorted(report.outcomes.items())) if report.finished else {},
        "stages": stages,
        "timings": [
            {**asdict(timing), "per_second": round(timing.per_second, 2) if timing.per_second else None}
            for timing in report.timings
        ],
        "models": model_versions(cfg),
        "failed_shards": report.failed_shards,
        "problems": report.problems[:100],
        "release": report.release,
        "invocations": history,
    }
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def print_report(report: BuildReport, console: Console) -> None:
    """One screen: outcome per stage and reason (adding up to the pool records), timings, what is next."""
    table = Table(title=f"passkit build: {report.records:,} pool records -> {report.run_dir}")
    for column, justify in (("stage", "left"), ("outcome", "left"), ("records", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    if not report.finished:
        table.add_row("-", "[yellow]not finished: unfinished shards below[/]", "-")
    else:
        for stage, label, count in report.by_stage():
            table.add_row(stage, f"[green]{label}[/]" if label == KEPT else label, f"{count:,}")
        total = sum(report.outcomes.values())
        table.add_row("[bold]total[/]", "", f"[bold]{total:,}[/]")
    console.print(table)
    if report.finished:
        verdict = "[green]add up[/]" if report.balanced else "[red]DO NOT add up[/]"
        console.print(
            f"records in: {report.records:,} = {report.kept:,} kept + {report.records - report.kept:,} rejected or "
            f"failed: {verdict}"
        )
    timings = Table(title="stages (this invocation)")
    for column in ("stage", "seconds", "items", "items/s", ""):
        timings.add_column(column, justify="left" if column in ("stage", "") else "right")
    for timing in report.timings:
        rate = f"{timing.per_second:,.1f}" if timing.per_second else "-"
        note = "resumed (already done)" if timing.resumed else timing.note
        timings.add_row(timing.stage, f"{timing.seconds:,.1f}", f"{timing.items:,}", rate, note)
    console.print(timings)
    for problem in report.problems[:10]:
        console.print(f"[yellow]{problem}[/]")
    if report.failed_shards:
        for failure in report.failed_shards[:10]:
            console.print(f"[red]{failure}[/]")
        console.print(f"[red]{len(report.failed_shards)} shards unfinished: rerun the same command to resume[/]")
        return
    console.print(report.release)
    console.print(
        f"kept: [bold]{report.kept:,}[/] images in {report.run_dir / FILTERED_DIR}; report: {report.run_dir / RUN_JSON}"
    )

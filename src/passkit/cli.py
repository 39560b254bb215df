"""``passkit`` command line: one command per verb of the pipeline."""

from __future__ import annotations

import gc
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from passkit import __version__

app = typer.Typer(
    help="passkit: build people-free, CC-BY, attributed image datasets (the PASS system) and pretrain on them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
eval_app = typer.Typer(help="Evaluate a pretrained checkpoint (kNN, linear probe).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"passkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """passkit: build people-free, CC-BY, attributed image datasets (the PASS system) and pretrain on them."""


class Method(StrEnum):
    mocov2 = "mocov2"
    swav = "swav"
    dino = "dino"


class _NoPandasProbe:
    """Import hook that makes ``import pandas`` fail (see :func:`_lean_columnar_start`)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("pandas is not needed here")


def _lean_columnar_start() -> None:
    """Start a columnar verb without work it never uses (~0.3 s of CPU per run): numpy's OpenBLAS threads
    busy-wait after start (the verb does no linear algebra), and pyarrow imports pandas on its first conversion
    of anything, only to recognise pandas objects (the verb hands it none). And Arrow's allocator (mimalloc) is
    told not to back its memory with transparent huge pages: the verb's buffers are short-lived, and zeroing a
    fresh 2 MiB page for each took ~10% of its CPU (peak RSS is lower too). Each only if numpy / pyarrow /
    pandas are not loaded yet (and the user did not choose otherwise); a later ``to_pandas()`` still imports
    pandas and works as usual."""
    import os

    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")  # read when pyarrow loads its allocator
    if "pandas" not in sys.modules:
        import pyarrow as pa

        probe = _NoPandasProbe()
        sys.meta_path.insert(0, probe)
        try:
            pa.array([0])  # pyarrow's one-time check for pandas runs here and finds none
        finally:
            sys.meta_path.remove(probe)


@app.command()
def select(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="YFCC100M metadata files (plain/.bz2/.gz), url tables (.csv/.tsv/.parquet/.jsonl[.gz]) or image "
            "folders; force a kind with yfcc:, table: or folder:."
        ),
    ],
    out: Annotated[Path, typer.Option(help="candidates.parquet to write (rejects go beside it).")] = Path(
        "candidates.parquet"
    ),
    policy: Annotated[str, typer.Option(help="cc-by | permissive | comma-separated license ids.")] = "cc-by",
    max_per_creator: Annotated[int, typer.Option(help="Cap per photographer (PASS: 80; 0 = no cap).")] = 80,
    seed: Annotated[int, typer.Option(help="Seed of the hash that picks which photos a capped creator keeps.")] = 0,
    col: Annotated[
        list[str] | None, typer.Option(help="Table column mapping FIELD=COLUMN (url, license, creator, ...).")
    ] = None,
    source_name: Annotated[
        str | None, typer.Option(help="Key prefix for tables (default 'url') and folders (default: folder name).")
    ] = None,
    require_title: Annotated[bool, typer.Option(help="Reject records without a title.")] = False,
) -> None:
    """Select candidates from a pool: license policy, attribution, video/malformed, duplicates, per-creator cap."""
    from passkit.sources.specs import start_source

    # lbzip2 starts on the first source before the heavy imports, and decompresses while they run.
    early = start_source(sources[0]) if sources else None
    # The start-up objects (modules, functions) never become garbage: no collection passes while they are created,
    # and the collector need not walk them again on every pass while select allocates (frozen).
    gc.disable()
    try:
        _lean_columnar_start()
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from passkit.selection import PoolSource, open_source, run_select
        from passkit.stages.select import SelectConfig
    finally:
        gc.freeze()
        gc.enable()
    readers: list[PoolSource] = []
    try:
        cfg = SelectConfig(policy=policy, max_per_creator=max_per_creator, seed=seed, require_title=require_title)
        mapping = {}
        for item in col or []:
            field_name, sep, column = item.partition("=")
            if not sep or not field_name or not column:
                raise ValueError(f"--col {item!r}: expected FIELD=COLUMN, e.g. --col url=image_url")
            mapping[field_name.strip()] = column.strip()
        readers = []
        for index, spec in enumerate(sources):
            stream = early if index == 0 else None
            readers.append(open_source(spec, columns=mapping, source_name=source_name, stream=stream))
    except (ValueError, OSError) as error:
        for reader in (early, *readers):
            if hasattr(reader, "close"):
                reader.close()  # a decompressor started for a source: stopped
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        task = progress.add_task("reading")

        def on_progress(source: str, rows: int) -> None:
            progress.update(task, description=f"{Path(source).name}: {rows:,} rows read")

        summary = run_select(readers, out, cfg, on_progress=on_progress)
    table = Table(title=f"passkit select: {summary.rows_in:,} records from {len(summary.sources)} source(s)")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    table.add_row("[green]candidate[/]", f"{summary.candidates:,}")
    for reason, count in sorted(summary.by_reason.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(reason, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{summary.candidates + summary.rejects:,}[/]")
    console.print(table)
    licenses = Table(title=f"by license (policy {policy})")
    licenses.add_column("license")
    licenses.add_column("records", justify="right")
    licenses.add_column("candidates", justify="right")
    for license_id, count in sorted(summary.rows_by_license.items(), key=lambda item: (-item[1], item[0])):
        licenses.add_row(license_id, f"{count:,}", f"{summary.candidates_by_license.get(license_id, 0):,}")
    console.print(licenses)
    for problem in summary.problems:
        console.print(f"[yellow]warning[/]: {problem}")
    console.print(f"wrote {summary.out} ({summary.candidates:,}) and {summary.rejects_out} ({summary.rejects:,})")


@app.command()
def download(
    candidates: Annotated[Path, typer.Argument(help="candidates.parquet from `passkit select`.")],
    out: Annotated[Path, typer.Option(help="Folder for NNNNN.tar + NNNNN.parquet shards.")],
    workers: Annotated[int, typer.Option(help="Shard worker processes.")] = 2,
    shard_size: Annotated[
        int | None, typer.Option(help="Candidates per shard (default 10000; fixed for a folder once started).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight per worker process.")] = 64,
    per_host: Annotated[int, typer.Option(help="Connections to one host at a time, per worker process.")] = 16,
    max_bytes: Annotated[str, typer.Option(help="Largest body accepted, e.g. 32MB, 500KB, 1048576.")] = "32MB",
    timeout: Annotated[float, typer.Option(help="Seconds one attempt may take, body included.")] = 30.0,
    retries: Annotated[int, typer.Option(help="Retries of timeouts, connection errors, 429 and 5xx.")] = 3,
    max_redirects: Annotated[int, typer.Option(help="Redirects followed per request.")] = 5,
    user_agent: Annotated[str | None, typer.Option(help="User-Agent header (default: passkit/VERSION ...).")] = None,
    opt_out: Annotated[
        str, typer.Option(help="X-Robots-Tag directives that exclude an image; '' to ignore the header.")
    ] = "noai,noimageai",
    trust_env: Annotated[
        bool, typer.Option("--trust-env", help="Honour HTTP(S)_PROXY / NO_PROXY and ~/.netrc.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Re-fetch rows that failed with a retryable reason, in new shards.")
    ] = False,
) -> None:
    """Download candidates into webdataset shards with one manifest row per candidate (resumable)."""
    from passkit.download import DownloadConfig, DownloadError
    from passkit.download import download as run_download
    from passkit.download.config import DEFAULT_USER_AGENT, parse_size

    try:
        config = DownloadConfig(
            concurrency=concurrency,
            per_host=per_host,
            max_bytes=parse_size(max_bytes),
            timeout=timeout,
            retries=retries,
            max_redirects=max_redirects,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            opt_out=tuple(opt_out.split(",")),
            trust_env=trust_env,
        )
        report = run_download(
            candidates,
            out,
            config,
            workers=workers,
            shard_size=shard_size,
            retry_failed=retry_failed,
            console=err_console,
        )
    except (ValueError, DownloadError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    table = Table(title=f"passkit download: {report.candidates:,} candidates -> {out}")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for label, count in sorted(report.counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(label, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(report.counts.values()):,}[/]")
    console.print(table)
    kept = report.counts.get("kept", 0)
    console.print(
        f"shards: {report.shards_run} downloaded, {report.shards_skipped} already done"
        + (f", {report.retried:,} rows retried in new shards" if report.retried else "")
        + f"; {report.bytes / 1e6:,.1f} MB in {report.seconds:,.1f} s"
    )
    if report.failed_shards:
        for index, error in report.failed_shards[:10]:
            console.print(f"[red]shard {index:05d} failed: {error}[/]")
        console.print(f"[red]{len(report.failed_shards)} shards unfinished: rerun the same command to resume[/]")
        raise typer.Exit(1)
    console.print(f"[green]{kept:,} images stored[/]. Next: `passkit verify {out}` or `passkit filter {out} ...`")


@app.command(name="filter")
def filter_(
    shards: Annotated[Path, typer.Argument(help="Folder of downloaded shards.")],
    out: Annotated[Path, typer.Option(help="Folder for filtered shards.")],
    workers: Annotated[int, typer.Option(help="Parallel shard workers.")] = 1,
    resize: Annotated[int, typer.Option(help="Store images at this longer side (e.g. 500); 0 keeps the size.")] = 0,
    keep_geo: Annotated[bool, typer.Option(help="Keep latitude/longitude in the attribution json.")] = False,
    exclude_near: Annotated[
        list[Path] | None,
        typer.Option(help="Evaluation set (image folder, shards, or parquet with phash) to remove near-copies of."),
    ] = None,
    near_threshold: Annotated[int, typer.Option(help="pHash Hamming radius for near duplicates.")] = 8,
    max_per_creator: Annotated[int, typer.Option(help="Final per-creator cap (0: none).")] = 80,
    min_side: Annotated[int, typer.Option(help="Reject images whose short side is smaller.")] = 64,
    max_pixels: Annotated[int, typer.Option(help="Decompression-bomb limit in pixels.")] = 64_000_000,
    batch_size: Annotated[int, typer.Option(help="Images decoded at once per worker.")] = 32,
    humans: Annotated[
        str, typer.Option(help="Human filter preset: fast | default | strong, or 'off' (not for a release).")
    ] = "default",
    humans_threshold: Annotated[
        float | None, typer.Option(help="Human filter fused-score threshold (default: the calibrated one).")
    ] = None,
    pii: Annotated[str, typer.Option(help="PII stage (licence plates): on | off.")] = "on",
    pii_text: Annotated[
        bool, typer.Option("--pii-text", help="Also reject document-like / handwritten text (pii:text).")
    ] = False,
    nsfw: Annotated[str, typer.Option(help="NSFW classifier: on | off (needs passkit[nsfw]).")] = "off",
    nsfw_threshold: Annotated[float, typer.Option(help="NSFW probability at which an image is rejected.")] = 0.5,
) -> None:
    """Validate, remove images with people, licence plates (PII) and NSFW, scrub privacy metadata, dedup and cap."""
    from passkit.detect.registry import ModelError
    from passkit.run.filter import FilterConfig, print_summary, run_filter
    from passkit.stages.cap import CapConfig
    from passkit.stages.dedup import DedupConfig
    from passkit.stages.humans import HumansConfig
    from passkit.stages.nsfw import NsfwConfig
    from passkit.stages.pii import PiiConfig
    from passkit.stages.privacy import PrivacyConfig
    from passkit.stages.validate import ValidateConfig

    for name, value in (("--pii", pii), ("--nsfw", nsfw)):
        if value not in ("on", "off"):
            raise typer.BadParameter(f"{value!r} is not on or off", param_hint=name)
    try:
        humans_cfg = None if humans == "off" else HumansConfig(preset=humans, threshold=humans_threshold)
        cfg = FilterConfig(
            validate=ValidateConfig(max_pixels=max_pixels, min_side=min_side),
            humans=humans_cfg,
            pii=PiiConfig(text=pii_text) if pii == "on" else None,
            nsfw=NsfwConfig(threshold=nsfw_threshold) if nsfw == "on" else None,
            privacy=PrivacyConfig(resize_max_side=resize or None, keep_geo=keep_geo),
            dedup=DedupConfig(near_threshold=near_threshold),
            cap=CapConfig(max_per_creator=max_per_creator or None),
            batch_size=batch_size,
        )
        summary = run_filter(shards, out, cfg, workers=workers, exclude_near=exclude_near or (), console=err_console)
    except (ValueError, FileNotFoundError, ModelError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    print_summary(summary, shards, out, console)
    if not summary.ok:
        raise typer.Exit(1)


def _check_preset(name: str) -> None:
    from passkit.detect.presets import get_preset

    try:
        get_preset(name)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--preset") from error


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    out: Annotated[Path, typer.Option(help="decisions.csv: file,has_person,score,reason.")] = Path("decisions.csv"),
    preset: Annotated[str, typer.Option(help="fast | default | strong (see docs/human-filter.md).")] = "default",
    threshold: Annotated[
        float | None, typer.Option(help="Fused-score threshold (default: the calibrated one).")
    ] = None,
    threads: Annotated[int, typer.Option(help="onnxruntime threads.")] = 1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
) -> None:
    """Run the human detector ensemble on images and write one decision row per image."""
    from rich.progress import Progress

    from passkit.detect.decisions import detect_files, find_images, write_decisions

    _check_preset(preset)
    try:
        files = find_images(images)
    except FileNotFoundError as error:
        raise typer.BadParameter(str(error), param_hint="IMAGES") from error
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(f"detect ({preset})", total=len(files))
        rows = detect_files(files, preset, threads, device, threshold, progress=lambda n: progress.advance(task, n))
    write_decisions(out, rows)
    flagged = sum(row["has_person"] for row in rows)
    unreadable = sum(1 for row in rows if row["reason"] and not row["reason"].startswith("humans:"))
    console.print(
        f"{len(files)} images: {flagged} with people, {len(files) - flagged - unreadable} without, "
        f"{unreadable} unreadable -> {out}"
    )


@app.command(name="detect-eval")
def detect_eval(
    labels: Annotated[Path, typer.Option(help="labels.csv with file,has_person.")],
    images: Annotated[Path | None, typer.Option(help="Folder of the labeled images (runs the detectors).")] = None,
    decisions: Annotated[Path | None, typer.Option(help="An existing decisions.csv instead of --images.")] = None,
    preset: Annotated[str, typer.Option(help="fast | default | strong.")] = "default",
    threads: Annotated[int, typer.Option(help="onnxruntime threads.")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
) -> None:
    """Recall, retention, misses by file and the threshold sweep of the human filter on labeled images."""
    import json as json_module

    from rich.progress import Progress

    from passkit.detect.decisions import detect_files, dump_json, evaluate, read_labels

    _check_preset(preset)
    truth = read_labels(labels)
    if (images is None) == (decisions is None):
        raise typer.BadParameter("give exactly one of --images or --decisions")
    if images is not None:
        files = sorted(images / name for name in truth if (images / name).is_file())
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(f"detect ({preset})", total=len(files))
            rows = detect_files(files, preset, threads, progress=lambda n: progress.advance(task, n))
    else:
        import csv

        with decisions.open(newline="", encoding="utf-8") as handle:
            rows = [{**r, "has_person": int(r["has_person"])} for r in csv.DictReader(handle)]
    report = evaluate(rows, truth, preset)
    sweep = Table(title=f"threshold sweep ({preset}; OR-rules on)")
    for column in ("threshold", "recall", "retention", "caught", "kept"):
        sweep.add_column(column, justify="right")
    for point in report["sweep"]:
        sweep.add_row(*(str(point[c]) for c in ("threshold", "recall", "retention", "caught", "kept")))
    console.print(sweep)
    console.print(f"misses ({len(report['misses'])}): {', '.join(report['misses']) or '-'}")
    console.print(f"false alarms: {len(report['false_alarms'])}; unreadable: {len(report['unreadable'])}")
    console.print(
        f"[bold]{preset}[/]: recall {report['recall']:.4f} ({report['caught']}/{report['positives']} images with "
        f"people caught), retention {report['retention']:.4f} ({report['kept']}/{report['negatives']} people-free kept)"
    )
    if json_out is not None:
        dump_json(json_out, report)
    else:
        console.print_json(json_module.dumps({k: v for k, v in report.items() if k != "sweep"}))


@app.command()
def build(
    config: Annotated[Path | None, typer.Argument(help="Pipeline config (TOML); see --print-default-config.")] = None,
    print_default_config: Annotated[
        bool, typer.Option("--print-default-config", help="Print a complete commented example config and exit.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (overrides the config's `out`).")] = None,
    runner: Annotated[str | None, typer.Option(help="local | ray (overrides runner.kind in the config).")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address, e.g. ray://head:10001 or auto (implies --runner ray).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Shard worker processes (overrides runner.workers).")] = None,
) -> None:
    """Run select -> download -> filter -> release in one resumable command."""
    from passkit.run.memory import use_returning_memory_pool

    use_returning_memory_pool()  # before pyarrow loads: the driver's memory stays flat in the number of records
    from passkit.build import BuildError, print_report
    from passkit.build import build as run_build
    from passkit.config import ConfigError, load_config, render, with_overrides

    if print_default_config:
        typer.echo(render(), nl=False)
        return
    if config is None:
        raise typer.BadParameter("give a config file (or --print-default-config)", param_hint="CONFIG")
    try:
        cfg = with_overrides(load_config(config), out=out, runner=runner, ray_address=ray_address, workers=workers)
        report = run_build(cfg, console=err_console)
    except (ConfigError, BuildError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    print_report(report, console)
    if not report.balanced:
        raise typer.Exit(1)


class ReviewQueue(StrEnum):
    borderline = "borderline"
    audit = "audit"
    all = "all"


@app.command()
def review(
    directory: Annotated[Path, typer.Argument(help="Filtered dataset folder (NNNNN.tar + NNNNN.parquet).")],
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you know why not.")] = "127.0.0.1",
    queue: Annotated[
        ReviewQueue, typer.Option(help="borderline (highest detector scores first) | audit (the audit sample) | all.")
    ] = ReviewQueue.borderline,
    reviewer: Annotated[str, typer.Option(help="Name stored with every decision (default: your login).")] = "",
    page_size: Annotated[int, typer.Option(help="Images per page of the grid.")] = 40,
) -> None:
    """Open the local review web app (keyboard-driven; decisions go to DIR/review/decisions.sqlite)."""
    from passkit.review.audit import PlanMismatchError
    from passkit.review.dataset import DatasetError

    try:
        from passkit.review.app import ReviewSession
        from passkit.review.server import ReviewServerConfig, serve
    except ImportError as error:
        err_console.print(f"[red]passkit review needs the review extra[/] (pip install 'passkit[review]'): {error}")
        raise typer.Exit(1) from error

    if not 1 <= page_size <= 200:
        raise typer.BadParameter("--page-size must be 1..200")
    cfg = ReviewServerConfig(host=host, port=port, queue=queue.value, reviewer=reviewer, page_size=page_size)

    def announce(url: str, session: ReviewSession, note: str) -> None:
        counts = session.progress()
        console.print(
            f"passkit review: queue [bold]{session.queue}[/] of {len(session.keys):,} images "
            f"({counts['decided']:,} decided), reviewer [bold]{session.reviewer}[/]" + (f"; {note}" if note else "")
        )
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print(f"[yellow]listening on {host}: anyone who can reach it and has the URL can review[/]")
        console.print(f"open {url}", soft_wrap=True, highlight=False)
        console.print("decisions are saved as you go; Ctrl+C stops the server", style="dim")

    try:
        serve(directory, cfg, announce=announce)
    except (DatasetError, PlanMismatchError, OSError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error


@app.command()
def audit(
    directory: Annotated[Path, typer.Argument(help="Filtered dataset folder.")],
    sample: Annotated[
        int | None, typer.Option(help="Images in the audit sample (default 3000; fixed once drawn).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sample (default 0; fixed once drawn).")] = None,
    redraw: Annotated[bool, typer.Option("--redraw", help="Draw a new sample (decisions are kept).")] = False,
    confidence: Annotated[float, typer.Option(help="Confidence of the one-sided upper bound.")] = 0.95,
) -> None:
    """Draw the audit sample (review it with --queue audit) and report the residual rate of images with people."""
    from passkit.review.audit import PlanMismatchError, audit_report, format_percent, load_or_draw, write_report
    from passkit.review.dataset import DatasetError, ReviewDataset
    from passkit.review.store import DecisionStore

    if not 0 < confidence < 1:
        raise typer.BadParameter("--confidence must be in (0, 1)")
    try:
        dataset = ReviewDataset.open(directory)
        plan, drawn = load_or_draw(directory, dataset, sample, seed, redraw=redraw)
        with DecisionStore.for_dataset(directory) as store:
            report = audit_report(plan, store, dataset, confidence)
        path = write_report(directory, report)
    except (DatasetError, PlanMismatchError, OSError, ValueError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    if drawn:
        console.print(
            f"drew an audit sample of {plan.sample_size:,} of {plan.kept_total:,} kept images (seed {seed or 0})"
        )
    table = Table(title=f"passkit audit: {directory}")
    table.add_column("")
    table.add_column("images", justify="right")
    table.add_row("kept (filter output)", f"{report['kept_total']:,}")
    table.add_row("audit sample", f"{report['sample_size']:,}")
    table.add_row("reviewed", f"{report['reviewed']:,}")
    for reason, count in report["per_reason"].items():
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("  clean", f"{report['reviewed'] - report['problems']:,}")
    console.print(table)
    if report["reviewed"]:
        console.print(
            f"any problem: {report['problems']:,} of {report['reviewed']:,} -> <= "
            f"{format_percent(report['upper_any_problem'])} (one-sided Clopper-Pearson)"
        )
    remaining = report["sample_size"] - report["reviewed"]
    if remaining:
        console.print(f"[yellow]{remaining:,} sampled images to review[/]: passkit review {directory} --queue audit")
    if report["sample_no_longer_kept"]:
        console.print(f"[yellow]{report['sample_no_longer_kept']:,} sampled keys are no longer kept in {directory}[/]")
    method = " (one-sided exact Clopper-Pearson bound)" if report["reviewed"] else ""
    console.print(f"[bold]{report['statement']}[/]{method} -> {path}")


class Layout(StrEnum):
    shards = "shards"
    folder = "folder"


@app.command()
def release(
    directory: Annotated[Path, typer.Argument(help="Filtered, reviewed dataset folder (output of `passkit filter`).")],
    out: Annotated[Path, typer.Option(help="Release folder to write (must not exist).")],
    layout: Annotated[
        Layout, typer.Option(help="shards: webdataset shards; folder: also images/<prefix>/<key>.jpg.")
    ] = Layout.shards,
    name: Annotated[str, typer.Option(help="Release name (lowercase, digits, - and _).")] = "pass",
    shard_size: Annotated[int, typer.Option(help="Images per release shard.")] = 10_000,
    version: Annotated[int, typer.Option(help="Version number of this release.")] = 1,
    candidates_rejects: Annotated[
        Path | None,
        typer.Option(help="select's rejects parquet, for the funnel (default: DIR/../candidates.rejects.parquet)."),
    ] = None,
    license_policy: Annotated[str, typer.Option(help="License policy checked again at release.")] = "cc-by",
    image_format: Annotated[str, typer.Option(help="jpg (one format; PNGs encoded as JPEG) or keep.")] = "jpg",
    include_gps: Annotated[bool, typer.Option(help="Keep latitude/longitude in metadata and json.")] = False,
    title: Annotated[str, typer.Option(help="Dataset title for the card and datasheet.")] = "",
    description: Annotated[str, typer.Option(help="One-paragraph description.")] = "",
    url: Annotated[str, typer.Option(help="Where the release will be published.")] = "",
    contact: Annotated[str, typer.Option(help="Who handles takedown requests.")] = "",
    date_published: Annotated[str, typer.Option(help="Publication date YYYY-MM-DD (Croissant).")] = "",
) -> None:
    """Write a versioned release: shards, metadata, checksums, datasheet, Croissant, card."""
    from rich.progress import Progress

    from passkit.release import ReleaseConfig, ReleaseError, build_release

    if candidates_rejects is None:
        default = directory.absolute().parent / "candidates.rejects.parquet"
        candidates_rejects = default if default.is_file() else None
    try:
        cfg = ReleaseConfig(
            name=name, version=version, shard_size=shard_size, layout_folder=layout == Layout.folder,
            include_gps=include_gps, license_policy=license_policy, image_format=image_format,
            title=title or ReleaseConfig.title, description=description, url=url, contact=contact,
            date_published=date_published,
        )  # fmt: skip
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("packing release shards", total=None)
            report = build_release(
                directory, out, cfg, candidates_rejects=candidates_rejects,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (ReleaseError, ValueError) as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    for line in report.lines():
        console.print(line, highlight=False, markup=False)
    if candidates_rejects is None:
        console.print("(select's rejects not found: the funnel starts at the download)", highlight=False)
    console.print(f"[green]release written to {out}[/] — check it with `sha256sum -c SHA256SUMS` inside the folder")


@app.command()
def takedown(
    release_dir: Annotated[Path, typer.Argument(metavar="RELEASE", help="Release folder.")],
    keys: Annotated[Path, typer.Option(help="File with one key per line to take down ('#' comments allowed).")],
    out: Annotated[Path, typer.Option(help="Folder for the next release version (must not exist).")],
    reason: Annotated[str, typer.Option(help="Reason code recorded for the removal (e.g. takedown, review:human).")] = (
        "takedown"
    ),
    note: Annotated[str, typer.Option(help="Free text for the CHANGELOG entry.")] = "",
    date_published: Annotated[str, typer.Option(help="Publication date YYYY-MM-DD (Croissant).")] = "",
) -> None:
    """Remove keys from a release, producing the next version."""
    from passkit.release import ReleaseError
    from passkit.release import takedown as run_takedown
    from passkit.release.takedown import read_keys_file

    try:
        report = run_takedown(
            release_dir, read_keys_file(keys), out, reason=reason, note=note, date_published=date_published
        )
    except ReleaseError as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    for line in report.lines():
        console.print(line, highlight=False, markup=False)
    console.print(f"[green]version {report.version} written to {out}[/]")


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option(help="Run folder (config, metrics.jsonl, checkpoint.pt, backbone.pt).")],
    data: Annotated[
        Path | None, typer.Option(help="Release, shard folder (NNNNN.tar), a .tar, or an image folder.")
    ] = None,
    method: Annotated[Method | None, typer.Option(help="Self-supervised method (default: the preset's).")] = None,
    arch: Annotated[str | None, typer.Option(help="resnet18 | resnet50 | resnet_tiny | vit_small | vit_micro.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="pass-mocov2-r50-200ep | pass-swav-r50-200ep | pass-dino-vits16-300ep | tiny-*.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT from its last checkpoint.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per rank per step (before accumulation).")] = None,
    accum_steps: Annotated[int | None, typer.Option(help="Gradient accumulation steps.")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader workers per rank.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto | fp32 | bf16 | fp16.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop (resumably) after this many steps.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads per process.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE: any training option or method argument.")
    ] = None,
) -> None:
    """Pretrain a self-supervised model (MoCo-v2, SwAV, DINO) on shards or images; torchrun for several GPUs."""
    try:
        from passkit.ssl.cli import run_pretrain
    except ImportError as error:
        err_console.print(f"[red]passkit pretrain needs the train extra[/] (pip install 'passkit[train]'): {error}")
        raise typer.Exit(1) from error
    flags = {
        "epochs": epochs,
        "batch_size": batch_size,
        "accum_steps": accum_steps,
        "workers": workers,
        "precision": precision,
        "max_steps": max_steps,
        "threads": threads,
    }
    code = run_pretrain(
        out=out,
        data=data,
        method=method.value if method else None,
        arch=arch,
        preset=preset,
        resume=resume,
        flags={k: v for k, v in flags.items() if v is not None},
        overrides=option or [],
        console=console,
        err_console=err_console,
    )
    raise typer.Exit(code)


def _eval_options(
    image_size: int | None,
    crop_ratio: float,
    batch_size: int,
    device: str,
    workers: int,
    cache_dir: Path | None,
    no_cache: bool,
):  # -> FeatureOptions
    from passkit.evaluate.run import FeatureOptions

    return FeatureOptions(image_size, crop_ratio, batch_size, device, workers, not no_cache, cache_dir)


EvalCheckpoint = Annotated[
    Path | None, typer.Option(help="Run folder, backbone.pt or checkpoint.pt of `passkit pretrain`.")
]
EvalTrain = Annotated[
    str,
    typer.Option(
        help="Labeled training set: class folders, .tar shards with .cls, or cifar10:ROOT, "
        "cifar100:ROOT, stl10:ROOT, imagenet:ROOT, places205:ROOT."
    ),
]
EvalVal = Annotated[str, typer.Option(help="Labeled validation set (same forms as --train).")]
EvalOut = Annotated[Path | None, typer.Option(help="Folder for the result JSON files.")]
EvalRandom = Annotated[
    bool,
    typer.Option("--random-init", help="Evaluate an untrained backbone of the checkpoint's (or --arch) architecture."),
]
EvalArch = Annotated[str | None, typer.Option(help="Architecture for --random-init without a checkpoint.")]
EvalSeed = Annotated[int, typer.Option(help="Seed (random init, held-out split, probe initialisation).")]
EvalEncoder = Annotated[
    str, typer.Option(help="Encoder of a training checkpoint.pt: backbone | teacher (DINO) | key (MoCo).")
]
EvalImageSize = Annotated[int | None, typer.Option(help="Crop size (default: the checkpoint's training size).")]
EvalCropRatio = Annotated[float, typer.Option(help="Crop / resize ratio (0.875: resize 256, crop 224).")]
EvalBatch = Annotated[int, typer.Option(help="Images per feature batch.")]
EvalDevice = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")]
EvalWorkers = Annotated[int, typer.Option(help="Image decoding worker processes.")]
EvalCache = Annotated[Path | None, typer.Option(help="Feature cache folder (default ~/.cache/passkit/features).")]
EvalNoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]


def _eval_module():
    try:
        from passkit.evaluate import cli as eval_cli
    except ImportError as error:
        err_console.print(f"[red]passkit eval needs the train extra[/] (pip install 'passkit[train]'): {error}")
        raise typer.Exit(1) from error
    return eval_cli


@eval_app.command()
def knn(
    train: EvalTrain,
    val: EvalVal,
    checkpoint: EvalCheckpoint = None,
    k: Annotated[str, typer.Option(help="Comma-separated numbers of neighbours.")] = "10,20,100,200",
    temperature: Annotated[float, typer.Option(help="Vote weight exp(cosine / T).")] = 0.07,
    out: EvalOut = None,
    random_init: EvalRandom = False,
    arch: EvalArch = None,
    seed: EvalSeed = 0,
    encoder: EvalEncoder = "backbone",
    image_size: EvalImageSize = None,
    crop_ratio: EvalCropRatio = 0.875,
    batch_size: EvalBatch = 256,
    device: EvalDevice = "auto",
    workers: EvalWorkers = 0,
    cache_dir: EvalCache = None,
    no_cache: EvalNoCache = False,
) -> None:
    """Weighted kNN of frozen features, as DINO (cosine, exp(sim/T) votes), top-1/top-5 for each k."""
    eval_cli = _eval_module()
    try:
        ks = [int(value) for value in eval_cli.parse_floats(k, "--k")]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--k") from error
    options = _eval_options(image_size, crop_ratio, batch_size, device, workers, cache_dir, no_cache)
    code = eval_cli.run_eval(
        "knn", checkpoint, train, val, options, out, console, err_console, ks=ks, temperature=temperature,
        random_init=random_init, arch=arch, seed=seed, encoder=encoder,
    )  # fmt: skip
    raise typer.Exit(code)


class LinearProtocol(StrEnum):
    moco = "moco"
    lbfgs = "lbfgs"


@eval_app.command()
def linear(
    train: EvalTrain,
    val: EvalVal,
    checkpoint: EvalCheckpoint = None,
    protocol: Annotated[
        LinearProtocol, typer.Option(help="moco: SGD 100 ep, lr sweep, step decay; lbfgs: CLIP's C sweep.")
    ] = LinearProtocol.lbfgs,
    lr: Annotated[str | None, typer.Option(help="moco: comma-separated learning rates to sweep.")] = None,
    epochs: Annotated[int, typer.Option(help="moco: epochs (lr / 10 at 60 % and 80 %).")] = 100,
    holdout: Annotated[float, typer.Option(help="Fraction of train held out to pick lr / C.")] = 0.1,
    out: EvalOut = None,
    random_init: EvalRandom = False,
    arch: EvalArch = None,
    seed: EvalSeed = 0,
    encoder: EvalEncoder = "backbone",
    image_size: EvalImageSize = None,
    crop_ratio: EvalCropRatio = 0.875,
    batch_size: EvalBatch = 256,
    device: EvalDevice = "auto",
    workers: EvalWorkers = 0,
    cache_dir: EvalCache = None,
    no_cache: EvalNoCache = False,
) -> None:
    """Linear probe on frozen features: the MoCo SGD protocol or the CLIP L-BFGS protocol (not comparable)."""
    from passkit.evaluate.linear import LbfgsProbeConfig, MocoProbeConfig

    eval_cli = _eval_module()
    try:
        moco = MocoProbeConfig(
            epochs=epochs,
            milestones=(round(epochs * 0.6), round(epochs * 0.8)),
            holdout=holdout,
            seed=seed,
            **({"lrs": eval_cli.parse_floats(lr, "--lr")} if lr else {}),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--lr") from error
    options = _eval_options(image_size, crop_ratio, batch_size, device, workers, cache_dir, no_cache)
    code = eval_cli.run_eval(
        "linear", checkpoint, train, val, options, out, console, err_console, protocol=protocol.value, moco=moco,
        lbfgs=LbfgsProbeConfig(holdout=holdout, seed=seed), random_init=random_init, arch=arch, seed=seed,
        encoder=encoder,
    )  # fmt: skip
    raise typer.Exit(code)


@eval_app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="Folder of result JSON files (searched recursively).")],
) -> None:
    """Table of every evaluation result in a folder, with its protocol."""
    raise typer.Exit(_eval_module().run_report(directory, console, err_console))


class ExportFormat(StrEnum):
    torchvision = "torchvision"
    timm = "timm"


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Run folder, backbone.pt or checkpoint.pt.")],
    format_: Annotated[
        ExportFormat, typer.Option("--format", help="torchvision (resnet18/50) | timm (vit_small_patch16_224).")
    ],
    out: Annotated[Path, typer.Option(help="Weights file to write (.pth).")],
    num_classes: Annotated[
        int, typer.Option(help="Size of the zero classifier head the model constructor expects; 0: none.")
    ] = 1000,
    encoder: EvalEncoder = "backbone",
) -> None:
    """Export backbone weights that torchvision / timm models load with strict=True."""
    code = _eval_module().run_export(checkpoint, format_.value, out, num_classes, encoder, console, err_console)
    raise typer.Exit(code)


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="Folder of NNNNN.tar + NNNNN.parquet shards.")],
    prefix: Annotated[str, typer.Option(help="Shard name prefix (e.g. 'pass-' in a release).")] = "",
) -> None:
    """Check every finished shard: manifest contract, tar safety and integrity, tar/manifest agreement."""
    from rich.progress import track

    from passkit.core.shards import list_shards, verify_shard

    shards = list_shards(directory, prefix)
    if not shards:
        err_console.print(f"[red]no finished shards (NNNNN.parquet) in {directory}[/]")
        raise typer.Exit(1)
    totals: dict[str, int] = {}
    problems = []
    rows = samples = 0
    for shard in track(shards, description="verifying shards", console=err_console):
        report = verify_shard(shard)
        rows += report.rows
        samples += report.samples
        for label, count in report.counts.items():
            totals[label] = totals.get(label, 0) + count
        problems += [f"{report.shard}: {problem}" for problem in report.problems]
    table = Table(title=f"{len(shards)} shards in {directory}")
    table.add_column("status / reason")
    table.add_column("rows", justify="right")
    for label, count in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(label, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{rows:,}[/]")
    console.print(table)
    console.print(f"samples in tars: {samples:,}; kept rows: {totals.get('kept', 0):,}")
    if problems:
        for problem in problems[:20]:
            console.print(f"[red]{problem}[/]")
        console.print(f"[red]{len(problems)} problems[/]")
        raise typer.Exit(1)
    console.print("[green]all shards verified[/]")


@app.command(name="license")
def license_(
    values: Annotated[list[str], typer.Argument(help="License strings, URLs or Flickr ids as a pool spells them.")],
    policy: Annotated[str, typer.Option(help="cc-by | permissive | comma-separated license ids.")] = "cc-by",
) -> None:
    """Show how license values normalise and whether a policy admits them."""
    from passkit.core.licenses import LicensePolicy, license_url, normalize_license

    try:
        license_policy = LicensePolicy.parse(policy)
    except ValueError as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    table = Table()
    for column in ("value", "license id", "license URL", f"policy {policy}"):
        table.add_column(column)
    for value in values:
        license_id = normalize_license(value)
        admitted = "[green]admitted[/]" if license_policy.allows(license_id) else "[red]license:not-allowed[/]"
        table.add_row(value, license_id, license_url(license_id) or "-", admitted)
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's run (resumable: rerun to reuse it).")] = Path(
        "passkit-demo"
    ),
    pool: Annotated[
        Path | None,
        typer.Option(
            help="Image folder with sidecar attribution (+ optional labels.csv) instead of the package photos."
        ),
    ] = None,
    humans: Annotated[str, typer.Option(help="Human filter preset: fast | default | strong.")] = "default",
    pretrain: Annotated[
        str, typer.Option(help="Comma-separated pretraining presets, or 'none'.")
    ] = "tiny-dino,tiny-mocov2",
    steps: Annotated[int, typer.Option(help="Pretraining steps per model.")] = 200,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """The whole PASS system offline on real photos: select, download, filter, release, pretrain, kNN."""
    from passkit.demo import DemoConfig, DemoError, run_demo
    from passkit.demo.summary import print_summary

    presets = () if pretrain == "none" else tuple(p.strip() for p in pretrain.split(",") if p.strip())
    cfg = DemoConfig(
        out=out, pool_dir=pool, humans_preset=humans, presets=presets, pretrain_steps=steps, threads=threads
    )

    def on_step(step: object) -> None:
        name, seconds, resumed = step.name, step.seconds, step.resumed  # type: ignore[attr-defined]
        err_console.print(f"[green]✓[/] {name} [dim]{seconds:.1f} s{' (already done)' if resumed else ''}[/]")

    try:
        result = run_demo(cfg, console=err_console, on_step=on_step)
    except DemoError as error:
        err_console.print(f"[red]passkit demo:[/] {error}", soft_wrap=True)
        raise typer.Exit(1) from error
    print_summary(result, console)
    if result.people_left() or not all(result.sums_ok.values()):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

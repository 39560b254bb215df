"""``passkit`` command line: one command per verb of the pipeline."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

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

NOT_BUILT_EXIT = 2


def _not_built(verb: str, issue: int) -> NoReturn:
    err_console.print(f"[yellow]passkit {verb}[/] is not built yet (tracked in issue {issue}).")
    raise typer.Exit(NOT_BUILT_EXIT)


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


@app.command()
def select(
    sources: Annotated[list[str], typer.Argument(help="Pool files or folders (YFCC100M dump, csv/parquet, images).")],
    out: Annotated[Path, typer.Option(help="candidates.parquet to write.")] = Path("candidates.parquet"),
    policy: Annotated[str, typer.Option(help="cc-by | permissive | comma-separated license ids.")] = "cc-by",
    max_per_creator: Annotated[int, typer.Option(help="Cap per photographer (PASS: 80).")] = 80,
) -> None:
    """Select candidates from a pool: license policy, attribution, per-creator cap."""
    _not_built("select", 3)


@app.command()
def download(
    candidates: Annotated[Path, typer.Argument(help="candidates.parquet from `passkit select`.")],
    out: Annotated[Path, typer.Option(help="Folder for NNNNN.tar + NNNNN.parquet shards.")],
    workers: Annotated[int, typer.Option(help="Parallel shard workers.")] = 4,
) -> None:
    """Download candidates into webdataset shards with one manifest row per candidate."""
    _not_built("download", 4)


@app.command(name="filter")
def filter_(
    shards: Annotated[Path, typer.Argument(help="Folder of downloaded shards.")],
    out: Annotated[Path, typer.Option(help="Folder for filtered shards.")],
) -> None:
    """Validate, scrub privacy metadata, remove humans/PII/NSFW, dedup and cap."""
    _not_built("filter", 5)


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
def build(config: Annotated[Path, typer.Argument(help="Pipeline config (TOML).")]) -> None:
    """Run select -> download -> filter -> release in one resumable command."""
    _not_built("build", 7)


@app.command()
def review(directory: Annotated[Path, typer.Argument(help="Filtered dataset folder.")]) -> None:
    """Open the local review web app."""
    _not_built("review", 8)


@app.command()
def audit(directory: Annotated[Path, typer.Argument(help="Filtered dataset folder.")]) -> None:
    """Draw an audit sample and report the residual rate of images with people."""
    _not_built("audit", 8)


@app.command()
def release(
    directory: Annotated[Path, typer.Argument(help="Filtered, reviewed dataset folder.")],
    out: Annotated[Path, typer.Option(help="Release folder to write.")],
) -> None:
    """Write a versioned release: shards, metadata, checksums, datasheet, Croissant, card."""
    _not_built("release", 8)


@app.command()
def takedown(
    release_dir: Annotated[Path, typer.Argument(metavar="RELEASE", help="Release folder.")],
    keys: Annotated[Path, typer.Option(help="File with one key per line to take down.")],
    out: Annotated[Path, typer.Option(help="Folder for the next release version.")],
) -> None:
    """Remove keys from a release, producing the next version."""
    _not_built("takedown", 8)


@app.command()
def pretrain(
    method: Annotated[Method, typer.Option(help="Self-supervised method.")],
    data: Annotated[Path, typer.Option(help="Release or shard folder.")],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints, logs).")],
    arch: Annotated[str, typer.Option(help="resnet18 | resnet50 | vit_small.")] = "resnet50",
) -> None:
    """Pretrain a self-supervised model (MoCo-v2, SwAV, DINO) on shards."""
    _not_built("pretrain", 9)


@eval_app.command()
def knn(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to evaluate.")],
    train: Annotated[Path, typer.Option(help="Labeled training images.")],
    val: Annotated[Path, typer.Option(help="Labeled validation images.")],
) -> None:
    """Weighted kNN evaluation of frozen features."""
    _not_built("eval knn", 10)


@eval_app.command()
def linear(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to evaluate.")],
    train: Annotated[Path, typer.Option(help="Labeled training images.")],
    val: Annotated[Path, typer.Option(help="Labeled validation images.")],
) -> None:
    """Linear probe on frozen features."""
    _not_built("eval linear", 10)


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
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("passkit-demo"),
) -> None:
    """Offline end-to-end run on real photos shipped in scikit-learn (the README's first command)."""
    from passkit.demo import run_demo

    try:
        result = run_demo(out)
    except RuntimeError as error:
        err_console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    table = Table(title=f"passkit demo: {result.pool_rows} pool rows -> shard {out / 'shards' / '00000.tar'}")
    table.add_column("status / reason")
    table.add_column("rows", justify="right")
    for label, count in sorted(result.counts.items()):
        table.add_row(label, str(count))
    table.add_row("[bold]total[/]", f"[bold]{sum(result.counts.values())}[/]")
    console.print(table)
    console.print("[bold]Attribution of the kept photos[/]")
    for line in result.attributions:
        console.print(f"  {line}")
    if not result.report.ok:
        for problem in result.report.problems:
            console.print(f"[red]{problem}[/]")
        raise typer.Exit(1)
    console.print(
        f"[green]shard verified[/]: {result.report.samples} samples, manifest rows add up "
        f"({result.report.rows} = {result.pool_rows} pool rows). Next: `passkit verify {out / 'shards'}`"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

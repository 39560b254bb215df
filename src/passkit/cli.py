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


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    out: Annotated[Path, typer.Option(help="decisions.csv: file,has_person,score,reason.")] = Path("decisions.csv"),
) -> None:
    """Run the human detector ensemble on images and write one decision row per image."""
    _not_built("detect", 6)


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

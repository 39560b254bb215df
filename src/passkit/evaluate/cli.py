"""The ``passkit eval`` and ``passkit export`` commands: progress bars, result tables, clear errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from passkit.evaluate.checkpoint import CheckpointError
from passkit.evaluate.datasets import DatasetError
from passkit.evaluate.export import ExportError, export_backbone
from passkit.evaluate.results import checkpoint_label, protocol_label, read_results, table_rows
from passkit.evaluate.run import FeatureOptions, knn_sweep, linear_eval

EXPECTED = (CheckpointError, DatasetError, ExportError, ValueError, FileNotFoundError)
NOT_COMPARABLE = (
    "Numbers from different protocols are not comparable (a MoCo SGD probe, an L-BFGS probe and kNN measure "
    "different things; MoCo's own probe gives 67.5 where a cheaper probe gives 60.6 for the same model)."
)


def parse_floats(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from error
    if not values:
        raise ValueError(f"{name}: no values in {text!r}")
    return values


@contextlib.contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:

        def factory(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield factory


def _summary(results: list[dict[str, Any]], title: str) -> Table:
    first = results[0]
    table = Table(title=title)
    for column in ("protocol", "top-1 %", "top-5 %"):
        table.add_column(column, justify="left" if column == "protocol" else "right")
    for result in results:
        top5 = result["metrics"].get("top5")
        table.add_row(
            protocol_label(result["protocol"]),
            f"{100 * result['value']:.2f}",
            "-" if top5 is None else f"{100 * top5:.2f}",
        )
    train, val = first["dataset"]["train"], first["dataset"]["val"]
    table.caption = (
        f"{checkpoint_label(first['checkpoint'])} at {first['protocol']['features']['crop']} px; "
        f"train {train['name']} {train['n_used']:,} images, val {val['name']}/{val['split']} {val['n_used']:,} "
        f"images, {val['classes']} classes"
        + (f"; {train['skipped'] + val['skipped']} unreadable left out" if train["skipped"] + val["skipped"] else "")
        + ("; features from cache" if first.get("features_cached") else "")
    )
    return table


def run_eval(
    kind: str,
    checkpoint: Path | None,
    train: str,
    val: str,
    options: FeatureOptions,
    out: Path | None,
    console: Console,
    err_console: Console,
    **kwargs: Any,
) -> int:
    """Run one evaluation (``kind`` knn | linear), print its table; 0 on success, 2 on a usage/data error."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _progress(err_console) as progress:
            if kind == "knn":
                results = knn_sweep(checkpoint, train, val, options=options, out=out, progress=progress, **kwargs)
            else:
                results = [linear_eval(checkpoint, train, val, options=options, out=out, progress=progress, **kwargs)]
    except EXPECTED as error:
        err_console.print(f"[red]passkit eval {kind}:[/] {error}")
        return 2
    console.print(_summary(results, f"passkit eval {kind}"))
    if out is not None:
        console.print(f"{len(results)} result file(s) in {out}; `passkit eval report {out}` lists all of them")
    return 0


def run_report(folder: Path, console: Console, err_console: Console) -> int:
    try:
        results = read_results(folder)
    except FileNotFoundError as error:
        err_console.print(f"[red]passkit eval report:[/] {error}")
        return 2
    if not results:
        err_console.print(f"[red]passkit eval report:[/] no passkit result JSON files in {folder}")
        return 1
    table = Table(title=f"{len(results)} evaluation results in {folder}")
    rows = table_rows(results)
    for column in rows[0]:
        table.add_column(column, justify="right" if column in ("top1", "top5", "seed") else "left")
    for row in rows:
        table.add_row(*row.values())
    table.caption = NOT_COMPARABLE
    console.print(table)
    return 0


def run_export(
    checkpoint: Path, fmt: str, out: Path, num_classes: int, encoder: str, console: Console, err_console: Console
) -> int:
    try:
        report = export_backbone(checkpoint, fmt, out, num_classes=num_classes, encoder=encoder)
    except (ExportError, OSError) as error:
        err_console.print(f"[red]passkit export:[/] {error}")
        return 2
    head = f"zero {num_classes}-way head" if num_classes else "no head"
    console.print(
        f"wrote {report.path}: {report.tensors} tensors of a {report.arch} for {fmt} {report.target} ({head}), "
        f"sha256 {report.sha256[:16]}...; provenance in {report.path}.json"
    )
    return 0

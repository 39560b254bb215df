"""The demo's one-screen summary: funnel, removed photos and why, attribution, release, kNN, timings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from passkit.demo.flow import DemoResult, PhotoOutcome


def _shows(has_people: bool | None) -> str:
    return {True: "[bold]people[/]", False: "no people", None: "?"}[has_people]


def _why(outcome: PhotoOutcome) -> str:
    reason = outcome.reason
    if reason.startswith("humans:"):
        kind, _, detector = reason.partition(":")[2].partition(":")
        text = f"humans:{kind} [dim]({detector})[/]" if detector else reason
        return text + ("" if outcome.photo.has_people is not False else " [yellow]false alarm[/]")
    if reason.startswith("license:"):
        return f"{reason} [dim]({outcome.photo.license})[/]"
    return reason


def print_summary(result: DemoResult, console: Console) -> None:
    funnel = Table(title=f"passkit demo: {len(result.pool)} real photos -> {result.out}", show_edge=False)
    funnel.add_column("gate")
    funnel.add_column("photos", justify="right")
    for gate, count in result.funnel:
        funnel.add_row(gate, "-" if count is None else str(count))
    console.print(funnel)
    console.print(f"[dim]{result.policy_why}[/]")

    removed = Table(title="removed", show_edge=False)
    for column in ("photo", "shows", "stage", "reason"):
        removed.add_column(column)
    for outcome in result.outcomes:
        if outcome.stage != "kept":
            removed.add_row(outcome.photo.name, _shows(outcome.photo.has_people), outcome.stage, _why(outcome))
    console.print(removed)
    left = result.people_left()
    people = sum(o.photo.has_people is True for o in result.outcomes)
    if left:
        console.print(f"[red bold]photos with people NOT removed: {', '.join(o.photo.name for o in left)}[/]")
    else:
        console.print(f"[green]all {people} photos labelled 'people' removed[/]")

    kept = [o for o in result.outcomes if o.stage == "kept"]
    console.print(f"[bold]kept ({len(kept)})[/], with the attribution stored next to each image:")
    for outcome in kept:
        attribution = outcome.attribution or {}
        console.print(
            f"  {outcome.photo.name}: {attribution.get('creator') or '?'}, {attribution.get('license') or '?'}, "
            f"[dim]{attribution.get('page_url') or '?'}[/]",
            overflow="ellipsis",
            no_wrap=True,
        )

    if result.releases:
        for version, path in result.releases.items():
            sums = "[green]SHA256SUMS verified[/]" if result.sums_ok.get(version) else "[red]SHA256SUMS mismatch[/]"
            console.print(f"release {version}: {path} ({sums}); datasheet {path / 'datasheet.html'}")
        if result.taken_down:
            console.print(f"taken down in v2: {', '.join(result.taken_down)}")
    else:
        console.print(f"[yellow]{result.release_note}[/]; kept shards: {result.out / 'filtered'}")

    if result.knn:
        knn = Table(title="kNN top-1 on scikit-learn digits (k=20, frozen features)", show_edge=False)
        for column in ("backbone", "top-1", "train / val"):
            knn.add_column(column)
        for score in result.knn:
            knn.add_row(score["name"], f"{score['top1']:.3f}", f"{score['train']} / {score['val']}")
        console.print(knn)
        console.print(f"[dim]pretrained on {result.pretrain_data}[/]")

    timings = ", ".join(f"{s.name} {s.seconds:.1f}s{' (resumed)' if s.resumed else ''}" for s in result.steps)
    console.print(f"[dim]{timings}[/]")
    console.print(f"[bold]total {result.seconds:.1f} s[/]")

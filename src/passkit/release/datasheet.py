"""datasheet.html: one self-contained page (inline CSS, SVG charts, embedded thumbnails; no script, no network).

Figures: the funnel (every candidate's fate by stage and reason), licenses, images per creator, image sizes, a
sample grid with attribution, the residual-human audit. Text: the sections of the PASS datasheet (motivation,
composition, collection, preprocessing, uses, distribution, maintenance), filled with this release's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from passkit.core.attribution import Attribution
from passkit.release.charts import binned, hbar_chart, histogram
from passkit.release.record import ReleaseRecord
from passkit.release.stats import ReleaseStats, human_bytes
from passkit.release.summary import ReleaseSummary
from passkit.release.thumbnails import thumbnails

CREATOR_EDGES = (1, 2, 3, 5, 10, 20, 40, 80)
SIDE_EDGES = (0, 128, 256, 384, 512, 768, 1024, 2048)
CHART_WIDTH = 470
SIZE_EDGES = (0, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20)

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1d2733;line-height:1.45}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #d5dde5;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#5b6b7b;margin-top:0}.facts{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.fact{background:#f1f5f9;border-radius:6px;padding:.5em .9em}.fact b{display:block;font-size:1.35em}
.audit{padding:.7em 1em;border-radius:6px;background:#e8f5e9;border-left:4px solid #2e7d32}
.audit.none{background:#fff4e5;border-left-color:#b26a00}
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.2em .7em;border-bottom:1px solid #e3e8ee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.grid figure{margin:0;font-size:11px;color:#4a5a6a}.grid img{width:160px;height:160px;object-fit:cover;
border-radius:4px;display:block}.grid figcaption{overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:12px 28px;align-items:flex-start}
code{background:#f1f5f9;padding:0 .25em;border-radius:3px}
"""


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def audit_html(record: ReleaseRecord) -> str:
    audit = record.audit
    if not audit:
        return (
            '<p class="audit none"><b>Not audited.</b> No residual-human audit was recorded for the reviewed set '
            "(<code>passkit audit DIR</code>), so no bound on images with people can be stated.</p>"
        )
    reasons = ", ".join(f"{escape(str(r))}: {n}" for r, n in sorted((audit.get("per_reason") or {}).items()))
    return (
        f'<p class="audit"><b>{escape(str(audit["statement"]))}</b><br>Exact {escape(str(audit["method"]))} upper '
        f"bound at {float(audit['confidence']):.0%} confidence on a uniform random sample of "
        f"{int(audit['sample_size']):,} images of the filtered set (seed {escape(str(audit.get('seed', '-')))}), "
        f"{int(audit['reviewed']):,} reviewed, {int(audit['with_people']):,} with people."
        + (f"<br>Problems found, by reason: {reasons}." if reasons else "")
        + "</p>"
    )


def funnel_html(record: ReleaseRecord) -> str:
    remaining = record.candidates
    rows = [("candidates", remaining, "")]
    for stage, removed, _ in record.funnel():
        remaining -= removed
        rows.append((f"after {stage}", remaining, f"  (−{removed:,})"))
    chart = hbar_chart(rows, title="Funnel: candidates left after each stage")
    reason_rows = [
        [escape(stage), f"<code>{escape(reason)}</code>", f"{count:,}"]
        for stage, _, reasons in record.funnel()
        for reason, count in reasons.items()
    ]
    reason_rows.append(["", "<b>released</b>", f"<b>{record.released:,}</b>"])
    total = f"<p>{record.candidates:,} candidates = {sum(record.reasons.values()):,} removed + {record.released:,} "
    total += "released.</p>"
    return chart + total + _table(["stage", "reason", "images"], reason_rows, {2})


def _figures_html(stats: ReleaseStats) -> str:
    licenses = hbar_chart(
        [(license_id, count, f"  {count / max(stats.images, 1):.1%}") for license_id, count in stats.licenses],
        title="Licenses",
        width=CHART_WIDTH,
        label_width=110,
    )
    creators = histogram(binned(stats.per_creator, CREATOR_EDGES), title="Creators by images per creator",
                         x_label="images per creator", width=CHART_WIDTH)  # fmt: skip
    sides = histogram(binned(stats.short_sides, SIDE_EDGES), title="Images by shorter side",
                      x_label="shorter side (pixels)", width=CHART_WIDTH)  # fmt: skip
    sizes = histogram(binned(stats.sizes, SIZE_EDGES, binary_units=True), title="Images by file size",
                      x_label="stored bytes", width=CHART_WIDTH)  # fmt: skip
    top = _table(
        ["most frequent creators", "images"],
        [[escape(name or "-"), f"{count:,}"] for name, count in stats.top_creators],
        {1},
    )
    return f'<div class="charts"><div>{licenses}{top}</div>{creators}{sides}{sizes}</div>'


def grid_html(folder: Path, rows: list[dict[str, Any]], images: Mapping[str, bytes] | None = None) -> str:
    """``rows``: metadata rows of the grid's images, in grid order (``ReleaseSummary.grid_rows``)."""
    if not rows:
        return "<p>No sample grid in this release (sample_grid = 0).</p>"
    uris = thumbnails(folder, {row["key"]: row["shard"] for row in rows}, images)
    figures = []
    for row in rows:
        key = row["key"]
        attribution = Attribution(row["creator"], row["title"], row["page_url"], row["license"], row["license_url"])
        figures.append(
            f'<figure><img src="{uris[key]}" alt="{escape(key)}" width="160" height="160">'
            f"<figcaption>{attribution.tasl_html()}</figcaption></figure>"
        )
    return f'<div class="grid">{"".join(figures)}</div>'


def _history_html(record: ReleaseRecord) -> str:
    rows = []
    for entry in record.history:
        removed = ", ".join(f"{escape(reason)} {count:,}" for reason, count in sorted(entry.removed.items())) or "-"
        rows.append([f"v{entry.version}", escape(entry.kind), f"{entry.images:,}", removed])
    return _table(["version", "kind", "images", "removed in this version"], rows, {2})


def render_datasheet(
    folder: Path, record: ReleaseRecord, summary: ReleaseSummary, images: Mapping[str, bytes] | None = None
) -> str:
    """The page; ``images``: bytes of released images already in memory (the sample grid reads the rest)."""
    stats = summary.stats()
    name = escape(f"{record.name} v{record.version}")
    shards = len(summary.shards)
    removed_people = sum(n for r, n in record.reasons.items() if r.startswith(("humans", "review:human")))
    policy = escape(record.license_policy)
    licences = ", ".join(f"{escape(lid)} ({count:,})" for lid, count in stats.licenses)
    sources = ", ".join(f"{escape(src)}: {count:,}" for src, count in stats.sources)
    contact = escape(record.contact) if record.contact else "the maintainers of this release"
    motivation = escape(record.description) or (
        "An image dataset for self-supervised pretraining that, like PASS, avoids the problems of web-scraped and "
        "ImageNet-style data: every image has a license that allows redistribution with attribution, comes with "
        "complete attribution, and shows no people."
    )
    image_exts = "jpg" if record.image_format == "jpg" else "jpg</code> or <code>.png"
    folder_note = ", and an image-folder copy under <code>images/</code>" if record.layout_folder else ""
    gps = "include" if record.include_gps else "do not include"
    facts = "".join(
        f'<div class="fact"><b>{value}</b>{label}</div>'
        for value, label in (
            (f"{stats.images:,}", "images"),
            (f"{shards:,}", "shards"),
            (human_bytes(stats.bytes), "of images"),
            (f"{stats.creators:,}", "creators"),
            (f"{len(stats.licenses)}", "licenses"),
            (f"{record.candidates:,}", "candidates considered"),
        )
    )
    body = f"""<h1>{escape(record.title)}</h1>
<p class="sub">Datasheet of release <b>{name}</b> · built with passkit · files listed in <code>SHA256SUMS</code></p>
<div class="facts">{facts}</div>
{audit_html(record)}
<h2>Motivation</h2>
<p>{motivation} It was built with passkit, which implements
the PASS recipe (Asano et al., NeurIPS 2021) as a reproducible pipeline; the numbers on this page are computed from
the release itself.</p>
<h2>Composition</h2>
<p>{stats.images:,} photographs by {stats.creators:,} creators, in {shards:,} webdataset shards of at most
{record.shard_size:,} images (<code>shards/pass-NNNNN.tar</code>: <code>&lt;key&gt;.{image_exts}</code> and
<code>&lt;key&gt;.json</code> with the attribution). There are no labels. Licenses:
{licences}. The images were selected to contain no people, faces or body parts, no personally identifiable
information and no NSFW content; the audit above states how well that holds.</p>
{_figures_html(stats)}
<h3>Sample</h3>
<p>A fixed sample of the release (chosen by a hash of the key), with attribution.</p>
{grid_html(folder, summary.grid_rows()[: record.sample_grid], images)}
<h2>Collection</h2>
<p>Candidates came from public photo pools ({sources}) and were chosen from their metadata first — license
policy <code>{policy}</code>, complete attribution (creator, page, license), a cap per creator — and only then
downloaded, once. {record.candidates:,} candidates were considered; every one of them is accounted for below.</p>
<h2>Preprocessing</h2>
<p>Each stage records one reason per removed image (<code>stage:detail</code>). Image checks reject corrupt,
truncated, tiny and single-colour files and decompression bombs; an ensemble of face and person detectors removed
images with people ({removed_people:,} images by detector or review); duplicates (exact and perceptual, and
near-copies of evaluation sets) were removed; the per-creator cap limits any one photographer's share. Stored images
carry no EXIF, GPS, camera serials, XMP, IPTC or ICC data (lossless JPEG/PNG strip where possible); the metadata
files {gps} coordinates. Human review decisions: {record.review.get("on_kept", 0):,} on the filtered set
({record.review.get("problem", 0):,} problems removed).</p>
{funnel_html(record)}
<h2>Uses</h2>
<p>Intended: self-supervised pretraining of visual representations and research on it, as a people-free replacement
for ImageNet pretraining. Not suitable: anything about people (there are none, by design), face or person
recognition, and benchmarks that need labels. The content reflects what photographers chose to share under
permissive licenses (landscapes, animals, objects, architecture), which is not a sample of the world.</p>
<h2>Distribution</h2>
<p>Each image keeps its own license ({licences}); using an image requires crediting its creator as in the
<code>tasl</code> column of <code>metadata.parquet</code>/<code>metadata.csv</code> (Title, Author, Source, License).
Files: shards, metadata, <code>croissant.json</code> (MLCommons Croissant 1.0), <code>README.md</code>,
<code>CHANGELOG.md</code>, <code>VERSION</code>, checksums in <code>SHA256SUMS</code>{folder_note}. The build is
reproducible: the same input and settings give byte-identical files.</p>
<h2>Maintenance</h2>
<p>Images are removed on request — a creator who withdraws a photo, a person who finds themselves in one — by
<code>passkit takedown</code>, which publishes version N+1 without them and records the removal in
<code>CHANGELOG.md</code>; only the shards that held removed images change. Please use the latest version.
Contact: {contact}{f' · <a href="{escape(record.url)}">{escape(record.url)}</a>' if record.url else ""}.</p>
{_history_html(record)}
"""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{name} — datasheet</title>\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>{STYLE}</style>\n</head>\n'
        f"<body>\n{body}</body>\n</html>\n"
    )

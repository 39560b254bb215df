"""README.md (dataset card, with Hugging Face front matter) and CHANGELOG.md of a release."""

from __future__ import annotations

from passkit.release import layout
from passkit.release.record import HistoryEntry, ReleaseRecord
from passkit.release.stats import human_bytes
from passkit.release.summary import ReleaseSummary

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))
CHANGELOG_KEYS_SHOWN = 200


def _size_category(images: int) -> str:
    for limit, label in SIZE_CATEGORIES:
        if images < limit:
            return label
    return "1M<n<10M" if images < 10_000_000 else "n>10M"


def _front_matter(record: ReleaseRecord, licenses: list[str], images: int) -> str:
    license_line = f"license: {licenses[0].lower()}" if len(licenses) == 1 else "license: other"
    return "\n".join(
        [
            "---",
            license_line,
            f"pretty_name: {record.title}",
            "task_categories:",
            "- image-feature-extraction",
            "size_categories:",
            f"- {_size_category(images)}",
            "tags:",
            "- self-supervised-learning",
            "- webdataset",
            "- no-humans",
            "configs:",
            "- config_name: default",
            "  data_files:",
            "  - split: train",
            f"    path: {layout.SHARDS_DIR}/*.tar",
            "---",
            "",
        ]
    )


def render_card(record: ReleaseRecord, summary: ReleaseSummary) -> str:
    stats = summary.stats()
    shards = sorted(summary.shards)
    audit = record.audit["statement"] if record.audit else "not audited (no residual-human bound is stated)"
    licences = "\n".join(f"| {lid} | {name} | {count:,} |" for lid, name, count in stats.license_names())
    funnel = "\n".join(
        f"| {stage} | {removed:,} | {', '.join(reasons)} |" for stage, removed, reasons in record.funnel()
    )
    glob_import = ""
    image_ext = "jpg" if record.image_format == "jpg" else "jpg`/`.png"
    fields = '"jpg", "json"' if record.image_format == "jpg" else '"jpg;png", "json"'
    contiguous = shards == [layout.shard_tar(index) for index in range(len(shards))]
    urls = (
        f'"{layout.SHARDS_DIR}/pass-{{00000..{len(shards) - 1:05d}}}.tar"'
        if contiguous
        else f'sorted(glob.glob("{layout.SHARDS_DIR}/*.tar"))'  # a takedown dropped an emptied shard
    )
    if not contiguous:
        glob_import = "import glob\n"
    folder = (
        "\n### torchvision ImageFolder\n\n```python\nfrom torchvision.datasets import ImageFolder\n"
        'dataset = ImageFolder("images")  # images/<sha256 prefix>/<key>.jpg; the folder name is no label\n```\n'
        if record.layout_folder
        else ""
    )
    description = record.description or (
        "Photographs without people, each under a license that allows redistribution with attribution and with its "
        "full attribution, for self-supervised pretraining (the PASS recipe, built with passkit)."
    )
    return f"""{_front_matter(record, [lid for lid, _ in stats.licenses], stats.images)}
# {record.title} — {record.name} v{record.version}

{description}

- **{stats.images:,} images** by {stats.creators:,} creators, {human_bytes(stats.bytes)}, in {len(shards)} webdataset
  shards (`shards/pass-NNNNN.tar`: `<key>.{image_ext}` + `<key>.json` with the attribution)
- **Residual people**: {audit}
- Candidates considered: {record.candidates:,}; removed {sum(record.reasons.values()):,} (see the funnel below and
  `datasheet.html`)
- Metadata: `metadata.parquet` / `metadata.csv` (key, creator, title, page_url, license, license_url, tasl, sha256,
  size, width, height{", latitude, longitude" if record.include_gps else "; no GPS coordinates"})
- Checksums: `sha256sum -c SHA256SUMS`; machine-readable description: `croissant.json` (MLCommons Croissant 1.0)

## Attribution is required

Every image keeps its own license. When you show or redistribute an image, credit it with the `tasl` string of its
metadata row (also in its `<key>.json`), e.g. *"Title" by Creator (page URL), licensed under CC BY 2.0 (license URL)*.

| license | name | images |
|---|---|---|
{licences}

## Loading

### webdataset

```python
import webdataset as wds
{glob_import}dataset = wds.WebDataset({urls}, shardshuffle=False).decode("pil").to_tuple("__key__", {fields})
```

### Hugging Face datasets

```python
from datasets import load_dataset
dataset = load_dataset("webdataset", data_files={{"train": "{layout.SHARDS_DIR}/*.tar"}}, split="train")
```

### DuckDB / pandas

```sql
SELECT license, count(*) FROM 'metadata.parquet' GROUP BY license;
```
{folder}
## How it was made

Candidates were selected from metadata (license policy `{record.license_policy}`, complete attribution, a per-creator
cap), downloaded once, validated, scrubbed of EXIF/GPS, filtered by an ensemble of face and person detectors,
deduplicated, capped, reviewed by people and audited. Removed per stage:

| stage | removed | reasons |
|---|---|---|
{funnel}
| **released** | **{record.released:,}** | |

## Takedown and versions

To have an image removed (you are its creator, or a person appears in it), write to
{record.contact or "the maintainers of this release"} with its key or page URL. Removals publish a new version
(`passkit takedown`); `CHANGELOG.md` lists them. Please use the latest version: this is version {record.version}.

## Citation

PASS: Asano, Rupprecht, Zisserman, Vedaldi. *PASS: An ImageNet replacement for self-supervised pretraining without
humans.* NeurIPS Datasets and Benchmarks, 2021.
"""


def _entry(entry: HistoryEntry, previous_images: int | None) -> str:
    if entry.kind == "release":
        removed = ", ".join(f"{reason} {count:,}" for reason, count in sorted(entry.removed.items()))
        lines = [f"## v{entry.version} — release", "", f"- {entry.images:,} images."]
        if removed:
            lines.append(f"- Left out at release time: {removed}.")
        return "\n".join(lines) + "\n"
    lines = [f"## v{entry.version} — takedown", ""]
    for reason, count in sorted(entry.removed.items()):
        lines.append(f"- Removed {count:,} images, reason `{reason}`.")
    before = f"{previous_images:,} -> " if previous_images is not None else ""
    lines.append(f"- Images: {before}{entry.images:,}.")
    if entry.unknown:
        lines.append(f"- {entry.unknown:,} requested keys were not in the previous version (nothing removed for them).")
    if entry.shards_rewritten:
        lines.append(
            f"- Shards rewritten: {', '.join(entry.shards_rewritten)}; every other image is byte-identical to the "
            "previous version."
        )
    if entry.note:
        lines.append(f"- Note: {entry.note}")
    shown = entry.keys[:CHANGELOG_KEYS_SHOWN]
    more = f" (and {len(entry.keys) - len(shown):,} more: see release.json)" if len(entry.keys) > len(shown) else ""
    lines.append(f"- Keys removed: {', '.join(f'`{key}`' for key in shown)}{more}.")
    return "\n".join(lines) + "\n"


def render_changelog(record: ReleaseRecord) -> str:
    entries = []
    previous: int | None = None
    for entry in record.history:
        entries.append(_entry(entry, previous))
        previous = entry.images
    return f"# Changelog — {record.name}\n\n" + "\n".join(reversed(entries))

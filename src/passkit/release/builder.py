"""``build_release``: a filtered (and reviewed) folder -> release version N (layout of DESIGN.md, "Release").

Images kept by the filter, minus the review's problems, are re-checked (lossless metadata strip, readable header,
complete attribution, license policy), packed in key order into ``shards/pass-NNNNN.tar`` of ``shard_size`` images,
described in metadata.parquet/csv, and documented (datasheet, Croissant, card, changelog). Everything is written
into a temporary folder renamed at the end; the same input and config give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passkit.core.licenses import LicensePolicy
from passkit.core.reasons import IMAGE_CORRUPT, LICENSE_NOT_ALLOWED
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import ShardError, ShardWriter, read_shard
from passkit.release import layout
from passkit.release.config import ReleaseConfig
from passkit.release.decisions import ReviewDataError, read_audit, read_decisions
from passkit.release.documents import write_documents
from passkit.release.images import ImageRejectedError, release_image
from passkit.release.metadata import attribution_of, metadata_row, metadata_table, parse_json_part, sample_json
from passkit.release.publish import check_output, staging_folder
from passkit.release.record import HistoryEntry, ReleaseRecord
from passkit.release.source import ReleaseError, scan_source
from passkit.release.thumbnails import grid_keys

MAX_OPEN_WRITERS = 256  # release shards written at once; more shards take more passes over the input
Progress = Callable[[int, int], None]  # (images done, images in all)


@dataclass
class ReleaseReport:
    out: Path
    name: str
    version: int
    images: int
    shards: int
    bytes: int
    candidates: int
    funnel: list[tuple[str, int, dict[str, int]]]
    left_out: dict[str, int] = field(default_factory=dict)  # removed at release time: review, release checks
    stripped: int = 0  # images whose metadata the release had to strip (0 after `passkit filter`)
    converted: int = 0  # PNG images stored as JPEG (image_format="jpg")
    audit: str = "not audited"

    def lines(self) -> list[str]:
        lines = [f"{self.name} v{self.version}: {self.images:,} images in {self.shards} shards ({self.bytes:,} bytes)"]
        lines.append(f"{self.candidates:,} candidates considered; removed per stage:")
        for stage, removed, reasons in self.funnel:
            detail = ", ".join(f"{reason} {count:,}" for reason, count in reasons.items())
            lines.append(f"  {stage:<12} -{removed:>10,}   {detail}")
        lines.append(f"  {'released':<12} {self.images:>11,}")
        if self.left_out:
            lines.append("left out at release: " + ", ".join(f"{r} {n:,}" for r, n in sorted(self.left_out.items())))
        if self.stripped:
            lines.append(f"metadata stripped at release from {self.stripped:,} images (the filter had not)")
        if self.converted:
            lines.append(f"{self.converted:,} PNG images stored as JPEG (quality 95) for one format across the release")
        lines.append(f"audit: {self.audit}")
        return lines


def _input_samples(shard: ShardPaths, expected: set[str]) -> Iterator[Sample]:
    """The shard's samples; the tar must hold exactly the kept keys of its manifest."""
    seen: set[str] = set()
    try:
        for sample in read_shard(shard.tar):
            if sample.key not in expected:
                raise ReleaseError(f"{shard.tar}: sample {sample.key!r} is not kept in {shard.manifest.name}")
            seen.add(sample.key)
            yield sample
    except FileNotFoundError as error:
        if expected:
            raise ReleaseError(f"{shard.tar}: missing, but its manifest keeps {len(expected)} images") from error
    except ShardError as error:
        raise ReleaseError(f"corrupt shard: {error} (check it with `passkit verify`)") from error
    if expected - seen:
        missing = sorted(expected - seen)
        raise ReleaseError(f"{shard.tar}: kept in the manifest but absent from the tar: {missing[:5]}")


class _Packer:
    """Checks one input sample and writes the released form; collects metadata rows and left-out reasons."""

    def __init__(
        self,
        staging: Path,
        cfg: ReleaseConfig,
        expected_sha256: dict[str, str],
        scrubbed: set[str],
        grid_candidates: set[str],
    ) -> None:
        self.staging = staging
        self.cfg = cfg
        self.policy = LicensePolicy.parse(cfg.license_policy)
        self.expected_sha256 = expected_sha256
        self.scrubbed = scrubbed
        self.rows: list[dict[str, Any]] = []
        self.left_out: Counter[str] = Counter()
        self.stripped = 0
        self.converted = 0
        self.grid_candidates = grid_candidates
        self.grid_images: dict[str, bytes] = {}  # bytes of the images the datasheet's sample grid may show

    def add(self, sample: Sample, shard_index: int, writer: ShardWriter) -> None:
        ext = sample.image_ext()
        if ext is None:
            self.left_out[IMAGE_CORRUPT] += 1
            return
        data = sample.parts[ext]
        expected = self.expected_sha256.get(sample.key)
        digest = hashlib.sha256(data).hexdigest()
        if expected and digest != expected:
            raise ReleaseError(
                f"{sample.key}: image bytes differ from the manifest's sha256 (corrupt input; `passkit verify`)"
            )
        try:
            scrubbed = expected is not None and sample.key in self.scrubbed
            image = release_image(ext, data, self.cfg.image_format, digest, scrubbed)
        except ImageRejectedError as rejected:
            self.left_out[rejected.reason] += 1
            return
        record = parse_json_part(sample.parts.get("json"))
        attribution = attribution_of(record)
        reason = attribution.check() or ("" if self.policy.allows(attribution.license) else LICENSE_NOT_ALLOWED)
        if reason:
            self.left_out[reason] += 1
            return
        shard = layout.shard_tar(shard_index)
        facts = (image.ext, image.sha256, len(image.data), image.width, image.height)
        row = metadata_row(sample.key, shard, record, attribution, facts, self.cfg.include_gps)
        writer.write(Sample.build(sample.key, **{image.ext: image.data}, json=sample_json(row)))
        self.stripped += image.stripped
        self.converted += image.converted
        if self.cfg.layout_folder:
            path = self.staging / layout.folder_image(sample.key, image.sha256, image.ext)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image.data)
        self.rows.append(row)
        if sample.key in self.grid_candidates:
            self.grid_images[sample.key] = image.data


def _pack(
    staging: Path,
    scan_shards: list[ShardPaths],
    keys_by_shard: dict[int, set[str]],
    assignment: dict[str, int],
    packer: _Packer,
    progress: Progress | None,
) -> None:
    shard_count = max(assignment.values(), default=-1) + 1
    done = 0
    for start in range(0, shard_count, MAX_OPEN_WRITERS):
        group = range(start, min(start + MAX_OPEN_WRITERS, shard_count))
        writers = {index: ShardWriter(staging / layout.shard_tar(index)) for index in group}
        try:
            for shard in scan_shards:
                expected = keys_by_shard.get(shard.index, set())
                if not any(assignment.get(key, -1) in group for key in expected) and start > 0:
                    continue
                for sample in _input_samples(shard, expected):
                    target = assignment.get(sample.key)
                    if target is None or target not in group:
                        continue
                    packer.add(sample, target, writers[target])
                    done += 1
                    if progress is not None:
                        progress(done, len(assignment))
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
            if len(writer) == 0:  # every image of this slot was left out at release time
                writer.path.unlink()


def build_release(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: ReleaseConfig | None = None,
    *,
    candidates_rejects: Path | None = None,
    progress: Progress | None = None,
) -> ReleaseReport:
    """Build release ``cfg.version`` (default 1) of ``source_dir`` (a `passkit filter` output) into ``out_dir``."""
    cfg = cfg or ReleaseConfig()
    out = Path(out_dir)
    check_output(out)
    scan = scan_source(source_dir, candidates_rejects)
    try:
        decisions = read_decisions(source_dir)
        audit = read_audit(source_dir)
    except ReviewDataError as error:
        raise ReleaseError(str(error)) from error
    review_rejects = {
        key: decision.reason for key, decision in decisions.items() if decision.label == "problem" and key in scan.kept
    }
    released_keys = sorted(key for key in scan.kept if key not in review_rejects)
    if not released_keys:
        raise ReleaseError(
            f"{source_dir}: nothing to release ({len(scan.kept)} kept by the filter, {len(review_rejects)} rejected "
            "in review)"
        )
    assignment = {key: position // cfg.shard_size for position, key in enumerate(released_keys)}
    keys_by_shard: dict[int, set[str]] = {}
    for key, index in scan.kept.items():
        keys_by_shard.setdefault(index, set()).add(key)
    with staging_folder(out) as staging:
        # The grid shows the first sample_grid released keys in hash order; twice as many candidates cover keys
        # left out at release time (the rest, if ever needed, are read back from the shards).
        grid_candidates = set(grid_keys(released_keys, 2 * cfg.sample_grid))
        packer = _Packer(staging, cfg, scan.kept_sha256, scan.scrubbed, grid_candidates)
        packer.left_out.update(review_rejects.values())
        _pack(staging, scan.shards, keys_by_shard, assignment, packer, progress)
        reasons = scan.reasons + packer.left_out
        version = cfg.resolved_version
        on_kept = [decision for key, decision in decisions.items() if key in scan.kept]
        record = ReleaseRecord(
            name=cfg.name,
            title=cfg.title,
            version=version,
            description=cfg.description,
            url=cfg.url,
            contact=cfg.contact,
            shard_size=cfg.shard_size,
            layout_folder=cfg.layout_folder,
            include_gps=cfg.include_gps,
            image_format=cfg.image_format,
            license_policy=cfg.license_policy,
            sample_grid=cfg.sample_grid,
            date_published=cfg.date_published,
            candidates=scan.rows,
            reasons=dict(reasons),
            review={
                "decisions": len(decisions),
                "on_kept": len(on_kept),
                "problem": sum(decision.label == "problem" for decision in on_kept),
                "clean": sum(decision.label == "clean" for decision in on_kept),
            },
            audit=audit,
            history=[
                HistoryEntry(version=version, kind="release", images=len(packer.rows), removed=dict(packer.left_out))
            ],
        )
        table = metadata_table(packer.rows, cfg.include_gps)
        if record.released != table.num_rows:
            raise ReleaseError(f"counts do not add up: {record.released} expected, {table.num_rows} written")
        write_documents(staging, record, table, packer.grid_images)
    return ReleaseReport(
        out=out,
        name=cfg.name,
        version=version,
        images=table.num_rows,
        shards=len(set(table.column("shard").to_pylist())),
        bytes=sum(table.column("size").to_pylist()),
        candidates=record.candidates,
        funnel=record.funnel(),
        left_out=dict(packer.left_out),
        stripped=packer.stripped,
        converted=packer.converted,
        audit=audit["statement"] if audit else "not audited",
    )

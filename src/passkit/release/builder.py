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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
from passkit.release.metadata import (
    attribution_of,
    iter_values,
    metadata_row,
    parse_json_part,
    sample_json,
)
from passkit.release.metadata import schema as metadata_schema
from passkit.release.publish import check_output, staging_folder
from passkit.release.record import HistoryEntry, ReleaseRecord
from passkit.release.source import ReleaseError, scan_source
from passkit.release.summary import MetadataSink
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


@dataclass
class _InputShard:
    """What the release expects of one input shard: its kept keys (sha256 where known, whether the filter stored
    them scrubbed) and the release shard of each released one (-1: left out in review)."""

    shard: ShardPaths
    keys: set[str]
    sha256: dict[str, str]
    scrubbed: set[str]
    target: dict[str, int]
    targets: frozenset[int]

    @classmethod
    def of(cls, shard: ShardPaths, rows: pa.Table) -> _InputShard:
        keys, digests = rows.column("key").to_pylist(), rows.column("sha256").to_pylist()
        scrubbed, targets = rows.column("scrubbed").to_pylist(), rows.column("target").to_pylist()
        return cls(
            shard,
            set(keys),
            {key: digest.hex() for key, digest in zip(keys, digests, strict=True) if digest},
            {key for key, flag in zip(keys, scrubbed, strict=True) if flag},
            {key: target for key, target in zip(keys, targets, strict=True) if target >= 0},
            frozenset(targets),
        )


class _Packer:
    """Checks one input sample and writes the released form; collects left-out reasons and the metadata rows of
    each release shard (as Arrow tables, one per input shard visit), which go to the metadata sink, in shard order,
    as soon as the shard is complete."""

    def __init__(self, staging: Path, cfg: ReleaseConfig, grid_candidates: set[str], sink: MetadataSink) -> None:
        self.staging = staging
        self.cfg = cfg
        self.policy = LicensePolicy.parse(cfg.license_policy)
        self.schema = metadata_schema(cfg.include_gps)
        self.sink = sink
        self.expected_sha256: dict[str, str] = {}
        self.scrubbed: set[str] = set()
        self.rows: dict[int, list[dict[str, Any]]] = {}  # release shard -> rows from the input shard being read
        self.pending: dict[int, list[pa.Table]] = {}  # release shard -> rows so far
        self.complete: dict[int, pa.Table | None] = {}  # complete release shards waiting for a lower one
        self.next_shard = 0  # the next release shard the sink takes
        self.released = 0
        self.total = 0  # images to release (progress)
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
        self.rows.setdefault(shard_index, []).append(row)
        self.released += 1
        if sample.key in self.grid_candidates:
            self.grid_images[sample.key] = image.data

    def start(self, shard: _InputShard) -> None:
        self.expected_sha256, self.scrubbed = shard.sha256, shard.scrubbed

    def flush(self) -> None:
        """The input shard's rows become Arrow tables (compact; no Python object per image stays)."""
        for index, rows in self.rows.items():
            self.pending.setdefault(index, []).append(pa.Table.from_pylist(rows, schema=self.schema))
        self.rows = {}

    def finish(self, index: int) -> None:
        """Release shard ``index`` is complete: its rows, sorted by key, go to the sink once every lower shard's
        have."""
        parts = self.pending.pop(index, [])
        table = pa.concat_tables(parts) if parts else None
        self.complete[index] = None if table is None else table.take(pc.sort_indices(table.column("key")))
        while self.next_shard in self.complete:
            rows = self.complete.pop(self.next_shard)
            if rows is not None:
                self.sink.add(layout.shard_tar(self.next_shard), rows)
            self.next_shard += 1


def _pack(
    staging: Path,
    inputs: Callable[[], Iterator[_InputShard]],
    remaining: np.ndarray,
    packer: _Packer,
    progress: Progress | None,
) -> None:
    """Write the release shards (``remaining[i]``: images planned for shard ``i``), at most ``MAX_OPEN_WRITERS``
    at a time; a shard is closed as soon as all its images were seen (early when the input is in key order)."""
    remaining = remaining.copy()
    shard_count = len(remaining)
    done = 0

    def close(index: int, writer: ShardWriter) -> None:
        writer.close()
        if len(writer) == 0:  # every image of this slot was left out at release time
            writer.path.unlink()
        packer.finish(index)

    for start in range(0, shard_count, MAX_OPEN_WRITERS):
        group = range(start, min(start + MAX_OPEN_WRITERS, shard_count))
        writers = {index: ShardWriter(staging / layout.shard_tar(index)) for index in group}
        try:
            for shard in inputs():
                if start > 0 and not any(target in group for target in shard.targets):
                    continue
                packer.start(shard)
                for sample in _input_samples(shard.shard, shard.keys):
                    target = shard.target.get(sample.key)
                    if target is None or target not in group:
                        continue
                    packer.add(sample, target, writers[target])
                    remaining[target] -= 1
                    done += 1
                    if progress is not None:
                        progress(done, packer.total)
                packer.flush()
                for index in [index for index in writers if remaining[index] == 0]:
                    close(index, writers.pop(index))
            for index in list(writers):
                close(index, writers.pop(index))
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise


def _plan(kept: pa.Table, review_rejected: pa.Array, shard_size: int) -> pa.Table:
    """``kept`` with a ``target`` column, in input shard order: the release shard of each image (-1 when left out
    in review); released image ``i`` in key order goes to release shard ``i // shard_size``."""
    keys = kept.column("key")
    released = None
    if pc.any(review_rejected).as_py():
        released = np.flatnonzero(pc.invert(review_rejected).to_numpy(zero_copy_only=False))
        keys = keys.take(released)
    order = pc.sort_indices(keys).to_numpy()
    target = np.full(kept.num_rows, -1, np.int32)
    target[order if released is None else released[order]] = np.arange(len(order), dtype=np.int64) // shard_size
    del order
    planned = kept.append_column("target", pa.array(target))
    if np.any(np.diff(planned.column("shard").to_numpy()) < 0):  # scan order is input shard order already
        planned = planned.take(pc.sort_indices(planned, [("shard", "ascending")]))
    return planned


def _by_input_shard(shards: list[ShardPaths], planned: pa.Table) -> Callable[[], Iterator[_InputShard]]:
    index = planned.column("shard").to_numpy()
    shard_indices = np.array([shard.index for shard in shards], np.int32)
    starts = np.searchsorted(index, shard_indices, side="left")
    ends = np.searchsorted(index, shard_indices, side="right")

    def inputs() -> Iterator[_InputShard]:
        for shard, begin, end in zip(shards, starts.tolist(), ends.tolist(), strict=True):
            yield _InputShard.of(shard, planned.slice(begin, end - begin))

    return inputs


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
    problems = {key: decision.reason for key, decision in decisions.items() if decision.label == "problem"}
    kept_keys = scan.kept.column("key")
    review_rejected = pc.is_in(kept_keys, pa.array(list(problems), pa.string()))
    review_rejects = Counter(problems[key] for key in kept_keys.filter(review_rejected).to_pylist())
    planned = _plan(scan.kept, review_rejected, cfg.shard_size)
    released_keys = kept_keys.filter(pc.invert(review_rejected)) if review_rejects else kept_keys
    if not len(released_keys):
        raise ReleaseError(
            f"{source_dir}: nothing to release ({scan.kept.num_rows} kept by the filter, "
            f"{sum(review_rejects.values())} rejected in review)"
        )
    targets = planned.column("target").to_numpy()
    remaining = np.bincount(targets[targets >= 0])  # images per release shard
    with staging_folder(out) as staging:
        # The grid shows the first sample_grid released keys in hash order; twice as many candidates cover keys
        # left out at release time (the rest, if ever needed, are read back from the shards).
        grid_candidates = set(grid_keys(iter_values(released_keys), 2 * cfg.sample_grid))
        sink = MetadataSink(staging, cfg.include_gps, cfg.sample_grid)
        packer = _Packer(staging, cfg, grid_candidates, sink)
        packer.total = len(released_keys)
        packer.left_out.update(review_rejects)
        del released_keys
        try:
            _pack(staging, _by_input_shard(scan.shards, planned), remaining, packer, progress)
        except BaseException:
            sink.abort()
            raise
        summary = sink.close()
        del planned
        reasons = scan.reasons + packer.left_out
        version = cfg.resolved_version
        decided = pa.array(list(decisions), pa.string())
        on_kept = [decisions[key] for key in decided.filter(pc.is_in(decided, kept_keys)).to_pylist()]
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
                HistoryEntry(version=version, kind="release", images=packer.released, removed=dict(packer.left_out))
            ],
        )
        if record.released != summary.images:
            raise ReleaseError(f"counts do not add up: {record.released} expected, {summary.images} written")
        write_documents(staging, record, summary, packer.grid_images)
    return ReleaseReport(
        out=out,
        name=cfg.name,
        version=version,
        images=summary.images,
        shards=len(summary.shards),
        bytes=summary.stats().bytes,
        candidates=record.candidates,
        funnel=record.funnel(),
        left_out=dict(packer.left_out),
        stripped=packer.stripped,
        converted=packer.converted,
        audit=audit["statement"] if audit else "not audited",
    )

"""``takedown``: release vN -> vN+1 without some keys; every document regenerated, the removal in CHANGELOG.md.

Each remaining image stays in the shard it was in: only shards that held a removed image are re-packed (member
bytes copied unchanged, in key order), every other shard is hard-linked (copied where links are impossible) —
mirrors re-download only what changed. A shard left empty is dropped. The previous release is checked against its
SHA256SUMS first, and the digests of untouched shards are taken from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from passkit.core.reasons import TAKEDOWN, is_valid_reason
from passkit.core.tar import ShardError, ShardWriter, read_shard
from passkit.release import layout
from passkit.release.checksums import read_checksums, verify_checksums
from passkit.release.config import DATE_PATTERN
from passkit.release.documents import write_documents, write_metadata_of
from passkit.release.metadata import read_metadata
from passkit.release.publish import check_output, staging_folder
from passkit.release.record import HistoryEntry, ReleaseRecord
from passkit.release.source import ReleaseError


@dataclass
class TakedownReport:
    out: Path
    name: str
    previous_version: int
    version: int
    reason: str
    images_before: int
    images: int
    removed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # requested keys that were not in the release
    shards_rewritten: list[str] = field(default_factory=list)
    shards_dropped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [
            f"{self.name} v{self.previous_version} -> v{self.version}: removed {len(self.removed):,} images "
            f"(reason {self.reason}); {self.images_before:,} -> {self.images:,} images",
            f"shards re-packed: {', '.join(self.shards_rewritten) or '-'}; all other shards copied unchanged",
        ]
        if self.shards_dropped:
            lines.append(f"shards dropped (left empty): {', '.join(self.shards_dropped)}")
        if self.unknown:
            shown = ", ".join(self.unknown[:10]) + (" ..." if len(self.unknown) > 10 else "")
            lines.append(f"{len(self.unknown):,} requested keys are not in v{self.previous_version}: {shown}")
        return lines


def read_keys_file(path: str | os.PathLike[str]) -> list[str]:
    """One key per line; blank lines and ``#`` comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ReleaseError(f"{path}: cannot read the keys file ({error})") from error
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _read_release(folder: Path) -> tuple[ReleaseRecord, pa.Table]:
    if not folder.is_dir():
        raise ReleaseError(f"{folder}: no such release folder")
    try:
        record = ReleaseRecord.read(folder)
    except (FileNotFoundError, ValueError) as error:
        raise ReleaseError(str(error)) from error
    version_file = folder / layout.VERSION_FILE
    if not version_file.exists() or version_file.read_text(encoding="utf-8").strip() != str(record.version):
        raise ReleaseError(f"{version_file}: missing or not {record.version} as in release.json")
    problems = verify_checksums(folder)
    if problems:
        raise ReleaseError(f"{folder}: does not match its SHA256SUMS: {'; '.join(problems[:5])}")
    return record, read_metadata(folder)


def _link_or_copy(source: Path, target: Path) -> None:
    """Release files are immutable once published: an unchanged one is hard-linked where the filesystem allows."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _repack(source: Path, target: Path, removed: set[str]) -> int:
    """Copy the shard without the removed keys; returns the samples written (the file is dropped when 0)."""
    try:
        with ShardWriter(target) as writer:
            for sample in read_shard(source):
                if sample.key not in removed:
                    writer.write(sample)
    except ShardError as error:
        raise ReleaseError(f"corrupt release shard: {error}") from error
    if len(writer) == 0:
        target.unlink()
    return len(writer)


def takedown(
    release_dir: str | os.PathLike[str],
    keys: Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    reason: str = TAKEDOWN,
    note: str = "",
    date_published: str = "",
) -> TakedownReport:
    """Write version N+1 of the release at ``release_dir`` into ``out_dir``, without ``keys``."""
    if date_published and DATE_PATTERN.match(date_published) is None:
        raise ReleaseError(f"date_published {date_published!r} must be an ISO date (YYYY-MM-DD)")
    if not is_valid_reason(reason):
        raise ReleaseError(f"reason {reason!r} is not a reason code (stage:detail, e.g. takedown or review:human)")
    source, out = Path(release_dir), Path(out_dir)
    check_output(out)
    record, table = _read_release(source)
    requested = sorted(set(keys))
    present = set(table.column("key").to_pylist())
    removed = [key for key in requested if key in present]
    unknown = [key for key in requested if key not in present]
    if not removed:
        raise ReleaseError(
            f"none of the {len(requested)} requested keys is in {record.name} v{record.version}: "
            f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}"
        )
    removed_set = set(removed)
    is_removed = pc.is_in(table.column("key"), pa.array(removed))
    affected = set(table.filter(is_removed).column("shard").to_pylist())
    kept = table.filter(pc.invert(is_removed))
    report = TakedownReport(out, record.name, record.version, record.version + 1, reason, table.num_rows,
                            kept.num_rows, removed, unknown)  # fmt: skip
    previous_digests = read_checksums(source)  # verified above
    unchanged: dict[str, str] = {}
    with staging_folder(out) as staging:
        (staging / layout.SHARDS_DIR).mkdir()
        for shard in sorted(set(table.column("shard").to_pylist())):
            if shard not in affected:
                _link_or_copy(source / shard, staging / shard)
                unchanged[shard] = previous_digests[shard]
            elif _repack(source / shard, staging / shard, removed_set):
                report.shards_rewritten.append(shard)
            else:
                report.shards_dropped.append(shard)
        if record.layout_folder:
            columns = (kept.column(name).to_pylist() for name in ("key", "sha256", "format"))
            for key, sha256, fmt in zip(*columns, strict=True):
                path = layout.folder_image(key, sha256, fmt)
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(source / path, staging / path)
        record.version += 1
        record.date_published = date_published
        record.reasons[reason] = record.reasons.get(reason, 0) + len(removed)
        record.history.append(
            HistoryEntry(
                version=record.version,
                kind="takedown",
                images=kept.num_rows,
                removed={reason: len(removed)},
                keys=removed,
                unknown=len(unknown),
                shards_rewritten=report.shards_rewritten + report.shards_dropped,
                note=note,
            )
        )
        summary = write_metadata_of(staging, kept, record)
        write_documents(staging, record, summary, digests=unchanged)
    return report

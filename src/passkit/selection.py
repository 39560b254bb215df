"""Runs select over pool sources: ``candidates.parquet`` + ``candidates.rejects.parquet`` (DESIGN contract).

Pass 1 streams every source batch through :func:`passkit.stages.select.select_batch`; rejects go straight to the
rejects file, admitted records to a spill file next to the output, and their key and creator hashes to partition
files for the two whole-pool choices, exact duplicate keys and the per-creator cap (:mod:`passkit.pool_choices`;
2 bits per admitted record stay in memory). Pass 2 streams the spill file into candidates and rejects. Both
outputs are published atomically at the end, and every input record is in exactly one of them: rows in =
candidates + rejects.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core import reasons
from passkit.core.atomic import atomic_path
from passkit.pool_choices import PoolChoices, creator_hashes, key_check
from passkit.sources.schema import CANDIDATE_SCHEMA, POOL_SCHEMA, REJECT_SCHEMA
from passkit.sources.specs import TABLE_SUFFIXES, spec_kind
from passkit.sources.streams import DecompressedStream
from passkit.stages.select import SelectConfig, decide, key_rank


class SourceError(ValueError):
    """A source that cannot be read at all (missing, unknown format): reported before any work."""


class PoolSource(Protocol):
    """What select needs of a reader: POOL_SCHEMA batches, then the rows read and any stream problem."""

    path: Path
    rows: int
    problem: str

    def __iter__(self) -> Iterable[pa.Table]: ...


def rejects_path_for(out: Path) -> Path:
    """``candidates.parquet`` -> ``candidates.rejects.parquet``."""
    return out.with_name(f"{out.name.removesuffix('.parquet')}.rejects.parquet")


def open_source(
    spec: str | os.PathLike[str],
    columns: Mapping[str, str] | None = None,
    source_name: str | None = None,
    stream: DecompressedStream | None = None,
) -> PoolSource:
    """A reader for ``spec``: ``yfcc:PATH``, ``table:PATH``, ``folder:PATH``, or a path whose kind is recognised
    (a folder; a .csv/.tsv/.parquet/.jsonl table, optionally .gz; otherwise YFCC100M metadata, sniffed).
    ``columns`` maps fields to table columns; ``source_name`` names the key prefix of tables and folders.
    ``stream``: decompression of ``spec`` already started by :func:`passkit.sources.specs.start_source` (the
    reader takes it over, or it is stopped here)."""
    try:
        reader = _open_source(spec, columns, source_name, stream)
    except BaseException:
        if stream is not None:
            stream.close()
        raise
    if stream is not None and getattr(reader, "_stream", None) is not stream:
        stream.close()
    return reader


def _open_source(
    spec: str | os.PathLike[str],
    columns: Mapping[str, str] | None,
    source_name: str | None,
    stream: DecompressedStream | None,
) -> PoolSource:
    from passkit.sources.folder import FolderReader
    from passkit.sources.tables import DEFAULT_SOURCE, TableReader
    from passkit.sources.yfcc import YfccReader, detect_layout

    kind, path = spec_kind(spec)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if kind == "folder" or (not kind and path.is_dir()):
        return FolderReader(path, source=source_name)
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    if kind == "table" or (not kind and name.endswith(TABLE_SUFFIXES)):
        try:
            return TableReader(path, columns=columns, source=source_name or DEFAULT_SOURCE)
        except ValueError as error:
            raise SourceError(str(error)) from error
    # The start of the file is decompressed once: it tells both whether it is YFCC100M metadata and, with kind
    # yfcc:, what is wrong with it. From a stream already started, its first bytes (which the reader reads again);
    # else one bzip2 block with the standard library.
    try:
        if stream is not None and stream.path == path:
            detect_layout(stream.peek(256 << 10), path.name)
        else:
            with DecompressedStream(path, decompressor="python") as sniffing:
                detect_layout(sniffing.read(256 << 10), path.name)
    except ValueError as error:
        if kind == "yfcc":
            raise SourceError(str(error)) from error
    except OSError:
        if kind == "yfcc":
            raise
    else:
        return YfccReader(path, stream=stream if stream is not None and stream.path == path else None)
    raise SourceError(
        f"{path}: unknown source kind (not YFCC100M metadata; tables need a .csv/.tsv/.parquet/.jsonl name); "
        "prefix it with yfcc:, table: or folder:"
    )


@dataclass
class SelectSummary:
    out: Path
    rejects_out: Path
    rows_in: int = 0
    candidates: int = 0
    rejects: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    rows_by_license: Counter[str] = field(default_factory=Counter)
    candidates_by_license: Counter[str] = field(default_factory=Counter)
    sources: list[tuple[str, int]] = field(default_factory=list)  # (path, rows)
    problems: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.candidates + self.rejects == self.candidates + sum(self.by_reason.values())


# Columns with few distinct values: parquet dictionary encoding pays off there; on keys, ids and URLs it costs
# hashing time for little gain.
_FEW_VALUES = ("reason", "detail", "source", "license", "license_url", "license_raw", "source_file")


def _writer(schema: pa.Schema, compression: str = "zstd") -> dict[str, object]:
    """ParquetWriter options for the published files."""
    return {"compression": compression, "use_dictionary": [name for name in _FEW_VALUES if name in schema.names]}


# Rows per row group of the outputs: batches are gathered up to this many rows. The writer keeps the metadata of
# every row group (and column) in memory until it closes; a row group per batch made that grow with the pool.
CANDIDATE_ROW_GROUP = 1 << 15  # ~12 MB of candidate records in memory
REJECT_ROW_GROUP = 1 << 16  # ~9 MB of reject rows


class _RowGroups:
    """A ParquetWriter fed whole row groups of at least ``rows`` rows (the last one may be smaller)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int) -> None:
        self._writer = writer
        self._rows = rows
        self._tables: list[pa.Table] = []
        self._held = 0

    def write_table(self, table: pa.Table) -> None:
        self._tables.append(table)
        self._held += table.num_rows
        if self._held >= self._rows:
            self.flush()

    def flush(self) -> None:
        if self._tables:
            self._writer.write_table(pa.concat_tables(self._tables), row_group_size=self._held)
        self._tables, self._held = [], 0

    def __enter__(self) -> _RowGroups:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self.flush()
        finally:
            self._writer.close()


def _reject_table(batch: pa.Table, rows: pa.Array, reason: pa.Array, detail: pa.Array) -> pa.Table:
    """Reject rows of the records ``batch.filter(rows)``."""
    batch = batch.select([name for name in REJECT_SCHEMA.names if name in batch.column_names]).filter(rows)
    columns = {name: batch.column(name) for name in batch.column_names}
    columns["reason"] = reason
    columns["detail"] = detail
    return pa.table({name: columns[name] for name in REJECT_SCHEMA.names}).cast(REJECT_SCHEMA)


def _count(counter: Counter[str], values: pa.Array | pa.ChunkedArray, null_label: str = "unknown") -> None:
    for item in pc.value_counts(pc.fill_null(values, null_label)).to_pylist():
        counter[item["values"]] += item["counts"]


def run_select(
    sources: Sequence[str | os.PathLike[str] | PoolSource],
    out: str | os.PathLike[str],
    cfg: SelectConfig,
    on_progress: Callable[[str, int], None] | None = None,
) -> SelectSummary:
    """Select candidates from ``sources`` (paths/specs, or readers from :func:`open_source`) into ``out`` and its
    rejects file; returns the counts."""
    out = Path(out)
    # Every source is opened (and so checked) before work starts.
    readers = [spec if hasattr(spec, "problem") else open_source(spec) for spec in sources]  # type: ignore[arg-type]
    summary = SelectSummary(out=out, rejects_out=rejects_path_for(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{out.name}.spill-", dir=out.parent) as spill_dir,
        atomic_path(summary.rejects_out) as rejects_temp,
        atomic_path(out) as candidates_temp,
        contextlib.ExitStack() as stack,
    ):
        spill_path = Path(spill_dir) / "admitted.arrow"
        choices = PoolChoices(spill_dir, cfg.max_per_creator)
        rejects_writer = stack.enter_context(
            _RowGroups(
                # No column statistics: nothing filters rejects by value range, and they cost ~15% of the writing.
                pq.ParquetWriter(rejects_temp, REJECT_SCHEMA, write_statistics=False, **_writer(REJECT_SCHEMA)),
                REJECT_ROW_GROUP,
            )
        )
        # The spill file is Arrow IPC with lz4: several times cheaper to write and read back than parquet.
        spill_options = pa.ipc.IpcWriteOptions(compression="lz4")
        with (
            pa.OSFile(str(spill_path), "wb") as sink,
            pa.ipc.new_file(sink, POOL_SCHEMA, options=spill_options) as spill,
        ):
            for reader in readers:
                # Readers that can read rejected records light are given the policy (see YfccReader.records).
                records = getattr(reader, "records", None)
                for batch in records(cfg.license_policy) if records is not None else reader:
                    batch = batch.cast(POOL_SCHEMA)
                    decided = decide(batch, cfg)  # what select_batch decides, as codes
                    summary.rows_in += batch.num_rows
                    _count(summary.rows_by_license, batch.column("license"), null_label="(unreadable)")
                    rejected_mask = decided.code != 0
                    rejected = pa.array(rejected_mask)
                    reject_codes = decided.code[rejected_mask]
                    reject_rows = _reject_table(
                        batch,
                        rejected,
                        pc.take(pa.array(decided.reasons, pa.string()), pa.array(reject_codes)),
                        decided.detail.filter(rejected),
                    )
                    rejects_writer.write_table(reject_rows)
                    summary.rejects += reject_rows.num_rows
                    per_reason = np.bincount(reject_codes, minlength=len(decided.reasons))
                    for index in np.flatnonzero(per_reason).tolist():
                        summary.by_reason[decided.reasons[index]] += int(per_reason[index])
                    kept = batch.filter(pc.invert(rejected))
                    if kept.num_rows:
                        spill.write_table(kept)
                        keys = kept.column("key")
                        choices.add(key_rank(keys, cfg.seed), key_check(keys, cfg.seed), *creator_hashes(kept))
                    if on_progress is not None:
                        on_progress(str(reader.path), summary.rows_in)
                summary.sources.append((str(reader.path), reader.rows))
                if reader.problem:
                    summary.problems.append(reader.problem)
        choices.finish()
        with _RowGroups(
            pq.ParquetWriter(candidates_temp, CANDIDATE_SCHEMA, **_writer(CANDIDATE_SCHEMA)), CANDIDATE_ROW_GROUP
        ) as candidates_writer:
            offset = 0
            for batch in _spill_batches(spill_path):
                batch = batch.cast(POOL_SCHEMA)
                rows = slice(offset, offset + batch.num_rows)
                offset += batch.num_rows
                duplicate, over_cap = choices.duplicate(rows.start, rows.stop), choices.capped(rows.start, rows.stop)
                keep = ~duplicate & ~over_cap
                candidates = batch.filter(pa.array(keep)).select(CANDIDATE_SCHEMA.names).cast(CANDIDATE_SCHEMA)
                candidates_writer.write_table(candidates)
                summary.candidates += candidates.num_rows
                _count(summary.candidates_by_license, candidates.column("license"))
                if keep.all():
                    continue
                reason = np.where(duplicate, reasons.DEDUP_EXACT, reasons.CAP_CREATOR)[~keep]
                counts = np.zeros(len(reason), np.int64)
                if over_cap.any():
                    counts[over_cap[~keep]] = choices.creator_counts(*creator_hashes(batch.filter(pa.array(over_cap))))
                detail = np.where(
                    duplicate[~keep],
                    "duplicate of an earlier record with the same key",
                    np.char.add(
                        np.char.add("creator has ", counts.astype(str)),
                        f" candidates; the cap keeps {cfg.max_per_creator} (seed {cfg.seed})",
                    ),
                )
                reject_rows = _reject_table(batch, pa.array(~keep), pa.array(reason), pa.array(detail))
                rejects_writer.write_table(reject_rows)
                summary.rejects += reject_rows.num_rows
                _count(summary.by_reason, reject_rows.column("reason"))
        stack.close()  # finish the rejects file before it is published
        if not summary.balanced:
            raise AssertionError(
                f"select lost rows: {summary.rows_in} in, {summary.candidates} candidates + {summary.rejects} rejects"
            )
    return summary


def _spill_batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The spill file one record batch (as written) at a time, read (not memory-mapped) so that memory does not
    grow with the file."""
    with pa.OSFile(str(path), "rb") as source:
        spill = pa.ipc.open_file(source)
        for index in range(spill.num_record_batches):
            batch = pa.Table.from_batches([spill.get_batch(index)])
            yield batch.select(columns) if columns is not None else batch

"""candidates.parquet for the download step, streamed: checks, fingerprint and row ranges, in bounded memory.

The driver never holds the candidates table. :func:`scan_candidates` reads it in record batches once: contract
columns, valid keys, unique keys (one 64-bit hash per row, the only state that grows with the file: 8 bytes a
row, freed after the scan; hash collisions are confirmed against the real keys) and the fingerprint
(sha256 over ``key \\t url \\n`` of every row, fed batch by batch). A first-pass shard task names a
:class:`CandidateRange` that the worker reads itself (:func:`read_range`); retried keys are picked out of the file
by :func:`rows_with_keys` (memory: the retried rows only).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.candidates import CANDIDATE_COLUMNS
from passkit.core.keys import is_valid_key
from passkit.stages.select import key_rank

SCAN_BATCH_ROWS = 16_384
READ_BUFFER = 1 << 20  # stream column pages instead of loading whole column chunks of a large row group


class CandidatesError(ValueError):
    """candidates.parquet cannot be used: unreadable, missing contract columns, invalid or repeated keys."""


@dataclass(frozen=True)
class CandidatesScan:
    path: Path
    rows: int
    fingerprint: str


@dataclass(frozen=True)
class CandidateRange:
    """Rows ``[start, start + count)`` of a candidates file: what a first-pass shard task carries."""

    path: str
    start: int
    count: int

    def read(self) -> pa.Table:
        return read_range(self.path, self.start, self.count)


def _open(path: str | os.PathLike[str]) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
    except (OSError, pa.ArrowException) as error:
        raise CandidatesError(f"cannot read candidates {path}: {error}") from error


def iter_batches(
    path: str | os.PathLike[str], columns: list[str] | None = None, batch_rows: int = SCAN_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    file = _open(path)
    try:
        yield from file.iter_batches(batch_size=batch_rows, columns=columns)
    except (OSError, pa.ArrowException) as error:
        raise CandidatesError(f"cannot read candidates {path}: {error}") from error


def fingerprint_update(digest: hashlib._Hash, keys: pa.Array, urls: pa.Array) -> None:
    """Feed ``key \\t url \\n`` of every row to ``digest`` (a null url reads ``None``, as ``str(None)`` would)."""
    urls = pc.fill_null(urls.cast(pa.string()), "None")
    lines = pc.binary_join_element_wise(keys.cast(pa.string()), urls, "\t")
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")  # "key\turl" + "\n" + ""
    array = lines.cast(pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) == 0:
        return
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    digest.update(memoryview(array.buffers()[2])[int(offsets[0]) : int(offsets[-1])])


def fingerprint(table: pa.Table) -> str:
    """sha256 over ``key \\t url \\n`` of every row of an in-memory table (the scan's fingerprint of a file)."""
    digest = hashlib.sha256()
    for batch in table.select(["key", "url"]).to_batches(SCAN_BATCH_ROWS):
        fingerprint_update(digest, batch.column(0), batch.column(1))
    return digest.hexdigest()


def scan_candidates(path: str | os.PathLike[str]) -> CandidatesScan:
    """Check candidates.parquet (contract columns, valid and unique keys) and fingerprint it, streaming."""
    path = Path(path)
    names = _open(path).schema_arrow.names
    missing = [name for name in CANDIDATE_COLUMNS if name not in names]
    if missing:
        raise CandidatesError(f"{path}: missing candidate columns {missing} (see the candidates.parquet contract)")
    digest = hashlib.sha256()
    hashes: list[np.ndarray] = []
    invalid: list[str] = []
    invalid_count = rows = 0
    for batch in iter_batches(path, columns=["key", "url"]):
        keys = batch.column(0)
        for key in keys.to_pylist():  # one batch of Python strings at a time
            if not is_valid_key(key):
                invalid_count += 1
                if len(invalid) < 3:
                    invalid.append(key)
        if invalid_count:
            continue
        fingerprint_update(digest, keys, batch.column(1))
        hashes.append(key_rank(keys))
        rows += batch.num_rows
    if invalid_count:
        raise CandidatesError(f"{path}: {invalid_count} invalid keys, e.g. {invalid!r}")
    repeated = repeated_keys(path, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64))
    if repeated:
        raise CandidatesError(f"{path}: {len(repeated)} keys appear more than once, e.g. {repeated[:3]!r}")
    return CandidatesScan(path, rows, digest.hexdigest())


def repeated_keys(path: Path, hashes: np.ndarray) -> list[str]:
    """Keys that occur more than once, given a 64-bit hash per row: only rows whose hash repeats are re-read."""
    ordered = np.sort(hashes)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return []
    suspects = pa.array(np.unique(ordered[1:][same]), pa.uint64())
    seen: set[str] = set()
    repeated: set[str] = set()
    for batch in iter_batches(path, columns=["key"]):
        keys = batch.column(0)
        for key in keys.filter(pc.is_in(pa.array(key_rank(keys), pa.uint64()), value_set=suspects)).to_pylist():
            if key in seen:
                repeated.add(key)
            seen.add(key)
    return sorted(repeated)


def read_range(path: str | os.PathLike[str], start: int, count: int) -> pa.Table:
    """Rows ``[start, start + count)``, reading only the row groups that hold them (pages streamed)."""
    file = _open(path)
    groups: list[int] = []
    first_row = offset = 0
    for index in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(index).num_rows
        if offset < start + count and offset + rows > start:
            if not groups:
                first_row = offset
            groups.append(index)
        offset += rows
    pieces: list[pa.RecordBatch] = []
    skip, needed = start - first_row, count
    if groups:
        for batch in file.iter_batches(batch_size=min(max(count, 1), SCAN_BATCH_ROWS), row_groups=groups):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            piece = batch.slice(skip, needed)
            skip, needed = 0, needed - piece.num_rows
            pieces.append(piece)
            if needed <= 0:
                break
    if needed > 0:
        raise CandidatesError(f"{path}: rows {start}..{start + count} asked, the file has {offset} rows")
    return pa.Table.from_batches(pieces, schema=file.schema_arrow).combine_chunks()


def rows_with_keys(path: str | os.PathLike[str], keys: pa.Array) -> pa.Table:
    """The rows whose key is in ``keys`` (any order), streaming the file; memory: those rows."""
    file = _open(path)
    pieces = [
        batch.filter(pc.is_in(batch.column("key"), value_set=keys))
        for batch in file.iter_batches(batch_size=SCAN_BATCH_ROWS)
    ]
    return pa.Table.from_batches([piece for piece in pieces if piece.num_rows], schema=file.schema_arrow)

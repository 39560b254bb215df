"""Shard manifests (contract): exactly one parquet row per candidate that entered the shard.

Columns ``key``, ``status`` (``kept`` | ``rejected`` | ``failed``), ``reason`` (empty iff kept) and any measured
columns (sha256, width, height, scores...). Rows are sorted by key; the file is written last and atomically, so a
shard is done iff its manifest exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.atomic import atomic_path
from passkit.core.keys import is_valid_key
from passkit.core.reasons import is_valid_reason

KEPT, REJECTED, FAILED = "kept", "rejected", "failed"
STATUSES = (KEPT, REJECTED, FAILED)
REQUIRED_COLUMNS = ("key", "status", "reason")


class ManifestError(ValueError):
    """A manifest that breaks the one-row-per-candidate contract."""


def _examples(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def validate_manifest(table: pa.Table, expected_keys: Iterable[str] | None = None, where: str = "manifest") -> None:
    """Raise :class:`ManifestError` unless ``table`` satisfies the manifest contract (and, when given, holds
    exactly ``expected_keys``)."""
    missing_columns = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if missing_columns:
        raise ManifestError(f"{where}: missing columns {missing_columns}")
    keys = table.column("key").to_pylist()
    statuses = table.column("status").to_pylist()
    reasons = table.column("reason").to_pylist()
    bad_keys = [key for key in keys if not is_valid_key(key)]
    if bad_keys:
        raise ManifestError(f"{where}: invalid keys: {_examples(map(repr, bad_keys))}")
    if len(set(keys)) != len(keys):
        counts: dict[str, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        raise ManifestError(f"{where}: keys with more than one row: {_examples(k for k, n in counts.items() if n > 1)}")
    for key, status, reason in zip(keys, statuses, reasons, strict=True):
        if status not in STATUSES:
            raise ManifestError(f"{where}: key {key}: status {status!r} not in {STATUSES}")
        if status == KEPT and reason:
            raise ManifestError(f"{where}: key {key}: kept with a reason ({reason!r})")
        if status != KEPT and not is_valid_reason(reason):
            raise ManifestError(f"{where}: key {key}: {status} needs a reason code stage:detail, got {reason!r}")
    if expected_keys is not None:
        expected = set(expected_keys)
        present = set(keys)
        if expected - present:
            raise ManifestError(f"{where}: candidates without a row: {_examples(expected - present)}")
        if present - expected:
            raise ManifestError(f"{where}: rows for keys that were not candidates: {_examples(present - expected)}")


class ManifestBuilder:
    """Collects one row per candidate; ``add`` refuses a second row for a key at once."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def add(self, key: str, status: str, reason: str = "", **measures: Any) -> None:
        if key in self._rows:
            raise ManifestError(f"key {key} already has a row ({self._rows[key]['status']})")
        self._rows[key] = {"key": key, "status": status, "reason": reason or "", **measures}

    def kept(self, key: str, **measures: Any) -> None:
        self.add(key, KEPT, "", **measures)

    def rejected(self, key: str, reason: str, **measures: Any) -> None:
        self.add(key, REJECTED, reason, **measures)

    def failed(self, key: str, reason: str, **measures: Any) -> None:
        self.add(key, FAILED, reason, **measures)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def to_table(self, schema: pa.Schema | None = None) -> pa.Table:
        rows = [self._rows[key] for key in sorted(self._rows)]
        columns: dict[str, None] = dict.fromkeys(REQUIRED_COLUMNS)
        for row in rows:
            columns.update(dict.fromkeys(row))
        return pa.Table.from_pylist([{name: row.get(name) for name in columns} for row in rows], schema=schema)


def _sorted_by_key(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, sort_keys=[("key", "ascending")]))


def write_manifest(
    path: str | os.PathLike[str],
    rows: pa.Table | ManifestBuilder | list[Mapping[str, Any]],
    expected_keys: Iterable[str] | None = None,
) -> Path:
    """Validate and write a manifest atomically (rows sorted by key). Returns the path."""
    if isinstance(rows, ManifestBuilder):
        table = rows.to_table()
    elif isinstance(rows, pa.Table):
        table = rows
    else:
        table = pa.Table.from_pylist(list(rows))
    if table.num_rows == 0 and "key" not in table.column_names:
        table = pa.table({name: pa.array([], pa.string()) for name in REQUIRED_COLUMNS})
    validate_manifest(table, expected_keys, where=str(path))
    table = _sorted_by_key(table)
    with atomic_path(path) as temp:
        pq.write_table(table, temp, compression="zstd")
    return Path(path)


def read_manifest(path: str | os.PathLike[str], validate: bool = True) -> pa.Table:
    table = pq.read_table(path)
    if validate:
        validate_manifest(table, where=str(path))
    return table


def status_counts(table: pa.Table) -> dict[str, int]:
    """``{"kept": n, "<reason>": n, ...}``: kept rows plus one entry per reject/failure reason."""
    counts: dict[str, int] = {}
    for status, reason in zip(table.column("status").to_pylist(), table.column("reason").to_pylist(), strict=True):
        label = KEPT if status == KEPT else reason
        counts[label] = counts.get(label, 0) + 1
    return counts

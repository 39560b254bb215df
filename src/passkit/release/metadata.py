"""Release metadata: one row per released image (attribution with TASL string, checksum, size), as parquet + CSV."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.attribution import Attribution, clean_text

METADATA_PARQUET = "metadata.parquet"
METADATA_CSV = "metadata.csv"
GPS_COLUMNS = ("latitude", "longitude")
COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("key", pa.string(), "sample key: <key>.<ext> and <key>.json in the shard"),
    ("shard", pa.string(), "release shard holding the image, relative to the release folder"),
    ("source", pa.string(), "pool the candidate came from (e.g. yfcc)"),
    ("photo_id", pa.string(), "the photo's id in its source"),
    ("creator", pa.string(), "author to credit"),
    ("title", pa.string(), "title as given by the author (may be empty)"),
    ("page_url", pa.string(), "the photo's page at its source"),
    ("license", pa.string(), "license id (SPDX-style)"),
    ("license_url", pa.string(), "license deed"),
    ("tasl", pa.string(), "attribution string: Title, Author, Source, License"),
    ("url", pa.string(), "original image URL the bytes were downloaded from"),
    ("date_taken", pa.string(), "date taken, as given by the source"),
    ("format", pa.string(), "stored image format (file extension)"),
    ("sha256", pa.string(), "sha256 of the stored image bytes"),
    ("size", pa.int64(), "stored image size in bytes"),
    ("width", pa.int64(), "image width in pixels"),
    ("height", pa.int64(), "image height in pixels"),
)


def schema(include_gps: bool) -> pa.Schema:
    fields = [pa.field(name, kind, nullable=False) for name, kind, _ in COLUMNS]
    if include_gps:
        fields += [pa.field(name, pa.float64()) for name in GPS_COLUMNS]
    return pa.schema(fields)


def column_descriptions(include_gps: bool) -> dict[str, str]:
    descriptions = {name: text for name, _, text in COLUMNS}
    if include_gps:
        descriptions.update(latitude="latitude where the photo was taken", longitude="longitude")
    return descriptions


def parse_json_part(data: bytes | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def attribution_of(record: dict[str, Any]) -> Attribution:
    return Attribution.from_fields(
        creator=record.get("creator"),
        title=record.get("title"),
        page_url=record.get("page_url"),
        license=record.get("license"),
        license_url=record.get("license_url"),
    )


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def metadata_row(
    key: str,
    shard: str,
    record: dict[str, Any],
    attribution: Attribution,
    image: tuple[str, str, int, int, int],
    include_gps: bool,
) -> dict[str, Any]:
    """``image`` = (format, sha256, size, width, height)."""
    fmt, sha256, size, width, height = image
    row: dict[str, Any] = {
        "key": key,
        "shard": shard,
        "source": clean_text(record.get("source")),
        "photo_id": clean_text(record.get("photo_id")),
        **attribution.to_dict(),
        "tasl": attribution.tasl(),
        "url": clean_text(record.get("url")),
        "date_taken": clean_text(record.get("date_taken")),
        "format": fmt,
        "sha256": sha256,
        "size": size,
        "width": width,
        "height": height,
    }
    if include_gps:
        row.update({name: _float_or_none(record.get(name)) for name in GPS_COLUMNS})
    return row


JSON_FIELDS = ("key", "source", "photo_id", "creator", "title", "page_url", "license", "license_url", "tasl", "url",
               "date_taken")  # fmt: skip


def sample_json(row: dict[str, Any]) -> dict[str, Any]:
    """The ``<key>.json`` of a released sample: the attribution fields of its metadata row, the same for every
    sample (readers that infer a schema from the first samples need that); GPS only when the release keeps it."""
    return {name: row[name] for name in (*JSON_FIELDS, *(name for name in GPS_COLUMNS if name in row))}


def iter_values(array: pa.Array | pa.ChunkedArray, batch: int = 65_536) -> Iterator[Any]:
    """The array's values as Python objects, a batch at a time (never the whole column as a list)."""
    for offset in range(0, len(array), batch):
        yield from array.slice(offset, batch).to_pylist()


def shard_groups(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """``(shard, its rows)`` in shard order, rows in table order."""
    encoded = pc.dictionary_encode(table.column("shard")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(encoded.dictionary) + 1))
    names = encoded.dictionary.to_pylist()
    for code in sorted(range(len(names)), key=names.__getitem__):
        yield names[code], table.take(pa.array(order[bounds[code] : bounds[code + 1]]))


def read_metadata(folder: str | Path) -> pa.Table:
    return pq.read_table(Path(folder) / METADATA_PARQUET)

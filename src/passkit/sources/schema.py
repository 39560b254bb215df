"""The pool record: the one table schema every source reader yields and the select stage consumes.

One row per input record (malformed ones included). ``malformed`` holds why a record could not be read (null when
it was read fine); ``line`` is where it came from (physical line of a text file, record number of a parquet file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

POOL_SCHEMA = pa.schema(
    [
        # The candidates.parquet contract columns, in DESIGN order.
        ("key", pa.string()),
        ("source", pa.string()),
        ("photo_id", pa.string()),
        ("url", pa.string()),
        ("page_url", pa.string()),
        ("license", pa.string()),
        ("license_url", pa.string()),
        ("creator", pa.string()),
        ("title", pa.string()),
        ("date_taken", pa.timestamp("s")),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        # Kept for audit and later stages.
        ("creator_id", pa.string()),  # the account (Flickr nsid) the per-creator cap counts by
        ("license_raw", pa.string()),
        ("date_taken_raw", pa.string()),
        ("date_uploaded", pa.timestamp("s")),
        ("source_file", pa.string()),
        ("line", pa.int64()),
        # Internal to select.
        ("photo_hash", pa.string()),
        ("is_video", pa.bool_()),
        ("malformed", pa.string()),
    ]
)
INTERNAL_COLUMNS = ("photo_hash", "is_video", "malformed")
CANDIDATE_SCHEMA = pa.schema([field for field in POOL_SCHEMA if field.name not in INTERNAL_COLUMNS])
REJECT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),
        ("photo_id", pa.string()),
        ("license", pa.string()),
        ("creator_id", pa.string()),
        ("source_file", pa.string()),
        ("line", pa.int64()),
    ]
)
_DEFAULTS: dict[str, Any] = {"is_video": False}


def pool_table(columns: Mapping[str, Any], length: int) -> pa.Table:
    """A POOL_SCHEMA table from the columns given (arrays or python lists); absent columns are null
    (``is_video`` false)."""
    arrays = []
    for field in POOL_SCHEMA:
        value = columns.get(field.name)
        if value is None:
            default = _DEFAULTS.get(field.name)
            arrays.append(pa.nulls(length, field.type) if default is None else pa.array([default] * length, field.type))
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(value.cast(field.type))
        else:
            arrays.append(pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=POOL_SCHEMA)


def pool_rows(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """A POOL_SCHEMA table from row dicts (for small, irregular inputs: folders, malformed lines)."""
    return pool_table(
        {field.name: [row.get(field.name, _DEFAULTS.get(field.name)) for row in rows] for field in POOL_SCHEMA},
        len(rows),
    )

"""URL-list tables (csv, tsv, parquet, jsonl; optionally gzip/bzip2-compressed) as img2dataset users have them.

Columns are found by common names (``url``, ``license``, ``creator``/``author``, ``page_url``...) or mapped
explicitly, e.g. ``{"url": "image_url", "creator": "owner_name"}`` (``--col url=image_url`` on the command line);
one column may serve two fields (``page_url=url``). Keys are ``<source>-<id>`` with the ``id`` column when mapped,
else ``<source>-<first 16 hex digits of BLAKE2b(url)>``, so the same URL gets the same key in every table.

Records that cannot be read become ``malformed`` rows with their line number: wrong field count, bad JSON, invalid
UTF-8, a missing or non-http(s) URL, unparsable coordinates. csv/tsv/parquet are read column-wise with pyarrow;
jsonl line by line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from passkit.core.keys import InvalidKeyError, make_key
from passkit.sources.columns import (
    LicenseNormalizer,
    clean_text,
    fill_license_urls,
    parse_coordinate,
    to_utf8,
    web_url_mask,
)
from passkit.sources.schema import pool_rows, pool_table

FIELDS = (
    "id",
    "url",
    "page_url",
    "license",
    "license_url",
    "creator",
    "creator_id",
    "title",
    "date_taken",
    "latitude",
    "longitude",
)
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "photo_id", "image_id", "uid"),
    "url": ("url", "image_url", "download_url", "img_url", "photo_url", "URL"),
    "page_url": ("page_url", "source_url", "photo_page_url", "landing_url", "flickr_page_url"),
    "license": ("license", "licence", "license_name", "license_id", "LICENSE"),
    "license_url": ("license_url", "licence_url"),
    "creator": ("creator", "author", "artist", "owner_name", "user_nickname", "photographer", "attribution_name"),
    "creator_id": ("creator_id", "owner", "user_nsid", "author_id", "user_id"),
    "title": ("title", "name", "TITLE"),
    "date_taken": ("date_taken", "datetaken", "taken_at", "date"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
}
DEFAULT_SOURCE = "url"
_BATCH_ROWS = 8192  # rows per batch: select's memory is a few batches (same speed as 65536, measured)


class TableFormatError(ValueError):
    """A table that cannot be used at all (unknown format, no url column, unknown mapped column)."""


def table_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".parquet", "parquet"), (".jsonl", "jsonl")):
        if name.endswith(suffix):
            return kind
    if name.endswith(".ndjson"):
        return "jsonl"
    raise TableFormatError(f"{path}: unknown table format (use .csv, .tsv, .parquet or .jsonl, optionally .gz)")


def resolve_columns(available: list[str], mapping: Mapping[str, str], require_url: bool = True) -> dict[str, str]:
    """field -> column: the explicit mapping first, then the first alias present (exact, then case-insensitive)."""
    unknown_fields = sorted(set(mapping) - set(FIELDS))
    if unknown_fields:
        raise TableFormatError(f"unknown field(s) {unknown_fields} in the column mapping; fields: {', '.join(FIELDS)}")
    missing = sorted(column for column in mapping.values() if column not in available)
    if missing:
        raise TableFormatError(f"mapped column(s) {missing} not in the table (columns: {', '.join(available)})")
    lowered = {column.lower(): column for column in available}
    resolved = dict(mapping)
    for name in FIELDS:
        if name in resolved:
            continue
        for alias in ALIASES[name]:
            if alias in available or alias.lower() in lowered:
                resolved[name] = alias if alias in available else lowered[alias.lower()]
                break
    if require_url and "url" not in resolved:
        raise TableFormatError(f"no url column (columns: {', '.join(available)}); map one with --col url=NAME")
    return resolved


def url_ids(urls: pa.Array) -> pa.Array:
    """The id of a record without an id column: 16 hex digits of BLAKE2b(url)."""
    return pa.array(
        [hashlib.blake2b(url.encode("utf-8"), digest_size=8).hexdigest() for url in urls.to_pylist()], pa.string()
    )


def _date(raw: pa.Array) -> pa.Array:
    text = pc.replace_substring(pc.utf8_slice_codeunits(raw, 0, 19), "T", " ")
    with_time = pc.strptime(text, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    day = pc.strptime(pc.utf8_slice_codeunits(raw, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
    return pc.coalesce(with_time, day)


class PoolBuilder:
    """Turns mapped raw columns of one source into POOL_SCHEMA rows (shared by the table and folder readers)."""

    def __init__(self, source: str, file_name: str, local_files: bool = False) -> None:
        make_key(source, "x")  # raises InvalidKeyError for a bad source name
        self.local_files = local_files  # urls are file:// URIs (folder sources)
        self.source = source
        self.file_name = file_name
        self._licenses = LicenseNormalizer()

    def _text(self, columns: Mapping[str, pa.Array], name: str, count: int) -> tuple[pa.Array, np.ndarray]:
        raw = columns.get(name)
        if raw is None:
            return pa.repeat(pa.scalar(""), count), np.zeros(count, dtype=bool)
        if pa.types.is_binary(raw.type) or pa.types.is_large_binary(raw.type):
            text, bad = to_utf8(pc.fill_null(raw, b""))
            return clean_text(text), bad
        return clean_text(raw.cast(pa.string())), np.zeros(count, dtype=bool)

    def build(self, columns: Mapping[str, pa.Array], lines: np.ndarray) -> pa.Table:
        count = len(lines)
        text = {name: self._text(columns, name, count) for name in FIELDS if name not in ("latitude", "longitude")}
        bad_utf8 = np.zeros(count, dtype=bool)
        for _, bad in text.values():
            bad_utf8 |= bad
        url = text["url"][0]
        local = np.asarray(pc.starts_with(pc.fill_null(url, ""), "file:///").to_numpy(zero_copy_only=False), bool)
        # Folders give file:// URLs; url tables may mix web URLs and local mirrors (file://): download takes both.
        unusable_url = ~local if self.local_files else ~(local | web_url_mask(url))
        problems: list[tuple[np.ndarray, str]] = [
            (bad_utf8, "text field is not valid UTF-8"),
            (unusable_url, "url is missing or not an http(s) or file:// URL"),
        ]
        coordinates = {}
        for name, limit in (("longitude", 180.0), ("latitude", 90.0)):
            raw = columns.get(name)
            if raw is None:
                coordinates[name] = pa.nulls(count, pa.float64())
                continue
            if pa.types.is_binary(raw.type):
                raw = to_utf8(pc.fill_null(raw, b""))[0]
            coordinates[name], unparsable = parse_coordinate(raw, limit)
            problems.append((np.asarray(unparsable.to_numpy(zero_copy_only=False), bool), f"{name} is not a number"))
        ids = text["id"][0] if "id" in columns else url_ids(url)
        empty_id = np.asarray(pc.equal(ids, "").to_numpy(zero_copy_only=False), bool)
        problems.append((empty_id, "empty id"))
        malformed = np.full(count, None, dtype=object)
        for mask, detail in reversed(problems):
            malformed[mask] = detail
        keys = ids.to_pylist()
        for row, value in enumerate(keys):
            try:
                keys[row] = make_key(self.source, value)
            except InvalidKeyError:
                keys[row] = make_key(self.source, f"{self.file_name}:{lines[row]}")
        license_ids = self._licenses(text["license"][0], text["license_url"][0])
        raw_date = text["date_taken"][0]
        return pool_table(
            {
                "key": pa.array(keys, pa.string()),
                "source": pa.repeat(pa.scalar(self.source), count),
                "photo_id": pc.if_else(pa.array(empty_id), None, ids),
                "url": url,
                "page_url": text["page_url"][0],
                "license": license_ids,
                "license_url": fill_license_urls(text["license_url"][0], license_ids),
                "license_raw": text["license"][0],
                "creator": text["creator"][0],
                "creator_id": text["creator_id"][0],
                "title": text["title"][0],
                "date_taken": _date(raw_date),
                "date_taken_raw": pc.if_else(pc.equal(raw_date, ""), None, raw_date),
                "latitude": coordinates["latitude"],
                "longitude": coordinates["longitude"],
                "malformed": pa.array(malformed, pa.string()),
                "source_file": pa.repeat(pa.scalar(self.file_name), count),
                "line": pa.array(lines, pa.int64()),
            },
            count,
        )

    def malformed(self, line: int, detail: str) -> dict[str, Any]:
        return {
            "key": make_key(self.source, f"{self.file_name}:{line}"),
            "source": self.source,
            "malformed": detail,
            "source_file": self.file_name,
            "line": line,
        }


class TableReader:
    """Yields POOL_SCHEMA tables of one url-list table. ``line`` is the physical line (csv/tsv/jsonl, header =
    line 1 for csv/tsv) or the 1-based record number (parquet)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Mapping[str, str] | None = None,
        source: str = DEFAULT_SOURCE,
        batch_rows: int = _BATCH_ROWS,
    ) -> None:
        self.path = Path(path)
        self.format = table_format(self.path)
        self.mapping = dict(columns or {})
        self.batch_rows = batch_rows
        self.builder = PoolBuilder(source, self.path.name)
        self.problem = ""
        self.rows = 0
        self.columns = resolve_columns(self._column_names(), self.mapping) if self.format != "jsonl" else {}

    def _column_names(self) -> list[str]:
        if self.format == "parquet":
            return pq.ParquetFile(self.path).schema_arrow.names
        with pa.input_stream(self.path, compression="detect") as stream:
            first = io.TextIOWrapper(io.BytesIO(stream.read(1 << 20)), "utf-8-sig", errors="replace").readline()
        delimiter = "\t" if self.format == "tsv" else ","
        return next(csv.reader([first], delimiter=delimiter), [])

    def __iter__(self) -> Iterator[pa.Table]:
        reader = {"parquet": self._parquet, "jsonl": self._jsonl}.get(self.format, self._delimited)
        for table in reader():
            self.rows += table.num_rows
            yield table

    def _mapped(self, table: pa.Table) -> dict[str, pa.Array]:
        return {name: table.column(column).combine_chunks() for name, column in self.columns.items()}

    def _parquet(self) -> Iterator[pa.Table]:
        used = sorted(set(self.columns.values()))
        offset = 0
        source = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)  # pages streamed, not row groups
        for batch in source.iter_batches(batch_size=self.batch_rows, columns=used):
            table = pa.Table.from_batches([batch])
            lines = np.arange(offset + 1, offset + 1 + table.num_rows)
            offset += table.num_rows
            yield self.builder.build(self._mapped(table), lines)

    def _delimited(self) -> Iterator[pa.Table]:
        names = self._column_names()
        invalid: list[tuple[int, str]] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            invalid.append(
                (int(row.number or 0), f"expected {row.expected_columns} fields, found {row.actual_columns}")
            )
            return "skip"

        tsv = self.format == "tsv"
        reader = pacsv.open_csv(
            pa.input_stream(self.path, compression="detect"),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter="\t" if tsv else ",",
                quote_char=False if tsv else '"',
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                include_columns=sorted(set(self.columns.values())),
                strings_can_be_null=False,
            ),
        )
        good_rows = 0
        reported = 0
        try:
            for batch in reader:
                table = pa.Table.from_batches([batch])
                invalid_lines = np.array(sorted(line for line, _ in invalid), dtype=np.int64)
                ordinals = np.arange(good_rows, good_rows + table.num_rows)
                good_rows += table.num_rows
                # k-th good record (k from 0) sits on line 2 + k + (invalid lines before it).
                shifted = invalid_lines - 2 - np.arange(len(invalid_lines))
                lines = ordinals + 2 + np.searchsorted(shifted, ordinals, side="right")
                pending = sorted(invalid)[reported:]
                reported += len(pending)
                yield self._with_malformed(self.builder.build(self._mapped(table), lines), pending)
        except (pa.ArrowInvalid, OSError, EOFError) as error:
            self.problem = f"{self.path.name}: stopped reading after {good_rows + reported:,} records ({error})"
        pending = sorted(invalid)[reported:]
        if pending:
            yield self._with_malformed(None, pending)

    def _with_malformed(self, table: pa.Table | None, bad: list[tuple[int, str]]) -> pa.Table:
        rows = pool_rows([self.builder.malformed(line, detail) for line, detail in bad])
        if table is None:
            return rows
        return pa.concat_tables([table, rows]).sort_by("line") if rows.num_rows else table

    def _jsonl(self) -> Iterator[pa.Table]:
        records: list[dict[str, Any]] = []
        lines: list[int] = []
        bad: list[tuple[int, str]] = []
        names: set[str] = set()
        stream = pa.input_stream(self.path, compression="detect")
        number = 0
        try:
            for number, raw in enumerate(io.BufferedReader(stream, 1 << 20), start=1):  # type: ignore[arg-type]
                try:
                    record = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    bad.append((number, f"not a JSON object ({error})"))
                    continue
                if not isinstance(record, dict):
                    bad.append((number, "not a JSON object"))
                    continue
                records.append(record)
                names.update(record)
                lines.append(number)
                if len(records) >= self.batch_rows:
                    yield self._json_batch(records, lines, bad, names)
                    records, lines, bad = [], [], []
        except (pa.ArrowInvalid, OSError, EOFError) as error:
            self.problem = f"{self.path.name}: stopped reading after line {number:,} ({error})"
        finally:
            stream.close()
        if records or bad:
            yield self._json_batch(records, lines, bad, names)

    def _json_batch(
        self, records: list[dict[str, Any]], lines: list[int], bad: list[tuple[int, str]], names: set[str]
    ) -> pa.Table:
        if not records:
            return self._with_malformed(None, bad)
        if not self.columns:
            self.columns = resolve_columns(sorted(names), self.mapping)
        columns = {}
        for field_name, column in self.columns.items():
            values = [record.get(column) for record in records]
            if field_name in ("latitude", "longitude"):
                values = [None if value is None else str(value) for value in values]
            else:
                values = [value if value is None or isinstance(value, str) else json.dumps(value) for value in values]
            columns[field_name] = pa.array(values, pa.string())
        return self._with_malformed(self.builder.build(columns, np.array(lines, dtype=np.int64)), bad)

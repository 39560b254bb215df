"""YFCC100M metadata reader: both published layouts, plain / bzip2 / gzip, streamed in columnar chunks.

Layouts (recognised from the data, by the number of tab-separated fields):

* ``original`` — the 2014 release, ``yfcc100m_dataset-{0..9}``, 23 fields: photo id, user nsid, user nickname,
  date taken, date uploaded, capture device, title, description, user tags, machine tags, longitude, latitude,
  accuracy, page url, download url, license name, license url, server id, farm id, secret, secret original,
  extension, marker.
* ``single-file`` — the later ``yfcc100m_dataset``, 25 fields: line number, photo id, photo hash, then the same 22
  from user nsid on. The photo hash is the MD5 of the download URL, each byte printed with ``%x`` (no zero
  padding, so 30-32 hex digits); :mod:`passkit.stages.select` verifies it.

Text fields are ``+``/``%XX`` encoded and are decoded here. ``date taken`` may be ``null`` or bogus (year 4501):
such values become null, the raw value is kept in ``date_taken_raw``. Longitude comes before latitude; empty
coordinates are null, out-of-range ones are nulled. Marker 1 is a video.

Each chunk of decompressed text is split into lines with numpy; lines with the wrong field count, NUL bytes,
carriage returns or invalid UTF-8 become ``malformed`` rows with their line number; the good lines are parsed by
pyarrow's CSV reader (multi-threaded C++) and checked column by column. No per-row Python loop on the good path.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from passkit.core.keys import make_key
from passkit.sources.columns import (
    LicenseNormalizer,
    clean_text,
    fill_license_urls,
    parse_coordinate,
    percent_decode,
    to_utf8,
)
from passkit.sources.schema import pool_rows, pool_table
from passkit.sources.streams import DecompressedStream, Decompressor, prefetch_chunks

SOURCE = "yfcc"
_SHARED = (
    "user_nsid",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "user_tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "download_url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension",
    "marker",
)
_USED = (
    "photo_id",
    "photo_hash",
    "user_nsid",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "title",
    "longitude",
    "latitude",
    "page_url",
    "download_url",
    "license_name",
    "license_url",
    "marker",
)
_FIRST_PHOTOGRAPH_YEAR = 1826
_DEFAULT_CHUNK = 16 << 20


@dataclass(frozen=True)
class YfccLayout:
    name: str
    columns: tuple[str, ...]

    @property
    def id_index(self) -> int:
        return self.columns.index("photo_id")


ORIGINAL = YfccLayout("original", ("photo_id", *_SHARED))
SINGLE_FILE = YfccLayout("single-file", ("line_number", "photo_id", "photo_hash", *_SHARED))
LAYOUTS = {len(layout.columns): layout for layout in (ORIGINAL, SINGLE_FILE)}


class YfccFormatError(ValueError):
    """The file is not YFCC100M metadata in a known layout."""


def detect_layout(sample: bytes, name: str = "input") -> YfccLayout:
    """The layout of the first lines of a file: the most common field count among lines whose photo id field
    is a number."""
    votes: dict[int, int] = {}
    for line in sample.split(b"\n")[:200]:
        fields = line.rstrip(b"\r").split(b"\t")
        layout = LAYOUTS.get(len(fields))
        if layout is not None and fields[layout.id_index].isdigit():
            votes[len(fields)] = votes.get(len(fields), 0) + 1
    if not votes:
        counts = sorted({len(line.split(b"\t")) for line in sample.split(b"\n")[:5] if line})
        raise YfccFormatError(
            f"{name}: not YFCC100M metadata (expected 23 or 25 tab-separated fields with a numeric photo id, "
            f"found lines with {counts or [0]} fields)"
        )
    return LAYOUTS[max(votes, key=lambda count: (votes[count], count))]


def is_yfcc(path: Path) -> bool:
    """Whether ``path`` looks like YFCC100M metadata (reads the start of the decompressed file)."""
    try:
        with DecompressedStream(path, decompressor="python") as stream:
            detect_layout(stream.read(256 << 10), path.name)
    except (YfccFormatError, OSError):
        return False
    return True


def _fallback_key(file_name: str, line: int) -> str:
    return make_key(SOURCE, f"{file_name}:{line}")


class YfccReader:
    """Yields POOL_SCHEMA tables of one YFCC100M file, one per decompressed chunk (~``chunk_bytes`` of text).

    After iteration: ``rows`` read, ``layout``, ``problem`` (non-empty if the compressed stream was damaged or
    truncated) and ``decompressor`` used.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_bytes: int = _DEFAULT_CHUNK,
        decompressor: Decompressor = "auto",
        workers: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self.chunk_bytes = chunk_bytes
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self.decompressor_choice = decompressor
        self.decompressor = ""
        self.layout: YfccLayout | None = None
        self.problem = ""
        self.rows = 0
        self._cut_lines = 0
        self.bytes_read = 0
        self._licenses = LicenseNormalizer()

    def __iter__(self) -> Iterator[pa.Table]:
        with DecompressedStream(self.path, self.decompressor_choice) as stream:
            self.decompressor = stream.decompressor
            # Chunks are parsed by a few threads (pyarrow and numpy release the GIL) and yielded in order.
            with ThreadPoolExecutor(self.workers, thread_name_prefix="yfcc-parse") as pool:
                pending: deque[Future[pa.Table]] = deque()
                for piece in self._pieces(stream):
                    pending.append(pool.submit(self._chunk, *piece))
                    while len(pending) > self.workers:
                        yield self._counted(pending.popleft().result())
                while pending:
                    yield self._counted(pending.popleft().result())
            if stream.problem:
                complete = self.rows - self._cut_lines
                self.problem = f"{stream.problem}; {complete:,} rows read before it"

    def _counted(self, table: pa.Table) -> pa.Table:
        self.rows += table.num_rows
        return table

    def _pieces(self, stream: DecompressedStream) -> Iterator[tuple[bytes, int, int, bool, bool]]:
        """(buffer, end of its last complete line, lines before it, unterminated last line, cut by damage)."""
        carry = b""
        lines_before = 0
        for data in prefetch_chunks(stream, self.chunk_bytes):
            self.bytes_read += len(data)
            buffer = carry + data if carry else data
            cut = buffer.rfind(b"\n") + 1
            carry = buffer[cut:]
            if cut == 0:
                continue
            if self.layout is None:
                self.layout = detect_layout(buffer[:cut], self.path.name)
            yield buffer, cut, lines_before, False, False
            lines_before += buffer.count(b"\n", 0, cut)
        if carry:
            if self.layout is None:
                self.layout = detect_layout(carry, self.path.name)
            self._cut_lines = 1 if stream.problem else 0
            yield carry + b"\n", len(carry) + 1, lines_before, True, bool(stream.problem)

    def _chunk(
        self, buffer: bytes, cut: int, lines_before: int, last_unterminated: bool = False, cut_by_damage: bool = False
    ) -> pa.Table:
        """Pool rows of the complete lines ``buffer[:cut]``."""
        assert self.layout is not None
        expected_tabs = len(self.layout.columns) - 1
        data = np.frombuffer(buffer, dtype=np.uint8, count=cut)
        newlines = np.flatnonzero(data == 10)
        count = len(newlines)
        starts = np.concatenate(([0], newlines[:-1] + 1))
        tab_counts = np.bincount(np.searchsorted(newlines, np.flatnonzero(data == 9)), minlength=count)
        problems: dict[int, str] = {}
        for row in np.flatnonzero(tab_counts != expected_tabs).tolist():
            problems[row] = f"expected {expected_tabs + 1} tab-separated fields, found {tab_counts[row] + 1}"
        for byte, what in ((0, "NUL byte"), (13, "carriage return")):
            for row in np.unique(np.searchsorted(newlines, np.flatnonzero(data == byte))).tolist():
                problems.setdefault(row, f"{what} in the line")
        for row in np.unique(np.searchsorted(newlines, np.flatnonzero(data >= 0x80))).tolist():
            if row not in problems:
                try:
                    buffer[starts[row] : newlines[row]].decode("utf-8")
                except UnicodeDecodeError as error:
                    problems[row] = f"not valid UTF-8 ({error.reason} at byte {error.start})"
        if last_unterminated and count and (count - 1) in problems:
            problems[count - 1] += " (last line has no newline: file truncated?)"
        good = np.ones(count, dtype=bool)
        bad_rows = np.fromiter(problems, dtype=np.int64, count=len(problems))
        good[bad_rows] = False
        first_line = lines_before + 1
        tables = []
        if good.any():
            if len(problems):
                spans = np.diff(np.concatenate(([0], newlines + 1)))
                text = pa.py_buffer(data[np.repeat(good, spans)].tobytes())
            else:
                text = pa.py_buffer(buffer)[:cut]
            lines = first_line + np.flatnonzero(good)
            tables.append(self._parse(text, lines))
        if len(problems):
            tables.append(self._malformed_rows(buffer, starts, newlines, problems, first_line))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).sort_by("line")
        if cut_by_damage:
            detail = pa.array(["last line cut off by the damaged compressed stream"] * table.num_rows, pa.string())
            table = table.set_column(table.schema.get_field_index("malformed"), "malformed", detail)
        return table

    def _malformed_rows(
        self, buffer: bytes, starts: np.ndarray, ends: np.ndarray, problems: dict[int, str], first_line: int
    ) -> pa.Table:
        assert self.layout is not None
        rows = []
        for row, detail in sorted(problems.items()):
            line = first_line + row
            fields = buffer[starts[row] : ends[row]].split(b"\t")
            photo_id = fields[self.layout.id_index] if len(fields) > self.layout.id_index else b""
            valid_id = photo_id.isdigit() and photo_id.isascii() and len(photo_id) <= 20
            rows.append(
                {
                    "key": f"{SOURCE}-{photo_id.decode()}" if valid_id else _fallback_key(self.path.name, line),
                    "source": SOURCE,
                    "photo_id": photo_id.decode() if valid_id else None,
                    "malformed": detail,
                    "source_file": self.path.name,
                    "line": line,
                }
            )
        return pool_rows(rows)

    def _parse(self, text: pa.Buffer, lines: np.ndarray) -> pa.Table:
        """Parse well-formed lines (right field count, valid UTF-8) and check their fields column-wise."""
        assert self.layout is not None
        include = [name for name in _USED if name in self.layout.columns]
        fields = pacsv.read_csv(
            pa.BufferReader(text),
            read_options=pacsv.ReadOptions(
                column_names=list(self.layout.columns), block_size=4 << 20, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, double_quote=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(include, pa.string()), include_columns=include, strings_can_be_null=False
            ),
        ).combine_chunks()
        if fields.num_rows != len(lines):
            raise AssertionError(f"{self.path.name}: parsed {fields.num_rows} rows from {len(lines)} lines")
        column = {
            name: fields.column(name).chunk(0) if fields.num_rows else pa.array([], pa.string()) for name in include
        }
        count = fields.num_rows
        file_name = self.path.name
        problems: list[tuple[pa.Array, str]] = []  # (bad mask, detail), earliest wins

        photo_id = column["photo_id"]
        id_ok = pc.match_substring_regex(photo_id, r"^[0-9]{1,20}$")
        problems.append((pc.invert(id_ok), "photo id is not a number"))
        marker = column["marker"]
        problems.append((pc.invert(pc.is_in(marker, pa.array(["0", "1"]))), "marker is not 0 or 1"))
        longitude, lon_bad = parse_coordinate(column["longitude"], 180.0)
        latitude, lat_bad = parse_coordinate(column["latitude"], 90.0)
        problems += [(lon_bad, "longitude is not a number"), (lat_bad, "latitude is not a number")]
        uploaded_raw = column["date_uploaded"]
        uploaded_ok = pc.match_substring_regex(uploaded_raw, r"^[0-9]{1,12}$")
        problems.append((pc.invert(pc.or_(uploaded_ok, pc.equal(uploaded_raw, ""))), "date uploaded is not a number"))
        date_uploaded = pc.cast(pc.if_else(uploaded_ok, uploaded_raw, None), pa.int64()).cast(pa.timestamp("s"))
        taken_raw = pc.replace_substring(column["date_taken"], "+", " ")
        date_taken = _date_taken(taken_raw, date_uploaded)
        photo_hash = None
        if "photo_hash" in column:
            photo_hash = column["photo_hash"]
            problems.append(
                (pc.invert(pc.match_substring_regex(photo_hash, r"^[0-9a-f]{16,32}$")), "photo hash is not hex MD5")
            )

        creator_id, bad_nsid = to_utf8(percent_decode(column["user_nsid"]))
        creator, bad_creator = to_utf8(percent_decode(column["user_nickname"]))
        title, bad_title = to_utf8(percent_decode(column["title"]))
        bad_text = pa.array(bad_nsid | bad_creator | bad_title)
        problems.append((bad_text, "text field is not valid UTF-8 after %-decoding"))
        license_raw = pc.utf8_trim_whitespace(to_utf8(percent_decode(column["license_name"]))[0])
        license_ids = self._licenses(column["license_name"], column["license_url"])

        malformed = pa.nulls(count, pa.string())
        for mask, detail in reversed(problems):
            malformed = pc.if_else(mask, pa.scalar(detail), malformed)
        keys = pc.binary_join_element_wise(pa.scalar(SOURCE + "-"), photo_id, "")
        if not pc.all(id_ok).as_py():
            bad = np.flatnonzero(~id_ok.to_numpy(zero_copy_only=False))
            values = keys.to_pylist()
            for row in bad.tolist():
                values[row] = _fallback_key(file_name, int(lines[row]))
            keys = pa.array(values, pa.string())
        return pool_table(
            {
                "key": keys,
                "source": pa.repeat(pa.scalar(SOURCE), count),
                "photo_id": pc.if_else(id_ok, photo_id, None),
                "url": column["download_url"],
                "page_url": column["page_url"],
                "license": license_ids,
                "license_url": fill_license_urls(column["license_url"], license_ids),
                "license_raw": license_raw,
                "creator": clean_text(creator),
                "creator_id": clean_text(creator_id),
                "title": clean_text(title),
                "date_taken": date_taken,
                "date_taken_raw": taken_raw,
                "date_uploaded": date_uploaded,
                "latitude": latitude,
                "longitude": longitude,
                "photo_hash": photo_hash,
                "is_video": pc.equal(marker, "1"),
                "malformed": malformed,
                "source_file": pa.repeat(pa.scalar(file_name), count),
                "line": pa.array(lines, pa.int64()),
            },
            count,
        )


def _date_taken(raw: pa.Array, uploaded: pa.Array) -> pa.Array:
    """Timestamp of ``YYYY-MM-DD HH:MM:SS[.f]``; null when ``null``/unparsable, before the first photograph
    (1826), or later than a day after the upload."""
    head = pc.utf8_slice_codeunits(raw, 0, 19)
    parsed = pc.strptime(head, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    year = pc.year(parsed)
    latest = pc.fill_null(
        pc.add(uploaded, pa.scalar(86400, pa.duration("s"))), pa.scalar(4102444800, pa.timestamp("s"))
    )
    plausible = pc.and_(pc.greater_equal(year, _FIRST_PHOTOGRAPH_YEAR), pc.less_equal(parsed, latest))
    return pc.if_else(plausible, parsed, None)

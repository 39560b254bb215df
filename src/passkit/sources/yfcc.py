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

Each chunk of decompressed text is read by the compiled scanner (``_yfcc_scan.c``, see docs/select-scanner.md)
when it was built: one pass splits and checks the lines, fills the columns every record gets and copies the raw
fields of the records read in full into Arrow buffers. Otherwise (or with ``PASSKIT_YFCC_SCANNER=python``) it is
split into lines with numpy and parsed by pyarrow's CSV reader, then checked column by column. Either way, lines
with the wrong field count, NUL bytes, carriage returns or invalid UTF-8 become ``malformed`` rows with their line
number, and both paths give the same tables. No per-row Python loop on the good path.
"""

from __future__ import annotations

import os
import threading
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
from passkit.core.licenses import ALL_IDS, LicensePolicy
from passkit.sources.columns import (
    LicenseNormalizer,
    clean_text,
    coordinate_unparsable,
    decodes_to_bad_utf8,
    fill_license_urls,
    lower_hex_mask,
    parse_coordinate,
    percent_decode,
    spread,
    to_utf8,
)
from passkit.sources.compiled import Scanner, load_scanner
from passkit.sources.schema import pool_rows, pool_table
from passkit.sources.streams import DecompressedStream, Decompressor, PieceBuffers, prefetch_lines

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
_PROBLEM_ID = "photo id is not a number"
_PROBLEM_MARKER = "marker is not 0 or 1"
_PROBLEM_LONGITUDE = "longitude is not a number"
_PROBLEM_LATITUDE = "latitude is not a number"
_PROBLEM_UPLOADED = "date uploaded is not a number"
_PROBLEM_HASH = "photo hash is not hex MD5"
_PROBLEM_TEXT = "text field is not valid UTF-8 after %-decoding"
# The record problems in the order they are checked (the earliest wins); the scanner's codes 1-7.
_RECORD_PROBLEMS = (
    _PROBLEM_ID,
    _PROBLEM_MARKER,
    _PROBLEM_LONGITUDE,
    _PROBLEM_LATITUDE,
    _PROBLEM_UPLOADED,
    _PROBLEM_HASH,
    _PROBLEM_TEXT,
)
_FIRST_PHOTOGRAPH_YEAR = 1826
_DEFAULT_CHUNK = 16 << 20
_CSV_BLOCK = 2 << 20  # pyarrow's CSV block: 1-2 MiB parse fastest (cache-sized); longer lines get a larger one


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


# The compiled scanner takes its field tuple in this same order (see _yfcc_scan.c).
_SCANNER_FIELDS = _USED
_SCANNER_LIMIT = 1 << 30  # pieces longer than this (a giant line) take the pyarrow path


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

    Iterating yields every record in full; :meth:`records` with a license policy reads in full only the records
    the policy could admit (see there). After iteration: ``rows`` read, ``layout``, ``problem`` (non-empty if the
    compressed stream was damaged or truncated) and ``decompressor`` used.

    ``scanner`` picks how pieces of text are parsed (see :func:`load_scanner`): the compiled one-pass scanner
    (``c``) or pyarrow's CSV reader with vectorised checks (``python``); both give the same tables.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_bytes: int = _DEFAULT_CHUNK,
        decompressor: Decompressor = "auto",
        workers: int | None = None,
        scanner: Scanner | None = None,
        stream: DecompressedStream | None = None,
    ) -> None:
        self.path = Path(path)
        # A stream of this file already started (e.g. by the sniff of open_source): the first pass reads it.
        self._stream = stream
        self._scanner = load_scanner(scanner)
        self.scanner = "c" if self._scanner is not None else "python"
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self.chunk_bytes = chunk_bytes
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self.decompressor_choice = decompressor
        self.decompressor = ""
        self.layout: YfccLayout | None = None
        self.problem = ""
        self.rows = 0
        self.bytes_read = 0
        self._licenses = LicenseNormalizer()
        self._force_line_checks = False  # tests: check every chunk line by line (the path for damaged chunks)
        # The scanner's license pairs seen so far per policy: ((name, url, read in full), ...), their license ids.
        self._known_pairs: dict[tuple[str, ...] | None, tuple[tuple[tuple[bytes, bytes, int], ...], list[str]]] = {}
        self._pairs_lock = threading.Lock()

    def __iter__(self) -> Iterator[pa.Table]:
        return self.records()

    def close(self) -> None:
        """Stop a stream started for this reader that was never read (its decompressor process ends)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def records(self, policy: LicensePolicy | None = None) -> Iterator[pa.Table]:
        """The file's records in order. With a ``policy``, records that select rejects whatever their other
        fields — malformed ones, videos, and those whose license the policy does not admit — are read light:
        only the columns a reject row needs (``key, source, photo_id, license, creator_id, source_file, line,
        is_video, malformed``) are filled, the others are null. Most of a pool is such records, so the
        %-decoding, text cleaning and date parsing run only on the rest."""
        admitted = None if policy is None else pa.array([i for i in ALL_IDS if policy.allows(i)], pa.string())
        stream, self._stream = self._stream, None
        if stream is None:
            stream = DecompressedStream(self.path, self.decompressor_choice)
        with stream:
            self.decompressor = stream.decompressor
            # Chunks are parsed by a few threads (pyarrow and numpy release the GIL) and yielded in order;
            # line numbers are known once the chunks before are parsed, so they are added here.
            # A parsed piece's buffer is refilled with later text: the tables copy what they keep.
            lines_before = cut_lines = 0
            buffers = PieceBuffers()
            with ThreadPoolExecutor(self.workers, thread_name_prefix="yfcc-parse") as pool:
                pending: deque[tuple[Future[tuple[pa.Table, int]], memoryview]] = deque()
                for piece, terminated in prefetch_lines(stream, self.chunk_bytes, buffers=buffers):
                    self.bytes_read += len(piece)
                    if self.layout is None:
                        self.layout = detect_layout(_layout_sample(piece), self.path.name)
                    cut_by_damage = not terminated and bool(stream.problem)
                    cut_lines += cut_by_damage
                    pending.append((pool.submit(self._chunk, piece, terminated, cut_by_damage, admitted), piece))
                    while len(pending) > self.workers:
                        table, lines_before = self._placed(*self._parsed(pending.popleft(), buffers), lines_before)
                        yield table
                while pending:
                    table, lines_before = self._placed(*self._parsed(pending.popleft(), buffers), lines_before)
                    yield table
            if stream.problem:
                complete = self.rows - cut_lines
                self.problem = f"{stream.problem}; {complete:,} rows read before it"

    @staticmethod
    def _parsed(job: tuple[Future[tuple[pa.Table, int]], memoryview], buffers: PieceBuffers) -> tuple[pa.Table, int]:
        future, piece = job
        result = future.result()
        buffers.give(piece)
        return result

    def _placed(self, table: pa.Table, lines: int, lines_before: int) -> tuple[pa.Table, int]:
        """The chunk's table with file line numbers (and the keys that derive from them); lines after it."""
        self.rows += table.num_rows
        line = pc.add(table.column("line"), lines_before)
        table = table.set_column(table.schema.get_field_index("line"), "line", line)
        keys = table.column("key")
        if keys.null_count:  # records without a usable photo id: keyed by file and line
            values = keys.to_pylist()
            lines_list = line.to_pylist()
            for row in np.flatnonzero(pc.is_null(keys).to_numpy(zero_copy_only=False)).tolist():
                values[row] = _fallback_key(self.path.name, lines_list[row])
            table = table.set_column(table.schema.get_field_index("key"), "key", pa.array(values, pa.string()))
        return table, lines_before + lines

    def _chunk(
        self, piece: memoryview, terminated: bool, cut_by_damage: bool, admitted: pa.Array | None
    ) -> tuple[pa.Table, int]:
        """Records of the lines in ``piece`` (line numbers counted from 1 in the piece), and its line count."""
        if self._scanner is not None and len(piece) <= _SCANNER_LIMIT:
            table = self._scanned_chunk(piece, terminated, admitted)
        elif terminated and not self._force_line_checks and _plain_lines(piece):
            return self._clean_chunk(piece, admitted)
        else:
            table = self._checked_chunk(piece, not terminated, admitted)
        if cut_by_damage:
            detail = pa.array(["last line cut off by the damaged compressed stream"] * table.num_rows, pa.string())
            table = table.set_column(table.schema.get_field_index("malformed"), "malformed", detail)
        return table, table.num_rows

    def _scanned_chunk(self, piece: memoryview, terminated: bool, admitted: pa.Array | None) -> pa.Table:
        """Records of a piece by the compiled scanner: one pass splits and checks the lines and fills the light
        columns; the raw fields of the records read in full are gathered into Arrow buffers and decoded here.
        Lines it leaves to the reference path (odd coordinates or creator ids) are parsed by pyarrow."""
        assert self.layout is not None and self._scanner is not None
        columns = self.layout.columns
        indices = tuple(columns.index(name) if name in columns else -1 for name in _SCANNER_FIELDS)
        heavy_names = [name for name in _FULL_ONLY if name in columns]
        heavy_indices = tuple(columns.index(name) for name in heavy_names)
        policy_key = None if admitted is None else tuple(admitted.to_pylist())
        with self._pairs_lock:
            known, known_ids = self._known_pairs.get(policy_key, ((), []))
        scan = self._scanner.scan(piece, len(columns), indices, terminated, known, admitted is None, heavy_indices)
        light = scan.light()
        count = light["records"]
        new_pairs = light["pairs"]  # license (name, url) pairs not in ``known``: they follow its indices
        new_ids = [self._licenses.pair(name, url) for name, url in new_pairs]
        pair_ids = [*known_ids, *new_ids]
        allowed = set() if policy_key is None else set(policy_key)
        if new_pairs:
            self._learn_pairs(policy_key, known, new_pairs, new_ids, allowed)
        if light["full"] is not None:  # gathered in the scan
            rows_buffer, raw = light["full"]
        else:  # some records carry a pair seen for the first time: gathered now that it is decided
            rows_buffer, raw = scan.gather(
                bytes(license_id in allowed for license_id in pair_ids),
                heavy_indices,
                admitted is None,
                light["malformed"],
                light["pair"],
                light["video"],
                light["readable"],
            )
        readable = np.frombuffer(light["readable"], np.bool_)
        has_id = np.frombuffer(light["has_id"], np.bool_)
        pair_bitmap = None if readable.all() else pa.py_buffer(np.packbits(readable, bitorder="little"))
        pair_codes = pa.Array.from_buffers(pa.int32(), count, [pair_bitmap, pa.py_buffer(light["pair"])])
        license_ids = pa.array(pair_ids, pa.string()).take(pair_codes)
        details = pa.array([None, *_RECORD_PROBLEMS, *light["details"]], pa.string())
        table_columns: dict[str, pa.Array | None] = {
            "key": _strings(count, light["key_offsets"], light["key_data"], has_id),
            "source": pa.repeat(pa.scalar(SOURCE), count),
            "photo_id": _strings(count, light["id_offsets"], light["id_data"], has_id),
            "license": license_ids,
            "creator_id": _strings(count, light["creator_offsets"], light["creator_data"], readable),
            "is_video": pa.array(np.frombuffer(light["video"], np.bool_)),
            "malformed": details.take(pa.array(np.frombuffer(light["malformed"], np.int32))),
            "source_file": pa.repeat(pa.scalar(self.path.name), count),
            "line": pa.array(np.frombuffer(light["line"], np.int64)),
        }
        full = np.frombuffer(rows_buffer, np.int64)
        if len(full):
            subset = {
                name: _strings(len(full), offsets, data) for name, (offsets, data) in zip(heavy_names, raw, strict=True)
            }
            heavy = _heavy_columns(subset, license_ids.take(pa.array(full)))
            if len(full) < count:
                heavy = {name: None if value is None else spread(value, full, count) for name, value in heavy.items()}
            table_columns |= heavy
        table = pool_table(table_columns, count)
        slow = np.frombuffer(light["slow"], np.int64).reshape(-1, 3)
        if len(slow):
            data = bytes(piece)
            text = b"".join(data[start:end] + b"\n" for start, end, _ in slow.tolist())
            fields, wrong = self._read_fields(pa.py_buffer(text))
            if wrong or len(fields["photo_id"]) != len(slow):
                raise AssertionError(f"{self.path.name}: parsed {len(fields['photo_id'])} rows from {len(slow)} lines")
            table = pa.concat_tables([table, self._parse(fields, slow[:, 2], admitted)]).sort_by("line")
        return table

    def _learn_pairs(
        self,
        policy_key: tuple[str, ...] | None,
        known: tuple[tuple[bytes, bytes, int], ...],
        new_pairs: list[tuple[str, str]],
        new_ids: list[str],
        allowed: set[str],
    ) -> None:
        """Remember license pairs seen for the first time with their verdict under the policy, so that later
        pieces gather their full records in the scan itself. (Two threads may learn the same pairs: the first
        one to extend the list the scan started from wins; the other's are learnt again later.)"""
        with self._pairs_lock:
            current, current_ids = self._known_pairs.get(policy_key, ((), []))
            if current is not known:
                return
            learnt = tuple(
                (name.encode(), url.encode(), int(license_id in allowed))
                for (name, url), license_id in zip(new_pairs, new_ids, strict=True)
            )
            self._known_pairs[policy_key] = (current + learnt, [*current_ids, *new_ids])

    def _clean_chunk(self, piece: memoryview, admitted: pa.Array | None) -> tuple[pa.Table, int]:
        """Lines known to be UTF-8 without NUL or CR: the CSV parser finds those with the wrong number of fields
        (rare) and hands them over with their line number."""
        assert self.layout is not None
        columns, wrong = self._read_fields(pa.py_buffer(piece))
        if pc.any(pc.equal(columns["photo_id"], "")).as_py():
            # The parser reads an empty line as a row of empty fields; such (rare) chunks are checked line by line.
            table = self._checked_chunk(piece, False, admitted)
            return table, table.num_rows
        count = len(columns["photo_id"]) + len(wrong)
        if not wrong:
            return self._parse(columns, np.arange(1, count + 1), admitted), count
        good = np.ones(count + 1, dtype=bool)
        good[0] = False
        good[[number for number, *_ in wrong]] = False
        table = self._parse(columns, np.flatnonzero(good), admitted)
        expected = len(self.layout.columns)
        detail = "expected {} tab-separated fields, found {}"
        malformed = self._malformed_rows([(line, text, detail.format(expected, found)) for line, found, text in wrong])
        return pa.concat_tables([table, malformed]).sort_by("line"), count

    def _checked_chunk(self, piece: memoryview, last_unterminated: bool, admitted: pa.Array | None) -> pa.Table:
        """Records of any lines, checked one by one with numpy: field count, NUL, CR, UTF-8, empty lines."""
        assert self.layout is not None
        buffer = bytes(piece)
        expected_tabs = len(self.layout.columns) - 1
        data = np.frombuffer(buffer, dtype=np.uint8)
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
        good[np.fromiter(problems, dtype=np.int64, count=len(problems))] = False
        tables = []
        if good.any():
            if problems:
                spans = np.diff(np.concatenate(([0], newlines + 1)))
                text = pa.py_buffer(data[np.repeat(good, spans)].tobytes())
            else:
                text = pa.py_buffer(buffer)
            columns, wrong = self._read_fields(text)
            parsed = len(columns["photo_id"])
            if wrong or parsed != good.sum():
                raise AssertionError(f"{self.path.name}: parsed {parsed} rows from {good.sum()} lines")
            tables.append(self._parse(columns, 1 + np.flatnonzero(good), admitted))
        if problems:
            tables.append(
                self._malformed_rows(
                    [(row + 1, buffer[starts[row] : newlines[row]], detail) for row, detail in sorted(problems.items())]
                )
            )
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables).sort_by("line")

    def _malformed_rows(self, rows: list[tuple[int, bytes | str, str]]) -> pa.Table:
        """Records of unreadable lines: (line in the chunk, its text, why). Keyed by the photo id field if that
        is a number, else left without key (the file and line name it, see :meth:`_placed`)."""
        assert self.layout is not None
        records = []
        for line, text, detail in rows:
            raw = text.encode("utf-8") if isinstance(text, str) else text
            fields = raw.split(b"\t")
            photo_id = fields[self.layout.id_index] if len(fields) > self.layout.id_index else b""
            valid_id = photo_id.isdigit() and photo_id.isascii() and len(photo_id) <= 20
            records.append(
                {
                    "key": f"{SOURCE}-{photo_id.decode()}" if valid_id else None,
                    "source": SOURCE,
                    "photo_id": photo_id.decode() if valid_id else None,
                    "malformed": detail,
                    "source_file": self.path.name,
                    "line": line,
                }
            )
        return pool_rows(records)

    def _read_fields(self, text: pa.Buffer) -> tuple[dict[str, pa.Array], list[tuple[int, int, str]]]:
        """The used columns of UTF-8 lines (as strings), and the lines with the wrong number of fields, which
        are skipped: (line number in ``text``, fields found, line)."""
        assert self.layout is not None
        include = [name for name in _USED if name in self.layout.columns]
        wrong: list[tuple[int, int, str]] = []

        def skip(row: pacsv.InvalidRow) -> str:
            wrong.append((row.number, row.actual_columns, row.text))
            return "skip"

        def read(block_size: int) -> pa.Table:
            # Read as binary: the lines were checked to be UTF-8 as a whole (much faster than per value), and
            # fields split at ASCII tabs are then UTF-8 too, so the strings are views of the same bytes.
            return pacsv.read_csv(
                pa.BufferReader(text),
                read_options=pacsv.ReadOptions(
                    column_names=list(self.layout.columns), block_size=block_size, use_threads=False
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter="\t",
                    quote_char=False,
                    escape_char=False,
                    double_quote=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=skip,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(include, pa.binary()),
                    include_columns=include,
                    strings_can_be_null=False,
                ),
            ).combine_chunks()

        try:
            fields = read(_CSV_BLOCK)
        except pa.ArrowInvalid as error:
            if "straddles" not in str(error):
                raise
            wrong.clear()  # a line longer than a block: the whole text as one block
            fields = read(max(_CSV_BLOCK, text.size + 1))
        columns = {
            name: (fields.column(name).chunk(0) if fields.num_rows else pa.array([], pa.binary())).view(pa.string())
            for name in include
        }
        return columns, wrong

    def _parse(self, column: dict[str, pa.Array], lines: np.ndarray, admitted: pa.Array | None) -> pa.Table:
        """Check well-formed lines' fields column-wise; ``lines``: their line numbers in the chunk."""
        assert self.layout is not None
        count = len(lines)
        file_name = self.path.name
        problems: list[tuple[pa.Array, str]] = []  # (bad mask, detail), earliest wins

        photo_id = column["photo_id"]
        id_ok = _decimal(photo_id, 20)
        problems.append((pc.invert(id_ok), _PROBLEM_ID))
        marker = column["marker"]
        problems.append((pc.invert(pc.is_in(marker, pa.array(["0", "1"]))), _PROBLEM_MARKER))
        problems.append((pa.array(coordinate_unparsable(column["longitude"])), _PROBLEM_LONGITUDE))
        problems.append((pa.array(coordinate_unparsable(column["latitude"])), _PROBLEM_LATITUDE))
        uploaded_raw = column["date_uploaded"]
        uploaded_ok = _decimal(uploaded_raw, 12)
        problems.append((pc.invert(pc.or_(uploaded_ok, pc.equal(uploaded_raw, ""))), _PROBLEM_UPLOADED))
        if "photo_hash" in column:
            hash_bad = ~lower_hex_mask(column["photo_hash"], 16, 32)  # ^[0-9a-f]{16,32}$
            problems.append((pa.array(hash_bad), _PROBLEM_HASH))
        creator_id, bad_nsid = to_utf8(percent_decode(column["user_nsid"]))
        bad_text = bad_nsid | decodes_to_bad_utf8(column["user_nickname"]) | decodes_to_bad_utf8(column["title"])
        problems.append((pa.array(bad_text), _PROBLEM_TEXT))
        license_ids = self._licenses(column["license_name"], column["license_url"])
        is_video = pc.equal(marker, "1")

        bad = np.zeros(count, dtype=bool)
        malformed = pa.nulls(count, pa.string())
        for mask, detail in reversed(problems):
            flagged = mask.to_numpy(zero_copy_only=False)
            if flagged.any():
                bad |= flagged
                malformed = pc.if_else(mask, pa.scalar(detail), malformed)
        if admitted is None:
            full = None  # every record in full
        else:
            full = np.flatnonzero(
                ~bad
                & ~is_video.to_numpy(zero_copy_only=False)
                & pc.is_in(license_ids, admitted).to_numpy(zero_copy_only=False)
            )
        light = {
            "key": pc.binary_join_element_wise(pa.scalar(SOURCE + "-"), pc.if_else(id_ok, photo_id, None), ""),
            "source": pa.repeat(pa.scalar(SOURCE), count),
            "photo_id": pc.if_else(id_ok, photo_id, None),
            "license": license_ids,
            "creator_id": clean_text(creator_id),
            "is_video": is_video,
            "malformed": malformed,
            "source_file": pa.repeat(pa.scalar(file_name), count),
            "line": pa.array(lines, pa.int64()),
        }
        if full is not None and len(full) == 0:
            return pool_table(light, count)
        if full is None or len(full) == count:
            subset, sub_ids = column, license_ids
        else:
            rows = pa.array(full)
            subset = {name: column[name].take(rows) for name in _FULL_ONLY if name in column}
            sub_ids = license_ids.take(rows)
        heavy = _heavy_columns(subset, sub_ids)
        if full is not None and len(full) < count:
            heavy = {name: None if value is None else spread(value, full, count) for name, value in heavy.items()}
        return pool_table(light | heavy, count)


_FULL_ONLY = (
    "longitude",
    "latitude",
    "date_uploaded",
    "date_taken",
    "download_url",
    "page_url",
    "license_url",
    "license_name",
    "user_nickname",
    "title",
    "photo_hash",
)


def _strings(count: int, offsets: object, data: object, valid: np.ndarray | None = None) -> pa.Array:
    """A string array over the scanner's buffers (int32 offsets, UTF-8 data), zero-copy; null where not valid."""
    bitmap = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), count, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)])


def _heavy_columns(raw: dict[str, pa.Array], license_ids: pa.Array) -> dict[str, pa.Array | None]:
    """The columns only records read in full get, from their raw fields (``_FULL_ONLY``) and license ids."""
    raw_uploaded = raw["date_uploaded"]
    uploaded_ok = _decimal(raw_uploaded, 12)
    date_uploaded = pc.cast(pc.if_else(uploaded_ok, raw_uploaded, None), pa.int64()).cast(pa.timestamp("s"))
    taken_raw = pc.replace_substring(raw["date_taken"], "+", " ")
    return {
        "url": raw["download_url"],
        "page_url": raw["page_url"],
        "license_url": fill_license_urls(raw["license_url"], license_ids),
        "license_raw": pc.utf8_trim_whitespace(to_utf8(percent_decode(raw["license_name"]))[0]),
        "creator": clean_text(to_utf8(percent_decode(raw["user_nickname"]))[0]),
        "title": clean_text(to_utf8(percent_decode(raw["title"]))[0]),
        "date_taken": _date_taken(taken_raw, date_uploaded),
        "date_taken_raw": taken_raw,
        "date_uploaded": date_uploaded,
        "latitude": parse_coordinate(raw["latitude"], 90.0)[0],
        "longitude": parse_coordinate(raw["longitude"], 180.0)[0],
        "photo_hash": raw.get("photo_hash"),
    }


def _decimal(values: pa.Array, longest: int) -> pa.Array:
    """``^[0-9]{1,longest}$`` per value, with two simple kernels instead of a regex."""
    return pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.binary_length(values), longest))


def _layout_sample(piece: memoryview) -> bytes:
    """The start of the first chunk, enough for :func:`detect_layout` (its first 200 lines)."""
    sample = bytes(piece[: 1 << 20])
    return sample if sample.count(b"\n") > 200 else bytes(piece)


def _plain_lines(piece: memoryview) -> bool:
    """Whether ``piece`` (whole lines) is UTF-8 without NUL or CR: the common case, in which the CSV parser
    finds the rest. Whole-buffer scans (memchr, SIMD), far cheaper than per-line checks."""
    data, end = piece.obj, piece.nbytes  # pieces are prefixes of their buffer: searched in place, not copied
    if not isinstance(data, bytes | bytearray) or memoryview(data).nbytes < end:
        data, end = bytes(piece), piece.nbytes
    if data.find(b"\0", 0, end) >= 0 or data.find(b"\r", 0, end) >= 0:
        return False
    if np.frombuffer(piece, dtype=np.uint8).max(initial=0) < 0x80:
        return True
    try:
        pa.Array.from_buffers(
            pa.string(), 1, [None, pa.py_buffer(np.array([0, len(piece)], np.int32)), pa.py_buffer(piece)]
        ).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


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

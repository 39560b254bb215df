"""The kept images of a filtered folder, indexed for review: key -> (shard, byte offset, size) in its tar.

Reads the final manifests (``NNNNN.parquet``) of ``DIR`` for the kept rows and their detector columns, and scans
each tar's member headers once (seeking past the data) to learn where every image lies; the index is cached in
``DIR/review/index.parquet`` and rebuilt for a shard whose tar changed (size or mtime). An image is then served
with one seek + read: no path from a request ever reaches the filesystem, only keys looked up here.
"""

from __future__ import annotations

import json
import math
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from passkit.core.atomic import atomic_path
from passkit.core.keys import is_valid_key
from passkit.core.manifest import KEPT, ManifestError, validate_manifest
from passkit.core.sample import IMAGE_EXTENSIONS
from passkit.core.shards import ShardPaths, list_shards
from passkit.core.tar import split_member_name
from passkit.review.store import REVIEW_FOLDER

INDEX_FILE = "index.parquet"
SCORE_COLUMNS = ("humans_score", "pii_score", "nsfw_score")
BOX_COLUMNS = ("humans_boxes", "pii_boxes")
_SIZE_COLUMNS = ("width", "height", "source_width", "source_height", "orientation")
_INDEX_SCHEMA = pa.schema(
    [("key", pa.string()), ("shard", pa.int32()), ("ext", pa.string()), ("offset", pa.int64()), ("size", pa.int64())]
)


class DatasetError(ValueError):
    """A folder that cannot be reviewed as it is (no shards, manifests and tars that disagree...)."""


@dataclass(frozen=True)
class Location:
    shard: int
    ext: str
    offset: int
    size: int


_BLOCK = 512
_PLAIN_TYPES = (b"0", b"\0", b"7")  # regular files (ustar "0", old-style NUL, contiguous "7")
_SKIPPED_TYPES = (b"5",)  # folders


class _NeedsTarfileError(Exception):
    """A member header the fast scan does not parse itself (pax/GNU extensions...)."""


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU) size of a huge member
        raise _NeedsTarfileError
    text = field.rstrip(b"\0 ").lstrip(b" ")
    return int(text, 8) if text else 0


def _scan_headers(path: Path) -> list[tuple[str, str, int, int]]:
    """Headers only, seeking past the data: plain ustar members as written by ``ShardWriter``."""
    found = []
    with path.open("rb") as handle:
        position = 0
        while True:
            handle.seek(position)
            header = handle.read(_BLOCK)
            if len(header) < _BLOCK:
                raise DatasetError(f"{path}: archive ends inside a member header (offset {position})")
            if header == b"\0" * _BLOCK:
                return found
            expected = _octal(header[148:156])
            if sum(header[:148]) + 256 + sum(header[156:]) != expected:
                raise DatasetError(f"{path}: damaged member header at offset {position} (checksum)")
            kind = header[156:157]
            if kind not in _PLAIN_TYPES and kind not in _SKIPPED_TYPES:
                raise _NeedsTarfileError
            name = header[:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar" and header[345:346] != b"\0":
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            size = _octal(header[124:136])
            data = position + _BLOCK
            if kind in _PLAIN_TYPES:
                _add(found, name.decode("utf-8", "surrogateescape"), data, size)
            position = data + size + (-size % _BLOCK)


def _add(found: list[tuple[str, str, int, int]], name: str, offset: int, size: int) -> None:
    try:
        key, ext = split_member_name(name)
    except ValueError:
        return
    if ext.lower() in IMAGE_EXTENSIONS and is_valid_key(key):
        found.append((key, ext, offset, size))


def scan_tar(path: Path) -> list[tuple[str, str, int, int]]:
    """``(key, ext, data offset, size)`` of every image member of a tar, reading headers only.

    Plain ustar headers (what passkit writes) are parsed here, checksum checked, seeking past the data; a tar with
    pax or GNU extension headers is indexed by the standard library's ``tarfile`` instead.
    """
    try:
        try:
            return _scan_headers(path)
        except _NeedsTarfileError:
            pass
        found: list[tuple[str, str, int, int]] = []
        with tarfile.open(path, "r:") as archive:
            for member in archive:
                if member.isfile():
                    _add(found, member.name, member.offset_data, member.size)
        return found
    except (tarfile.TarError, OSError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot index the tar ({error})") from error


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def build_index(root: Path, shards: list[ShardPaths]) -> dict[str, Location]:
    """Index of every image in the shards' tars, reusing the cached index for unchanged tars."""
    cache = root / REVIEW_FOLDER / INDEX_FILE
    stamps = {str(shard.index): _stamp(shard.tar) for shard in shards if shard.tar.exists()}
    cached: dict[int, list[tuple[str, str, int, int]]] = {}
    old: dict[str, str] = {}
    if cache.exists():
        try:
            table = pq.read_table(cache)
            old = json.loads((table.schema.metadata or {}).get(b"passkit_stamps", b"{}"))
            rows = table.to_pylist()
        except (OSError, pa.ArrowException, ValueError):
            old, rows = {}, []
        for row in rows:
            if old.get(str(row["shard"])) == stamps.get(str(row["shard"])):
                cached.setdefault(row["shard"], []).append((row["key"], row["ext"], row["offset"], row["size"]))
    valid = {int(index) for index, stamp in old.items() if stamps.get(index) == stamp}
    entries: dict[int, list[tuple[str, str, int, int]]] = {}
    for shard in shards:
        if shard.tar.exists():
            entries[shard.index] = cached.get(shard.index, []) if shard.index in valid else scan_tar(shard.tar)
    if old != stamps:
        columns: dict[str, list[Any]] = {"key": [], "shard": [], "ext": [], "offset": [], "size": []}
        for index, found in sorted(entries.items()):
            for key, ext, offset, size in found:
                for name, value in zip(columns, (key, index, ext, offset, size), strict=True):
                    columns[name].append(value)
        table = pa.Table.from_pydict(columns, schema=_INDEX_SCHEMA)
        table = table.replace_schema_metadata({"passkit_stamps": json.dumps(stamps, sort_keys=True)})
        try:
            with atomic_path(cache) as temp:
                pq.write_table(table, temp)
        except OSError:
            pass  # a read-only folder is still reviewable; the index is rebuilt next time
    index: dict[str, Location] = {}
    for shard_index, found in entries.items():
        for key, ext, offset, size in found:
            index[key] = Location(shard_index, ext, offset, size)
    return index


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def box_space(row: dict[str, Any]) -> tuple[float, float] | None:
    """Width and height of the pixel space the detector boxes are in: the source image after EXIF orientation."""
    width, height = row.get("source_width"), row.get("source_height")
    if width and height:
        if row.get("orientation") in (5, 6, 7, 8):
            width, height = height, width
        return float(width), float(height)
    if row.get("width") and row.get("height"):
        return float(row["width"]), float(row["height"])
    return None


def normalised_boxes(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Detector boxes of a manifest row as fractions of the image (0..1), whatever columns the row has."""
    space = box_space(row)
    if space is None:
        return []
    width, height = space
    boxes = []
    for column in BOX_COLUMNS:
        text = row.get(column)
        if not text:
            continue
        try:
            parsed = json.loads(text)
        except (TypeError, ValueError):
            continue
        for box in parsed if isinstance(parsed, list) else []:
            coords = box.get("box") if isinstance(box, dict) else None
            if not (isinstance(coords, list) and len(coords) == 4):
                continue
            try:
                x1, y1, x2, y2 = (float(v) for v in coords)
                score = float(box.get("score", 0.0))
            except (TypeError, ValueError):
                continue
            boxes.append(
                {
                    "x": max(0.0, x1 / width),
                    "y": max(0.0, y1 / height),
                    "w": max(0.0, min(x2, width) - max(x1, 0.0)) / width,
                    "h": max(0.0, min(y2, height) - max(y1, 0.0)) / height,
                    "score": round(score, 4),
                    "task": str(box.get("task") or column.removesuffix("_boxes")),
                    "by": str(box.get("by", "")),
                }
            )
    return boxes


class ReviewDataset:
    """Kept rows of a filtered folder with their detector columns and image locations."""

    def __init__(self, root: Path, rows: pa.Table, index: dict[str, Location]) -> None:
        self.root = root
        self.rows = rows
        self.keys: list[str] = rows.column("key").to_pylist()
        self._position = {key: position for position, key in enumerate(self.keys)}
        self._index = index

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> ReviewDataset:
        root = Path(directory)
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder")
        shards = list_shards(root)
        if not shards:
            raise DatasetError(f"no finished shards (NNNNN.tar + NNNNN.parquet) in {root}")
        tables = []
        for shard in shards:
            try:
                tables.append(_kept_rows(shard))
            except (OSError, pa.ArrowException, ManifestError) as error:
                raise DatasetError(f"{shard.manifest}: {error}") from error
        rows = pa.concat_tables(tables, promote_options="permissive")
        rows = rows.sort_by("key")
        keys = rows.column("key").to_pylist()
        if len(set(keys)) != len(keys):
            raise DatasetError(f"{root}: a key is kept in more than one shard")
        index = build_index(root, shards)
        missing = [key for key in keys if key not in index]
        if missing:
            raise DatasetError(
                f"{root}: {len(missing)} kept rows have no image in their tar (e.g. {missing[:3]}); "
                f"run `passkit verify {root}`"
            )
        return cls(root, rows, index)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._position

    def row(self, key: str) -> dict[str, Any]:
        return self.rows.slice(self._position[key], 1).to_pylist()[0]

    def scores(self) -> dict[str, list[float | None]]:
        """Detector score columns present in the manifests (``humans_score``, ``pii_score``, ``nsfw_score``)."""
        return {
            column: [_number(v) for v in self.rows.column(column).to_pylist()]
            for column in SCORE_COLUMNS
            if column in self.rows.column_names
        }

    def describe(self, keys: list[str]) -> list[dict[str, Any]]:
        """What the review page shows for each key: scores and normalised boxes."""
        positions = [self._position[key] for key in keys]
        rows = self.rows.take(pa.array(positions, pa.int64())).to_pylist() if positions else []
        described = []
        for row in rows:
            scores = {column: _number(row.get(column)) for column in SCORE_COLUMNS if column in row}
            described.append(
                {
                    "key": row["key"],
                    "scores": {name.removesuffix("_score"): value for name, value in scores.items()},
                    "boxes": normalised_boxes(row),
                }
            )
        return described

    def location(self, key: str) -> Location:
        return self._index[key]

    def read_image(self, key: str) -> tuple[bytes, str]:
        """Stored bytes and extension of a kept image; ``KeyError`` for any key that is not a kept row."""
        if key not in self._position:
            raise KeyError(key)
        where = self._index[key]
        tar = ShardPaths(self.root, where.shard).tar
        with tar.open("rb") as handle:
            handle.seek(where.offset)
            data = handle.read(where.size)
        if len(data) != where.size:
            raise DatasetError(f"{tar}: {key} is truncated ({len(data)} of {where.size} bytes)")
        return data, where.ext


def _kept_rows(shard: ShardPaths) -> pa.Table:
    schema = pq.read_schema(shard.manifest)
    wanted = ["key", "status", "reason"] + [
        name for name in (*SCORE_COLUMNS, *BOX_COLUMNS, *_SIZE_COLUMNS) if name in schema.names
    ]
    table = pq.read_table(shard.manifest, columns=wanted)
    validate_manifest(table, where=str(shard.manifest))
    kept = table.filter(pc.equal(table.column("status"), KEPT))
    return kept.drop_columns(["status", "reason"])

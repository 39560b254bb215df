"""A folder of the user's own images with their attribution, as a pool.

Attribution per image comes from a sidecar JSON next to it (``photo.json`` or ``photo.jpg.json``) or from one
``attribution.csv`` at the folder's root with a ``file`` column (path relative to the folder) and the attribution
columns (``creator``, ``title``, ``page_url``, ``license``, ``license_url``... same names as url tables); a sidecar
wins over the CSV. An image without either has no license and so is rejected (``license:not-allowed``); a
sidecar that is not a JSON object, or a CSV row naming a missing file, is ``metadata:malformed``.

Keys: ``<source>-<path relative to the folder, without extension>`` (slug + digest when the path has characters
outside ``[a-z0-9_-]``); ``url`` is the image's ``file://`` URI; ``line`` is the image's position in sorted order
(for a CSV row without an image: its line in attribution.csv).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from passkit.core.keys import make_key
from passkit.sources.schema import pool_rows
from passkit.sources.tables import FIELDS, PoolBuilder, resolve_columns

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
ATTRIBUTION_CSV = "attribution.csv"
_FILE_COLUMNS = ("file", "filename", "path", "image", "name")


def default_source_name(path: Path) -> str:
    """The folder's name as a source name (``My Photos`` -> ``my-photos``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.resolve().name.lower()).strip("-")
    return slug if slug and slug.isascii() else "folder"


class FolderReader:
    """Yields one POOL_SCHEMA table for the images under ``path`` (recursively)."""

    def __init__(self, path: str | os.PathLike[str], source: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotADirectoryError(f"{self.path}: not a folder")
        self.source = source or default_source_name(self.path)
        self.builder = PoolBuilder(self.source, self.path.name, local_files=True)
        self.problem = ""
        self.rows = 0

    def images(self) -> list[Path]:
        return sorted(
            p
            for p in self.path.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )

    def _csv_rows(self) -> dict[str, tuple[int, dict[str, str]]]:
        """relative file -> (csv line, fields) from attribution.csv, if present."""
        table_path = self.path / ATTRIBUTION_CSV
        if not table_path.is_file():
            return {}
        with table_path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            names = list(reader.fieldnames or [])
            file_column = next((n for n in names if n.lower() in _FILE_COLUMNS), None)
            if file_column is None:
                raise ValueError(f"{table_path}: needs a file column ({', '.join(_FILE_COLUMNS)})")
            mapping = resolve_columns(names, {}, require_url=False)
            rows = {}
            for record in reader:
                fields = {name: record.get(column) or "" for name, column in mapping.items() if column in record}
                rows[Path(record[file_column] or "").as_posix()] = (reader.line_num, fields)
        return rows

    def __iter__(self) -> Iterator[pa.Table]:
        listed = self._csv_rows()
        records: list[dict[str, Any]] = []
        malformed: list[tuple[int, str, str, str]] = []  # (line, detail, source file, id)
        images = self.images()
        for number, image in enumerate(images, start=1):
            relative = image.relative_to(self.path).as_posix()
            record: dict[str, Any] = {}
            sidecars = [image.with_suffix(".json"), image.with_name(image.name + ".json")]
            sidecar = next((s for s in sidecars if s.is_file()), None)
            if sidecar is not None:
                try:
                    loaded = json.loads(sidecar.read_bytes())
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    malformed.append(
                        (number, f"sidecar {sidecar.name} is not valid JSON ({error})", relative, relative)
                    )
                    continue
                if not isinstance(loaded, dict):
                    malformed.append((number, f"sidecar {sidecar.name} is not a JSON object", relative, relative))
                    continue
                mapping = resolve_columns(list(loaded), {}, require_url=False)
                record = {name: loaded.get(column) for name, column in mapping.items()}
            elif relative in listed:
                record = dict(listed[relative][1])
            record.pop("url", None)
            record["id"] = str(Path(relative).with_suffix(""))
            record["url"] = image.resolve().as_uri()
            record["_line"] = number
            record["_relative"] = relative
            records.append(record)
        present = {image.relative_to(self.path).as_posix() for image in images}
        for relative, (line, _) in sorted(listed.items(), key=lambda item: item[1][0]):
            if relative not in present:
                malformed.append(
                    (
                        line,
                        f"{ATTRIBUTION_CSV} lists {relative!r}, which is not an image in the folder",
                        ATTRIBUTION_CSV,
                        "",
                    )
                )
        tables = []
        if records:
            columns = {}
            for name in FIELDS:
                values = [record.get(name) for record in records]
                if name in ("latitude", "longitude"):
                    values = [None if v is None or v == "" else str(v) for v in values]
                else:
                    values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
                columns[name] = pa.array(values, pa.string())
            table = self.builder.build(columns, np.array([r["_line"] for r in records], dtype=np.int64))
            table = table.set_column(
                table.schema.get_field_index("source_file"),
                "source_file",
                pa.array([r["_relative"] for r in records], pa.string()),
            )
            tables.append(table)
        if malformed:
            rows = []
            for line, detail, source_file, relative in malformed:
                row = self.builder.malformed(line, detail)
                row["source_file"] = source_file
                if relative:
                    row["key"] = make_key(self.source, str(Path(relative).with_suffix("")))
                rows.append(row)
            tables.append(pool_rows(rows))
        if tables:
            table = pa.concat_tables(tables)
            self.rows = table.num_rows
            yield table

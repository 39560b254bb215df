"""What a source spec of ``passkit select`` names, and decompression started before the rest of select loads.

Without pyarrow (or anything heavy) imported, so that the CLI can start lbzip2 first and import while it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from passkit.sources.streams import DecompressedStream, parallel_bzip2, sniff_compression

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson")


def spec_kind(spec: str | os.PathLike[str]) -> tuple[str, Path]:
    """(``yfcc`` / ``table`` / ``folder`` or "" when not forced, path) of a source spec."""
    text = os.fspath(spec)
    kind, _, rest = text.partition(":")
    if kind in ("yfcc", "table", "folder") and rest:
        return kind, Path(rest)
    return "", Path(text)


def start_source(spec: str | os.PathLike[str]) -> DecompressedStream | None:
    """Start decompressing ``spec`` now if it may be a bzip2-compressed YFCC100M file and lbzip2 is installed:
    lbzip2 and a read-ahead thread run while the caller finishes starting up. Give the stream to
    :func:`passkit.selection.open_source`: it reads the first bytes to recognise the file, then hands the stream
    to the reader or stops it. ``None`` for anything else."""
    kind, path = spec_kind(spec)
    if kind in ("table", "folder") or not path.is_file() or parallel_bzip2() is None:
        return None
    if not kind and path.name.lower().removesuffix(".bz2").endswith(TABLE_SUFFIXES):
        return None
    try:
        if sniff_compression(path) != "bz2":
            return None
        stream = DecompressedStream(path)
    except OSError:
        return None  # open_source reports it
    stream.start_reading()
    return stream

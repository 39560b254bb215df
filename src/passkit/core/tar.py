"""Webdataset tar shards: a deterministic streaming writer and a safe streaming reader.

Writer: members ``<key>.<ext>``, sorted by key then extension, regular files only, fixed mtime/uid/gid/mode,
empty user/group names, POSIX pax format. Samples may arrive in any order: they are spooled to a temporary file
and, if they did not arrive sorted, the member blocks are copied once in key order when the shard is closed
(memory holds only an index of offsets). The finished tar appears atomically under its final name.

Reader: parses tar headers itself (with the standard library's header decoder), so that a truncated or damaged
archive is an error naming the shard and the member — ``tarfile`` silently stops at a damaged header — and so
that memory stays constant however large the shard. Absolute paths, ``..``, links, devices and fifos are refused.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from passkit.core.atomic import publish, temp_path_for
from passkit.core.keys import InvalidKeyError, validate_key
from passkit.core.sample import Sample

BLOCK = 512
RECORD = 20 * BLOCK
FIXED_MTIME = 0
FIXED_MODE = 0o644
_COPY_CHUNK = 1 << 20
_ALLOWED_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.DIRTYPE)


class ShardError(Exception):
    """A shard that cannot be read or written as asked; names the shard and, where known, the member."""

    def __init__(self, shard: str | os.PathLike[str], message: str, member: str | None = None) -> None:
        self.shard = str(shard)
        self.member = member
        where = f"{self.shard}" + (f", member {member!r}" if member is not None else "")
        super().__init__(f"{where}: {message}")


class UnsafeMemberError(ShardError):
    """A member that could escape the extraction folder or is not a regular file."""


class TruncatedShardError(ShardError):
    """The archive ends inside a header or a member's data, or has no end-of-archive marker."""


def _padding(size: int) -> int:
    return (BLOCK - size % BLOCK) % BLOCK


def _member_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = FIXED_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


class ShardWriter:
    """``write(sample)`` any number of times, then ``close()``; usable as a context manager.

    On an exception inside the ``with`` block nothing is published and the temporary file is removed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_path = temp_path_for(self.path)
        self._spool: BinaryIO | None = self._spool_path.open("wb")
        self._index: list[tuple[str, int, int]] = []  # key, offset, length in the spool
        self._keys: set[str] = set()
        self._sorted_so_far = True
        self.bytes_written = 0

    def __len__(self) -> int:
        return len(self._index)

    def write(self, sample: Sample) -> None:
        if self._spool is None:
            raise ShardError(self.path, "write() after close()")
        try:
            validate_key(sample.key)
        except InvalidKeyError as error:
            raise ShardError(self.path, str(error)) from error
        if sample.key in self._keys:
            raise ShardError(self.path, f"key {sample.key!r} written twice")
        if not sample.parts:
            raise ShardError(self.path, f"sample {sample.key!r} has no parts")
        if self._index and sample.key < self._index[-1][0]:
            self._sorted_so_far = False
        offset = self._spool.tell()
        for ext in sorted(sample.parts):
            data = sample.parts[ext]
            name = f"{sample.key}.{ext}"
            if "/" in ext or ext.startswith(".") or not ext:
                raise ShardError(self.path, f"bad extension {ext!r}", member=name)
            self._spool.write(_member_header(name, len(data)))
            self._spool.write(data)
            self._spool.write(b"\0" * _padding(len(data)))
        length = self._spool.tell() - offset
        self._index.append((sample.key, offset, length))
        self._keys.add(sample.key)

    def close(self) -> Path:
        """Finish the archive and publish it atomically under its final name; returns that path."""
        if self._spool is None:
            return self.path
        spool, self._spool = self._spool, None
        if self._sorted_so_far:
            final_temp = self._spool_path
            out = spool
        else:
            spool.close()
            final_temp = temp_path_for(self.path)
            out = final_temp.open("wb")
            with self._spool_path.open("rb") as source:
                for _key, offset, length in sorted(self._index):
                    source.seek(offset)
                    _copy_exact(source, out, length)
            self._spool_path.unlink()
        end = out.tell() + 2 * BLOCK
        out.write(b"\0" * (2 * BLOCK + (RECORD - end % RECORD) % RECORD))
        self.bytes_written = out.tell()
        out.close()
        publish(final_temp, self.path)
        return self.path

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._spool_path.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _copy_exact(source: BinaryIO, out: BinaryIO, length: int) -> None:
    remaining = length
    while remaining:
        chunk = source.read(min(_COPY_CHUNK, remaining))
        if not chunk:
            raise OSError("spool file shorter than its index")
        out.write(chunk)
        remaining -= len(chunk)


def write_shard(path: str | os.PathLike[str], samples: list[Sample]) -> Path:
    with ShardWriter(path) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.path


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _check_safe(shard: str, info: tarfile.TarInfo, name: str) -> None:
    if info.issym() or info.islnk():
        raise UnsafeMemberError(shard, f"links are not allowed (-> {info.linkname!r})", member=name)
    if info.type not in _ALLOWED_TYPES:
        raise UnsafeMemberError(shard, f"member type {info.type!r} is not a regular file", member=name)
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMemberError(shard, "absolute path", member=name)
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeMemberError(shard, "path contains '..'", member=name)


def iter_members(stream: BinaryIO, shard: str = "<stream>") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for every regular file of a tar stream, in archive order, checking safety."""
    pending: dict[str, str] = {}
    while True:
        header = _read_exact(stream, BLOCK)
        if len(header) == 0:
            raise TruncatedShardError(shard, "archive ends without its end-of-archive marker")
        if len(header) < BLOCK:
            raise TruncatedShardError(shard, "archive ends inside a member header")
        if header == b"\0" * BLOCK:
            return
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise ShardError(shard, f"damaged member header ({error})") from error
        name = pending.get("path", info.name)
        size = int(pending.get("size", info.size))
        data = _read_exact(stream, size)
        if len(data) < size:
            raise TruncatedShardError(
                shard, f"archive ends inside member data ({len(data)} of {size} bytes)", member=name
            )
        padding = _padding(size)
        if len(_read_exact(stream, padding)) < padding:
            raise TruncatedShardError(shard, "archive ends inside member padding", member=name)
        if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            pending = _parse_pax(data)
            continue
        if info.type == tarfile.XGLTYPE:
            continue
        if info.type == tarfile.GNUTYPE_LONGNAME:
            pending = {"path": data.rstrip(b"\0").decode("utf-8", "surrogateescape")}
            continue
        pending = {}
        _check_safe(shard, info, name)
        if info.isdir():
            continue
        yield name, data


def split_member_name(name: str) -> tuple[str, str]:
    """``dir/key.ext.more`` -> (``dir/key``, ``ext.more``): webdataset splits at the basename's first dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem or not ext:
        raise ValueError(f"member {name!r} is not <key>.<ext>")
    return (f"{folder}/{stem}" if folder else stem), ext


def _key_of(name: str) -> str | None:
    try:
        return split_member_name(name)[0]
    except ValueError:
        return None


def iter_samples(stream: BinaryIO, shard: str = "<stream>", strict_keys: bool = True) -> Iterator[Sample]:
    """Group consecutive members by key into samples. ``strict_keys`` also enforces the passkit key contract
    (off: any webdataset key, e.g. ``dir/name``, is accepted). A key that reappears later is an error."""
    seen: set[str] = set()
    current: Sample | None = None
    members = iter_members(stream, shard)
    while True:
        try:
            name, data = next(members)
        except StopIteration:
            break
        except ShardError as error:
            # The sample before a damaged member is complete when that member belongs to another key.
            if current is not None and error.member is not None and _key_of(error.member) != current.key:
                yield current
            raise
        try:
            key, ext = split_member_name(name)
            if strict_keys:
                validate_key(key)
        except ValueError as error:
            raise ShardError(shard, str(error), member=name) from error
        if current is not None and key == current.key:
            if ext in current.parts:
                raise ShardError(shard, f"duplicate member for key {key!r}", member=name)
            current.parts[ext] = data
            continue
        if key in seen:
            raise ShardError(shard, f"key {key!r} appears in two separate runs of members", member=name)
        if current is not None:
            yield current
        seen.add(key)
        current = Sample(key, {ext: data})
    if current is not None:
        yield current


def read_shard(path: str | os.PathLike[str], strict_keys: bool = True) -> Iterator[Sample]:
    """Stream the samples of a tar file (constant memory: one sample at a time)."""
    with Path(path).open("rb", buffering=1 << 20) as handle:
        yield from iter_samples(handle, str(path), strict_keys)


def shard_keys(path: str | os.PathLike[str]) -> list[str]:
    return [sample.key for sample in read_shard(path)]


__all__ = [
    "ShardError",
    "ShardWriter",
    "TruncatedShardError",
    "UnsafeMemberError",
    "iter_members",
    "iter_samples",
    "read_shard",
    "shard_keys",
    "split_member_name",
    "write_shard",
]

"""Streamed reading of plain, bzip2 and gzip files, with a parallel bzip2 decompressor when one is installed.

Compression is recognised from the file's first bytes, not its name (YFCC100M's parts have no extension).
bzip2 goes through ``lbzip2 -dc`` (decompresses blocks on all cores) when it is on PATH, else the standard
library's ``bz2``. A stream that ends early or is corrupt does not raise: the reader stops, and ``problem`` says
what happened so the caller can report it once with the number of rows it read.
"""

from __future__ import annotations

import bz2
import gzip
import os
import queue
import shutil
import subprocess
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

Compression = Literal["none", "bz2", "gzip"]
Decompressor = Literal["auto", "lbzip2", "python"]
_PIPE_BYTES = 1 << 20  # Linux default pipe-max-size; ignored where it cannot be set
_READ_STEP = 1 << 20  # bytes per read call: a damaged stream loses at most this much decoded text
_HEAD_START = 32 << 20  # most bytes read ahead by :meth:`DecompressedStream.start_reading` before the first read


def sniff_compression(path: Path) -> Compression:
    with path.open("rb") as handle:
        magic = handle.read(3)
    if magic == b"BZh":
        return "bz2"
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    return "none"


def parallel_bzip2() -> str | None:
    """Path of lbzip2 if installed (``PASSKIT_NO_LBZIP2=1`` disables it)."""
    if os.environ.get("PASSKIT_NO_LBZIP2"):
        return None
    return shutil.which("lbzip2")


class DecompressedStream:
    """Read-only byte stream of a file's decompressed content; ``read(n)`` returns b"" at the end (or at the
    point where a damaged stream stops, see ``problem``)."""

    def __init__(self, path: str | os.PathLike[str], decompressor: Decompressor = "auto") -> None:
        self.path = Path(path)
        self.compression = sniff_compression(self.path)
        self.problem = ""
        self.decompressor = "none"
        self._process: subprocess.Popen[bytes] | None = None
        self._stream: BinaryIO
        if self.compression == "bz2":
            tool = parallel_bzip2() if decompressor != "python" else None
            if decompressor == "lbzip2" and tool is None:
                raise FileNotFoundError("lbzip2 is not installed (apt-get install lbzip2)")
            if tool is not None:
                self._process = subprocess.Popen(
                    [tool, "-dc", str(self.path)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    # Unbuffered: reads go straight from the pipe into the caller's buffer (a buffered reader
                    # copies every byte once more when a read is not larger than its buffer).
                    bufsize=0,
                    pipesize=_PIPE_BYTES,  # fewer, larger pipe transfers between lbzip2 and the reader
                )
                assert self._process.stdout is not None
                self._stream = self._process.stdout  # type: ignore[assignment]
                self.decompressor = "lbzip2"
            else:
                self._stream = bz2.open(self.path, "rb")  # type: ignore[assignment]  # noqa: SIM115
                self.decompressor = "bz2"
        elif self.compression == "gzip":
            self._stream = gzip.open(self.path, "rb")  # type: ignore[assignment]  # noqa: SIM115
            self.decompressor = "gzip"
        else:
            self._stream = self.path.open("rb")
        self.bytes_read = 0
        self._ended = False
        # Bytes read before the caller asked for them (start_reading, peek): served first by readinto.
        self._head = bytearray()
        self._head_at = 0
        self._head_thread: threading.Thread | None = None
        self._head_stop = threading.Event()
        self._head_error: list[BaseException] = []

    def start_reading(self, limit: int = _HEAD_START) -> None:
        """Start reading now, in a background thread, up to ``limit`` bytes: the decompressor (lbzip2) works while
        the caller is still starting up (imports, opening outputs) instead of waiting for the first read. Reads
        return those bytes first; the thread stops at the first read (or :meth:`peek`)."""
        if self._head_thread is not None or self._head:
            return
        self._head = bytearray(limit)  # pages are touched only as far as they are filled

        def fill() -> None:
            filled = 0
            try:
                while filled < limit and not self._head_stop.is_set():
                    count = self._read_step(memoryview(self._head)[filled : min(limit, filled + _READ_STEP)])
                    if not count:
                        break
                    filled += count
            except BaseException as error:  # noqa: BLE001 (raised by the reader that takes over, see _take_head)
                self._head_error.append(error)
            finally:
                del self._head[filled:]

        self._head_thread = threading.Thread(target=fill, name=f"read ahead {self.path.name}", daemon=True)
        self._head_thread.start()

    def _stop_head_start(self) -> None:
        """Stop the read-ahead thread (it finishes the read in progress) and keep what it read."""
        if self._head_thread is not None:
            self._head_stop.set()
            self._head_thread.join()
            self._head_thread = None
            if self._head_error:
                raise self._head_error[0]

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer only at the end of the stream), which later reads return again."""
        self._stop_head_start()
        missing = size - (len(self._head) - self._head_at)
        if missing > 0:
            start = len(self._head)
            self._head.extend(bytes(missing))
            got = self._read_raw(memoryview(self._head)[start:])
            del self._head[start + got :]
        return bytes(self._head[self._head_at : self._head_at + size])

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the stream, or where a damaged stream stops)."""
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(memoryview(buffer))])

    def readinto(self, target: memoryview) -> int:
        """Fill ``target`` as far as the stream goes (fewer bytes only at its end); no intermediate copy."""
        self._stop_head_start()
        filled = 0
        if self._head_at < len(self._head):
            filled = min(len(target), len(self._head) - self._head_at)
            target[:filled] = self._head[self._head_at : self._head_at + filled]
            self._head_at += filled
            if self._head_at == len(self._head):
                self._head, self._head_at = bytearray(), 0
        filled += self._read_raw(target[filled:])
        self.bytes_read += filled
        return filled

    def _read_raw(self, target: memoryview) -> int:
        """Fill ``target`` from the decompressor as far as the stream goes."""
        filled = 0
        while filled < len(target) and not self.problem:
            count = self._read_step(target[filled : filled + _READ_STEP])
            if not count:
                break
            filled += count
        return filled

    def _read_step(self, target: memoryview) -> int:
        """One read call (0 at the end of the stream or where a damaged stream stops)."""
        if self.problem or self._ended:
            return 0
        try:
            # At most 1 MiB a call: a damaged stream raises, and what that call decoded is lost.
            count = self._stream.readinto(target)  # type: ignore[attr-defined]
        except (EOFError, OSError, zlib.error) as error:  # truncated or corrupt compressed data
            self.problem = f"{self.path.name}: compressed stream is damaged or truncated ({error})"
            return 0
        if not count:
            self._ended = True
            if self._process is not None:
                self._finish_process()
        return count

    def _finish_process(self) -> None:
        assert self._process is not None
        code = self._process.wait()
        if code != 0 and not self.problem:
            message = (self._process.stderr.read() if self._process.stderr else b"").decode("utf-8", "replace")
            detail = " ".join(message.split())[:300] or f"exit status {code}"
            self.problem = f"{self.path.name}: compressed stream is damaged or truncated (lbzip2: {detail})"

    def close(self) -> None:
        self._head_stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()  # ends a read in progress in the read-ahead thread
        if self._head_thread is not None:
            self._head_thread.join()
            self._head_thread = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdout, self._process.stderr):
                if pipe is not None:
                    pipe.close()
        else:
            self._stream.close()

    def __enter__(self) -> DecompressedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PieceBuffers:
    """Buffers for pieces of lines, reused: a piece handed back with :meth:`give` once nothing reads it any more
    is refilled instead of allocating a fresh buffer for every piece (a new 16 MiB buffer is zero-filled and
    page-faulted in, which costs several times the read itself). Safe to share between two threads."""

    def __init__(self, keep: int = 8) -> None:
        self._free: list[bytearray] = []
        self._keep = keep

    def take(self, size: int) -> bytearray:
        while self._free:
            try:
                buffer = self._free.pop()
            except IndexError:  # emptied by the other thread meanwhile
                break
            if len(buffer) >= size:
                return buffer
        # Room for a longer carried-over partial line next time, so that the buffer can be reused then too.
        return bytearray(size + size // 32)

    def give(self, piece: memoryview) -> None:
        """Hand back a piece from :func:`prefetch_lines` whose bytes nobody reads any more."""
        buffer = piece.obj
        if isinstance(buffer, bytearray) and len(self._free) < self._keep:
            self._free.append(buffer)


def _line_pieces(
    stream: DecompressedStream, chunk_bytes: int, buffers: PieceBuffers | None = None
) -> Iterator[tuple[memoryview, bool]]:
    """(piece, terminated): ~``chunk_bytes`` of whole lines each, read straight into the piece's buffer (the
    partial line at its end moves to the front of the next one). A last line without newline comes alone, with
    a newline added and ``terminated`` false. Buffers come from ``buffers`` when given (see :class:`PieceBuffers`)."""
    carry = b""
    while True:
        size = len(carry) + chunk_bytes
        buffer = buffers.take(size) if buffers is not None else bytearray(size)
        buffer[: len(carry)] = carry
        end = len(carry) + stream.readinto(memoryview(buffer)[len(carry) : size])
        if end == len(carry):
            break
        cut = buffer.rfind(b"\n", 0, end) + 1
        carry = bytes(buffer[cut:end])
        if cut:
            yield memoryview(buffer)[:cut], True
    if carry:
        yield memoryview(carry + b"\n"), False


def prefetch_lines(
    stream: DecompressedStream, chunk_bytes: int, depth: int = 3, buffers: PieceBuffers | None = None
) -> Iterator[tuple[memoryview, bool]]:
    """:func:`_line_pieces` read ahead by a background thread, so that decompression (lbzip2 writing into the
    pipe, or bz2/zlib, which release the GIL) keeps going while the caller parses. At most ``depth`` pieces wait
    in memory. An error in the thread is raised here; the thread is stopped and joined when iteration ends."""
    pieces: queue.Queue[tuple[memoryview, bool] | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hand_over(item: tuple[memoryview, bool] | None) -> None:
        """Queue ``item`` for the consumer, giving up once the consumer has stopped."""
        while not stop.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for piece in _line_pieces(stream, chunk_bytes, buffers):
                hand_over(piece)
                if stop.is_set():
                    return
        except BaseException as error:  # noqa: BLE001 (re-raised by the consumer below)
            errors.append(error)
        finally:
            hand_over(None)

    thread = threading.Thread(target=produce, name=f"read {stream.path.name}", daemon=True)
    thread.start()
    try:
        while (piece := pieces.get()) is not None:
            yield piece
        thread.join()
        if errors:
            raise errors[0]
    finally:
        stop.set()
        thread.join()

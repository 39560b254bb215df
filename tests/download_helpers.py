"""A real HTTP server on 127.0.0.1 that serves images and misbehaves on purpose, and candidates tables."""

from __future__ import annotations

import io
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SLOW_SECONDS = 4.0


def image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    image = Image.new("RGB", (32, 24), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class Misbehaving(BaseHTTPRequestHandler):
    """Routes (the path decides the behaviour; ``<n>`` makes distinct images):

    /img/<n>.jpg  a JPEG          /png/<n>.jpg   a PNG behind a .jpg name
    /status/<code>.jpg  always that status      /flaky/<n>.jpg  500 on the first request, then the image
    /busy/<n>.jpg  429 + Retry-After: 1 first, then the image     /busy-long.jpg  429 + Retry-After: 3600
    /slow.jpg  sleeps past the client timeout   /big.jpg  body over the limit (Content-Length declared)
    /big-chunked.jpg  same, chunked (no length) /html.jpg  an HTML page as text/html
    /html-as-jpeg.jpg  HTML sent as image/jpeg  /loop/<n>  redirects forever   /redirect/<n>.jpg  -> /img/<n>.jpg
    /outage/<n>.jpg  503 while ``server.outage`` is set, else the image
    /reset.jpg  declares 100 kB, sends 1 kB, resets the connection
    /noai.jpg, /noimageai.jpg  X-Robots-Tag opt-out     /otherbot-noai.jpg  an opt-out aimed at another robot
    /ours-noai.jpg  an opt-out aimed at passkit
    """

    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        merged = {"Content-Type": "image/jpeg", "Content-Length": str(len(body)), **(headers or {})}
        for name, value in merged.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _number(self) -> int:
        return int(self.path.rsplit("/", 1)[-1].split(".")[0])

    def do_GET(self) -> None:
        path = self.path
        hits = self.server.count(path)
        self.server.agents.add(self.headers.get("User-Agent", ""))
        if self.server.latency:
            time.sleep(self.server.latency)
        if path.startswith("/img/"):
            self._send(200, image_bytes(self._number()))
        elif path.startswith("/png/"):
            self._send(200, image_bytes(self._number(), "PNG"), {"Content-Type": "application/octet-stream"})
        elif path.startswith("/status/"):
            self._send(self._number(), b"no", {"Content-Type": "text/plain"})
        elif path.startswith("/flaky/"):
            self._send(500, b"oops", {"Content-Type": "text/plain"}) if hits == 1 else self._send(
                200, image_bytes(self._number())
            )
        elif path.startswith("/busy/"):
            if hits == 1:
                self._send(429, b"slow down", {"Content-Type": "text/plain", "Retry-After": "1"})
            else:
                self._send(200, image_bytes(self._number()))
        elif path.startswith("/outage/"):
            if self.server.outage:
                self._send(503, b"down for maintenance", {"Content-Type": "text/plain"})
            else:
                self._send(200, image_bytes(self._number()))
        elif path == "/busy-long.jpg":
            self._send(429, b"slow down", {"Content-Type": "text/plain", "Retry-After": "3600"})
        elif path == "/slow.jpg":
            time.sleep(SLOW_SECONDS)
            self._send(200, image_bytes(1))
        elif path == "/big.jpg":
            self._send(200, b"\xff\xd8\xff" + b"\0" * 300_000)
        elif path == "/big-chunked.jpg":
            self._send_chunked(b"\xff\xd8\xff" + b"\0" * 300_000)
        elif path == "/html.jpg":
            self._send(200, b"<html><body>not found</body></html>", {"Content-Type": "text/html; charset=utf-8"})
        elif path == "/html-as-jpeg.jpg":
            self._send(200, b"<!doctype html><html>gotcha</html>")
        elif path.startswith("/loop/"):
            self._send(302, b"", {"Location": f"/loop/{self._number() + 1}"})
        elif path.startswith("/redirect/"):
            self._send(301, b"", {"Location": f"/img/{self._number()}.jpg"})
        elif path == "/reset.jpg":
            self._reset_mid_body()
        elif path in ("/noai.jpg", "/noimageai.jpg"):
            self._send(200, image_bytes(2), {"X-Robots-Tag": path[1:-4]})
        elif path == "/otherbot-noai.jpg":
            self._send(200, image_bytes(3), {"X-Robots-Tag": "otherbot: noai, noimageai"})
        elif path == "/ours-noai.jpg":
            self._send(200, image_bytes(4), {"X-Robots-Tag": "googlebot: noindex, passkit: noimageai"})
        else:
            self._send(404, b"unknown", {"Content-Type": "text/plain"})

    def _send_chunked(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 16384):
            chunk = body[start : start + 16384]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _reset_mid_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(image_bytes(5)[:1000])
        self.wfile.flush()
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Misbehaving)
        self.latency = latency
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.agents: set[str] = set()
        self.outage = False
        self._lock = threading.Lock()

    def count(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            self.times.setdefault(path, []).append(time.monotonic())
            return self.hits[path]

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (timeouts, size limits) are expected here: no traceback on stderr."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(latency: float = 0.0) -> Iterator[Server]:
    server = Server(latency)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def candidates_table(urls: dict[str, str]) -> pa.Table:
    """A candidates table with every contract column, one row per ``key -> url``."""
    keys = list(urls)
    return pa.table(
        {
            "key": keys,
            "source": ["test"] * len(keys),
            "photo_id": [key.split("-", 1)[-1] for key in keys],
            "url": [urls[key] for key in keys],
            "page_url": [f"https://www.flickr.com/photos/someone/{i}" for i in range(len(keys))],
            "license": ["CC-BY-2.0"] * len(keys),
            "license_url": ["https://creativecommons.org/licenses/by/2.0/"] * len(keys),
            "creator": [f"Creator {i}" for i in range(len(keys))],
            "title": [f"Photo {i}" if i % 3 else "" for i in range(len(keys))],
            "date_taken": ["2008-06-01 12:00:00"] * len(keys),
            "latitude": [48.85 if i % 2 else None for i in range(len(keys))],
            "longitude": [2.35 if i % 2 else None for i in range(len(keys))],
        }
    )


def write_candidates(path: Path, urls: dict[str, str]) -> Path:
    pq.write_table(candidates_table(urls), path)
    return path

"""A loopback HTTP server for the demo pool: the download stage fetches the photos over real HTTP.

``PoolServer`` serves a fixed set of files (URL path -> file) from 127.0.0.1 on a free port, or on a given port
(a resumed demo reuses the port its metadata was written for), in a background thread. Anything else is a 404.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from passkit.demo.yfcc_tsv import ServedPhoto

HOST = "127.0.0.1"


class PortInUseError(OSError):
    """The asked-for port is taken."""


class _Handler(BaseHTTPRequestHandler):
    server: _PoolHTTPServer

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        served = self.server.files.get(self.path.split("?", 1)[0])
        if served is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = served.file.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", served.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        self.server.requests += 1

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the download manifest records every outcome."""


class _PoolHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, files: dict[str, ServedPhoto]) -> None:
        self.files = files
        self.requests = 0
        super().__init__((HOST, port), _Handler)


class PoolServer:
    """Context manager: ``with PoolServer(served) as server: server.base_url``."""

    def __init__(self, served: Iterable[ServedPhoto] = (), port: int = 0) -> None:
        self.files = {item.url_path: item for item in served}
        self.port = port
        self._server: _PoolHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def requests(self) -> int:
        return self._server.requests if self._server else 0

    def serve(self, served: Iterable[ServedPhoto]) -> None:
        """Replace the set of served files (e.g. once the metadata naming this server's port is written)."""
        self.files = {item.url_path: item for item in served}
        if self._server is not None:
            self._server.files = self.files

    def start(self) -> PoolServer:
        try:
            self._server = _PoolHTTPServer(self.port, self.files)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(error.errno, f"port {self.port} on {HOST} is in use") from error
            raise
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="passkit-demo-pool", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> PoolServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

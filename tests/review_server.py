"""Runs `passkit review` as a real process (uvicorn on a free port) and reads the URL it prints."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

URL = re.compile(r"open (http://\S+)")


class ReviewServer:
    def __init__(self, folder: Path, *args: str) -> None:
        self.folder = folder
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []

    def start(self, timeout: float = 60) -> ReviewServer:
        command = [sys.executable, "-m", "passkit.cli", "review", str(self.folder), "--port", "0", *self.args]
        env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty as error:
                self.stop()
                raise RuntimeError(f"passkit review printed no URL: {''.join(self.output)}") from error
            if line is None:
                raise RuntimeError(f"passkit review exited: {''.join(self.output)}")
            self.output.append(line)
            match = URL.search(line)
            if match:
                self.url = match.group(1)
                return self

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

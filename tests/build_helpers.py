"""A small real pool for `passkit build` tests: images served over loopback HTTP, a url table, a config file."""

from __future__ import annotations

import csv
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filter_helpers import encode, photo
from passkit.core.shards import list_shards

VOLATILE_COLUMNS = ("elapsed",)  # wall-clock measurements: differ between any two runs


class ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)
        if self.server.latency:
            threading.Event().wait(self.server.latency)
        status, kind = (200, "image/jpeg") if body is not None else (404, "text/plain")
        body = body if body is not None else b"not here"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, files: dict[str, bytes], latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), ImageHandler)
        self.files = files
        self.latency = latency

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(files: dict[str, bytes], latency: float = 0.0) -> Iterator[ImageServer]:
    server = ImageServer(files, latency)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def real_photos(people_dev: Path, with_people: int, without: int) -> list[tuple[str, bytes, int]]:
    """(name, bytes, has_person) of the first labeled photos of each kind (read in place, never copied)."""
    chosen: list[tuple[str, bytes, int]] = []
    wanted = {1: with_people, 0: without}
    with (people_dev / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = int(row["has_person"])
            if wanted[label] > 0:
                wanted[label] -= 1
                chosen.append((row["file"], (people_dev / "images" / row["file"]).read_bytes(), label))
    return chosen


def make_pool(folder: Path, generated: int = 24, photos: list[tuple[str, bytes, int]] | None = None) -> dict:
    """Files to serve and a pool table (url list) that exercises every stage:

    generated textured photos (kept), real photos (people -> humans), a byte-identical copy (dedup:exact), an
    absent URL (download:http-404), a too-small image (image:too-small), a non-CC-BY record (license:not-allowed),
    a record without creator (attribution:incomplete), and creator "prolific" with 5 images (cap 3 -> cap:creator).
    The table's url column holds paths; :func:`write_pool` joins them to the server's base URL."""
    files: dict[str, bytes] = {}
    rows: list[dict] = []

    def add(name: str, data: bytes | None, creator: str = "", license_id: str = "CC-BY-2.0") -> None:
        if data is not None:
            files[f"/{name}"] = data
        index = len(rows)
        rows.append(
            {
                "id": f"p{index:04d}",
                "url": f"/{name}",
                "page_url": f"https://www.flickr.com/photos/someone/{index}",
                "license": license_id,
                "creator": creator or f"Photographer {index}",
                "title": f"Photo {index}",
            }
        )

    for seed in range(generated):
        creator = "prolific" if seed < 5 else ""
        add(f"gen/{seed}.jpg", encode(photo(seed, (160, 120)), "JPEG", quality=90), creator)
    for name, data, _ in photos or []:
        add(f"real/{name}", data)
    add("copy/0.jpg", files["/gen/7.jpg"])
    add("missing.jpg", None)
    add("tiny.jpg", encode(photo(99, (40, 30)), "JPEG", quality=90))
    add("nc.jpg", encode(photo(100, (160, 120)), "JPEG"), license_id="CC-BY-NC-2.0")
    add("anonymous.jpg", encode(photo(101, (160, 120)), "JPEG"))
    rows[-1]["creator"] = ""
    return {"files": files, "rows": rows}


def write_pool(path: Path, pool: dict, base: str) -> Path:
    rows = [{**row, "url": base + row["url"]} for row in pool["rows"]]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_config(
    path: Path,
    pool_path: Path,
    out: str = "run",
    *,
    humans: str = "fast",
    shard_size: int = 4,
    workers: int = 1,
    extra: str = "",
) -> Path:
    humans_table = "enabled = false" if humans == "off" else f'preset = "{humans}"'
    path.write_text(
        f"""out = "{out}"
[sources]
paths = ["{pool_path}"]
[cap]
max_per_creator = 3
[download]
shard_size = {shard_size}
concurrency = 4
timeout = 10.0
retries = 0
[filter.humans]
{humans_table}
[runner]
workers = {workers}
{extra}
""",
        encoding="utf-8",
    )
    return path


def _manifest(path: Path) -> list[dict]:
    table = pq.read_table(path)
    table = table.drop_columns([name for name in VOLATILE_COLUMNS if name in table.column_names])
    return table.to_pylist()


def snapshot(run: Path) -> dict:
    """What must be identical between two runs of the same config: candidates, every manifest (minus wall-clock
    columns), the sha256 of every download and filtered tar."""
    result: dict = {
        "candidates": pq.read_table(run / "candidates.parquet").to_pylist(),
        "rejects": pq.read_table(run / "candidates.rejects.parquet").to_pylist(),
    }
    for stage in ("download", "filtered", "filtered/per-shard"):
        for shard in list_shards(run / stage):
            result[f"{stage}/{shard.name}.parquet"] = _manifest(shard.manifest)
            if shard.tar.exists():
                result[f"{stage}/{shard.name}.tar"] = hashlib.sha256(shard.tar.read_bytes()).hexdigest()
    return result


def kept_keys(run: Path) -> list[str]:
    keys = []
    for shard in list_shards(run / "filtered"):
        table = pq.read_table(shard.manifest, columns=["key", "status"])
        keys += [row["key"] for row in table.to_pylist() if row["status"] == "kept"]
    return sorted(keys)

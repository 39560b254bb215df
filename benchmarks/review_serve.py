"""The review app on a large queue: index build, page requests and image serving, against named baselines.

Builds a filtered folder of N real-size JPEGs (default 2,000, 640x480, in 5 shards) and measures, in one run:

1. index: ``ReviewDataset.open`` cold (tar headers only) and warm (cached index) against reading every tar in full
   with passkit's streaming reader (what any scan-based lookup must do at least once);
2. one image by key: the indexed seek + read against a scan of its tar until the key (the no-index baseline),
   averaged over random keys;
3. over HTTP, against the real server (uvicorn, a subprocess): ``/api/items`` pages of 40 and thumbnails per
   second against the same thumbnails made in-process by a plain Pillow loop (open, draft, thumbnail, JPEG save);
4. 1,000 decisions POSTed one by one over HTTP against the same durable insert in-process (SQLite WAL,
   synchronous=FULL, one transaction per decision: the fsync floor), and against no fsync at all.

    python benchmarks/review_serve.py [--images 5000]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from passkit.core.shards import ShardPaths
from passkit.core.tar import read_shard
from passkit.review.app import make_thumbnail
from passkit.review.dataset import ReviewDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from review_helpers import make_review_dir
from review_server import ReviewServer


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def request(connection, method, path, token, body=None):
    headers = {"X-Passkit-Token": token}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "filtered"
        build = seconds(
            lambda: make_review_dir(folder, kept=args.images, rejected=0, shards=args.shards, size=(640, 480))
        )
        total_mb = sum(ShardPaths(folder, i).tar.stat().st_size for i in range(args.shards)) / 1e6
        print(f"{args.images:,} JPEGs of 640x480 in {args.shards} shards, {total_mb:,.0f} MB (built in {build:.0f} s)")

        full_read = seconds(lambda: [None for i in range(args.shards) for _ in read_shard(ShardPaths(folder, i).tar)])
        cold = seconds(lambda: ReviewDataset.open(folder))
        dataset = ReviewDataset.open(folder)
        warm = seconds(lambda: ReviewDataset.open(folder))
        print(f"baseline: read every tar in full        {full_read:7.3f} s  ratio 1.00x")
        print(f"index, cold (headers only)              {cold:7.3f} s  {full_read / cold:6.1f}x faster")
        print(f"index, warm (cached index.parquet)      {warm:7.3f} s  {full_read / warm:6.1f}x faster")

        keys = rng.sample(dataset.keys, 50)
        indexed = seconds(lambda: [dataset.read_image(key) for key in keys]) / len(keys)

        def scan(key: str) -> bytes:
            where = dataset.location(key)
            for sample in read_shard(ShardPaths(folder, where.shard).tar):
                if sample.key == key:
                    return sample.parts["jpg"]
            raise KeyError(key)

        scanned = seconds(lambda: [scan(key) for key in keys[:10]]) / 10
        print(f"baseline: scan the tar to the key       {scanned * 1e3:7.2f} ms/image  ratio 1.00x")
        print(
            f"indexed seek + read                     {indexed * 1e3:7.3f} ms/image  {scanned / indexed:6.0f}x faster"
        )

        sample_keys = rng.sample(dataset.keys, 200)
        originals = [dataset.read_image(key)[0] for key in sample_keys]
        plain = seconds(lambda: [_pillow_thumbnail(data) for data in originals])
        ours = seconds(lambda: [make_thumbnail(data) for data in originals])
        with ReviewServer(folder, "--reviewer", "bench", "--queue", "all") as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            pages = list(range(0, args.images - 40, max(40, args.images // 25)))
            page_time = seconds(
                lambda: [request(connection, "GET", f"/api/items?start={s}&count=40", server.token) for s in pages]
            )
            served = seconds(lambda: [request(connection, "GET", f"/img/{key}", server.token) for key in sample_keys])
            body = [json.dumps({"keys": [key], "label": "clean"}) for key in dataset.keys[:1000]]
            posted = seconds(lambda: [request(connection, "POST", "/api/decide", server.token, b) for b in body])
            connection.close()
        print(
            f"/api/items page of 40 over HTTP         {page_time / len(pages) * 1e3:7.2f} ms/page ({len(pages)} pages)"
        )
        print(f"baseline: Pillow thumbnails in-process  {len(originals) / plain:7.1f} images/s  ratio 1.00x")
        print(
            f"make_thumbnail in-process               {len(originals) / ours:7.1f} images/s  ratio {plain / ours:.2f}x"
        )
        rate = len(originals) / served
        print(f"thumbnails served over HTTP (cold)      {rate:7.1f} images/s  ratio {plain / served:.2f}x")

        inserts = {}
        for mode in ("FULL", "OFF"):
            db = sqlite3.connect(Path(tmp) / f"sync-{mode}.sqlite", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={mode}")
            db.execute("CREATE TABLE d (seq INTEGER PRIMARY KEY, key TEXT, label TEXT, t TEXT)")
            insert = "INSERT INTO d (key, label, t) VALUES (?, 'clean', 'x')"
            inserts[mode] = seconds(
                lambda db=db, insert=insert: [db.execute(insert, (k,)) for k in dataset.keys[:1000]]
            )
            db.close()
        full, off = inserts["FULL"], inserts["OFF"]
        print(f"baseline: SQLite insert, synchronous=FULL {1000 / full:7.0f} decisions/s  ratio 1.00x")
        print(f"POST /api/decide over HTTP (same fsync)  {1000 / posted:7.0f} decisions/s  ratio {full / posted:.2f}x")
        print(
            f"SQLite insert, synchronous=OFF (unsafe)  {1000 / off:7.0f} decisions/s  ({off / full:.4f} of FULL's time)"
        )


def _pillow_thumbnail(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (384, 384))
        picture = image.convert("RGB")
    picture.thumbnail((384, 384))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


if __name__ == "__main__":
    main()

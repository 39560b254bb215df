"""Release build and takedown speed against the I/O floor, measured in the same run.

Input: N real JPEGs (drawn here, 480-800 px, quality 90) in shards of 1,000, twice: as `passkit filter` leaves
them (metadata-free, ``privacy`` and ``sha256`` in the manifest) and unscrubbed (a quarter with GPS EXIF, no
``privacy`` column). Baseline: the bare re-pack a release cannot do without — stream every input shard with
``read_shard`` and write the samples into release-sized shards with ``ShardWriter`` (which fsyncs), no checks, no
metadata. passkit: ``build_release`` (sha256 check against the manifest, the lossless EXIF strip where the filter
did not scrub, header read, attribution and license check, metadata parquet/csv, per-shard manifests, SHA256SUMS
over every file, Croissant, datasheet with thumbnails, README, CHANGELOG, atomic publish). A takedown of 10 keys of
one release shard is compared with the full build of the same release.

    python benchmarks/release_build.py [--images 4000] [--shard-size 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from passkit.core.manifest import write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths, list_shards
from passkit.core.tar import ShardWriter, read_shard, write_shard
from passkit.release import ReleaseConfig, build_release, takedown
from passkit.stages.privacy import strip_jpeg


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(480, 800)), int(rng.integers(360, 600))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [127 + 90 * np.sin(rng.uniform(0.005, 0.05) * x + rng.uniform(0.005, 0.05) * y + c) for c in range(3)]
    pixels = np.clip(np.stack(channels, -1) + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    image = Image.fromarray(pixels, "RGB")
    if seed % 4 == 0:
        exif = Image.Exif()
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0)})
        image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_filtered(root: Path, images: int, per_shard: int, scrubbed: bool) -> int:
    """``scrubbed``: as `passkit filter` leaves it (metadata-free bytes, ``privacy`` in the manifest); else raw
    JPEGs (a quarter with GPS EXIF) and a manifest without ``privacy``, which the release strips itself."""
    variants = [jpeg(seed) for seed in range(64)]  # drawing is slow: 64 pictures, reused (a release does not dedup)
    if scrubbed:
        variants = [strip_jpeg(data) or data for data in variants]
    total = 0
    for shard_index in range(-(-images // per_shard)):
        samples, rows = [], []
        for index in range(shard_index * per_shard, min(images, (shard_index + 1) * per_shard)):
            key = f"yfcc-{10_000_000 + index}"
            data = variants[index % len(variants)]
            meta = {"key": key, "source": "yfcc", "photo_id": key[5:], "creator": f"creator {index % 300}",
                    "title": f"photo {index}", "license": "CC-BY-2.0", "url": f"https://x.example/{key}.jpg",
                    "license_url": "https://creativecommons.org/licenses/by/2.0/",
                    "page_url": f"https://www.flickr.com/photos/u/{key[5:]}/"}  # fmt: skip
            samples.append(Sample.build(key, jpg=data, json=meta))
            rows.append({"key": key, "status": "kept", "reason": "", "sha256": hashlib.sha256(data).hexdigest(),
                         **({"privacy": "stripped"} if scrubbed else {})})  # fmt: skip
            total += len(data)
        shard = ShardPaths(root, shard_index)
        write_shard(shard.tar, samples)
        write_manifest(shard.manifest, rows)
    return total


def bare_repack(source: Path, out: Path, shard_size: int) -> None:
    out.mkdir()
    writer, index, count = None, 0, 0
    for shard in list_shards(source):
        for sample in read_shard(shard.tar):
            if writer is None:
                writer = ShardWriter(out / f"pass-{index:05d}.tar")
            writer.write(sample)
            count += 1
            if count % shard_size == 0:
                writer.close()
                writer, index = None, index + 1
    if writer is not None:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        size = make_filtered(root / "filtered", args.images, 1000, scrubbed=True)
        make_filtered(root / "foreign", args.images, 1000, scrubbed=False)
        print(f"{args.images:,} JPEGs, {size / 1e6:.1f} MB, in {-(-args.images // 1000)} input shards")
        cfg = ReleaseConfig(shard_size=args.shard_size)
        timings: dict[str, float] = {}

        def timed(name: str, run: Callable[..., object], *arguments: object) -> None:
            start = time.perf_counter()
            run(*arguments)
            timings[name] = min(timings.get(name, float("inf")), time.perf_counter() - start)

        for attempt in range(2):  # interleaved, best of 2: every side sees the same cache state and load
            timed("bare", bare_repack, root / "filtered", root / f"bare-{attempt}", args.shard_size)
            timed("build", build_release, root / "filtered", root / f"release-{attempt}", cfg)
            timed("foreign", build_release, root / "foreign", root / f"foreign-{attempt}", cfg)
        keys = [f"yfcc-{10_000_000 + index}" for index in range(0, min(args.shard_size, args.images), 97)][:10]
        timed("takedown", takedown, root / "release-0", keys, root / "v2")
    bare, build, foreign = timings["bare"], timings["build"], timings["foreign"]
    shards = -(-args.images // args.shard_size)
    print(f"baseline bare re-pack (read_shard -> ShardWriter)        {args.images / bare:6.0f} images/s  ratio 1.00x")
    print(f"build_release after passkit filter (sha256 checked)     {args.images / build:6.0f} images/s  "
          f"ratio {bare / build:.2f}x")  # fmt: skip
    print(f"build_release of unscrubbed shards (lossless EXIF strip) {args.images / foreign:6.0f} images/s  "
          f"ratio {bare / foreign:.2f}x")  # fmt: skip
    print(f"takedown of {len(keys)} keys in 1 of {shards} release shards: {timings['takedown']:.2f} s = "
          f"{timings['takedown'] / build:.2f}x the full build ({build:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()

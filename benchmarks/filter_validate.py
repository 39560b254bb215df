"""Throughput of the filter's image stages against the decode limit, on the same files, cores and load.

    python benchmarks/filter_validate.py [--count 5000] [--cache DIR] [--repeat 2]

Builds ``count`` real-size JPEGs (default 5,000) from the people-dev photos (../shared/data/people-dev; random
crops of 60-100 %, long side 500-1024 px, quality 80-95; 30 % carry EXIF with GPS and a camera serial, 5 % an EXIF
rotation) — or, where those photos are absent, from generated textures — and caches them on disk. Then it times,
alternating, in one process:

* baseline: ``Image.open(BytesIO(data)).load()`` over every file (the decode limit);
* passkit:  validate -> privacy -> dedup measurement over the same files in batches of 32, plus the global dedup
  decision over all of them, with the full-decode pixel check of identical-pHash groups (default config: stored
  size kept; JPEGs that are stored by a lossless strip are
  DCT-scaled at decode to the 128 px the analysis needs, the others decoded in full);
* for reference: ``exact_key="pixels"`` (every image decoded in full and its pixels hashed) and ``--resize 500``
  (most images re-encoded).

Times are the best of ``--repeat`` alternating rounds.

Then the near-duplicate index: all pairs within the default radius among N synthetic 64-bit hashes (1 % planted
near copies) with :class:`HammingIndex`, against numpy brute force (a vectorised popcount over all pairs),
extrapolated from 1,000 query rows timed in the same run.

Prints images/s for each and the ratio passkit / baseline (target >= 0.7x).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from passkit.core.sample import Sample
from passkit.stages.dedup import DedupConfig, HammingIndex, confirm_pixel_exact, dedup_decisions, dedup_measure_stage
from passkit.stages.privacy import PrivacyConfig, privacy_stage
from passkit.stages.validate import ValidateConfig, validate_stage

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared"))
PHOTOS = SHARED / "data" / "people-dev" / "images"


def _exif(rng: np.random.Generator, orientation: int | None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    if orientation is not None:
        exif[0x0112] = orientation
    exif.get_ifd(0x8825).update({1: "N", 2: (float(rng.integers(0, 80)), 12.0, 3.5), 3: "E", 4: (4.0, 53.0, 0.0)})
    exif.get_ifd(0x8769).update({0xA431: f"SN{rng.integers(10**8)}"})
    return exif.tobytes()


def _sources() -> list[Image.Image]:
    files = sorted(PHOTOS.glob("*.jpg"))
    if files:
        return [Image.open(f).convert("RGB") for f in files]
    rng = np.random.default_rng(0)
    images = []
    for _ in range(64):
        y, x = np.mgrid[0:768, 0:1024].astype(np.float64)
        channels = [127 + 90 * np.sin(rng.uniform(0.005, 0.05) * x + rng.uniform(0.005, 0.05) * y) for _ in range(3)]
        noisy = np.stack(channels, -1) + rng.normal(0, 20, (768, 1024, 3))
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB"))
    return images


def build_corpus(count: int, cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    files = [cache / f"{i:05d}.jpg" for i in range(count)]
    if all(f.exists() for f in files):
        return files
    sources = _sources()
    rng = np.random.default_rng(1)
    for i, path in enumerate(files):
        if path.exists():
            continue
        image = sources[i % len(sources)]
        w, h = image.size
        scale = rng.uniform(0.77, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((left, top, left + cw, top + ch))
        long_side = int(rng.choice([500, 640, 800, 1024]))
        ratio = long_side / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * ratio)), max(1, round(crop.height * ratio))), Image.BICUBIC)
        draw = rng.random()
        options: dict[str, object] = {"quality": int(rng.integers(80, 96))}
        if draw < 0.05:
            options["exif"] = _exif(rng, int(rng.choice([6, 8, 3])))
        elif draw < 0.35:
            options["exif"] = _exif(rng, None)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", **options)
        path.write_bytes(buffer.getvalue())
    return files


def baseline(datas: list[bytes]) -> float:
    start = time.perf_counter()
    for data in datas:
        Image.open(io.BytesIO(data)).load()
    return time.perf_counter() - start


def passkit_stages(
    datas: list[bytes], resize: int | None = None, exact_key: str = "stored", batch: int = 32
) -> tuple[float, dict[str, int]]:
    validate_cfg = ValidateConfig(decode_max_side=resize, analysis_side=None if exact_key == "pixels" else 128)
    privacy_cfg = PrivacyConfig(resize_max_side=resize)
    dedup_cfg = DedupConfig(exact_key=exact_key)
    actions: dict[str, int] = {}
    tables = []
    keys = [f"b-{i:06d}" for i in range(len(datas))]
    start = time.perf_counter()
    for offset in range(0, len(datas), batch):
        samples = [
            Sample(f"b-{offset + i:06d}", {"jpg": data, "json": b'{"creator":"c","latitude":1.0}'})
            for i, data in enumerate(datas[offset : offset + batch])
        ]
        validated = validate_stage(samples, validate_cfg)
        private = privacy_stage(validated.kept, privacy_cfg)
        measured = dedup_measure_stage(private.kept, dedup_cfg)
        tables.append(measured.rows)
        for action in private.rows.column("privacy").to_pylist():
            actions[action] = actions.get(action, 0) + 1
    import pyarrow as pa

    measured_rows = pa.concat_tables(tables)
    decisions = dedup_decisions(measured_rows, dedup_cfg)
    if exact_key == "stored":  # the global pass decodes only identical-pHash groups in full to compare pixels
        stored = {sample_key: data for sample_key, data in zip(keys, datas, strict=True)}
        decisions = confirm_pixel_exact(
            decisions, measured_rows, lambda wanted: ((k, stored[k]) for k in wanted), validate_cfg.limits
        )
    actions["near/exact decisions"] = len(decisions)
    return time.perf_counter() - start, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/passkit-bench-filter"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--index-sizes", default="100000,1000000", help="hash counts for the index benchmark ('' skips)"
    )
    args = parser.parse_args()
    files = build_corpus(args.count, args.cache)
    datas = [f.read_bytes() for f in files]
    sizes = [Image.open(io.BytesIO(d)).size for d in datas[:500]]
    megapixels = statistics.mean(w * h for w, h in sizes) / 1e6
    origin = "people-dev photos" if PHOTOS.is_dir() else "generated textures"
    kib = sum(map(len, datas)) / len(datas) / 1024
    print(f"{len(datas)} JPEGs from {origin}, mean {megapixels:.2f} MP, {kib:.0f} KiB; files in {args.cache}")
    runs = {
        "baseline Pillow open+load (decode limit)": lambda: baseline(datas),
        "validate+privacy+dedup, default config": lambda: passkit_stages(datas)[0],
        "  same, exact_key=pixels (full decode)": lambda: passkit_stages(datas, exact_key="pixels")[0],
        "  same, --resize 500 (re-encodes most)": lambda: passkit_stages(datas, resize=500)[0],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):  # alternate, so both sides see the same machine load
        for name, run in runs.items():
            times[name].append(run())
    print(f"privacy actions (default config): {passkit_stages(datas[:1000])[1]} (first 1000)")
    base = len(datas) / min(times["baseline Pillow open+load (decode limit)"])
    for name, values in times.items():
        rate = len(datas) / min(values)
        target = "  (target >= 0.70x)" if "default" in name else ""
        print(f"{name:42s} {rate:8.1f} images/s  ratio {rate / base:.2f}x{target}")
    if args.index_sizes:
        index_benchmark([int(size) for size in args.index_sizes.split(",")], DedupConfig().near_threshold)


def index_benchmark(sizes: list[int], radius: int) -> None:
    rng = np.random.default_rng(0)
    for size in sizes:
        hashes = rng.integers(0, 2**63, size, dtype=np.uint64) | (rng.integers(0, 2, size, dtype=np.uint64) << 63)
        planted = size // 100
        flips = [sum(1 << int(bit) for bit in rng.choice(64, 4, replace=False)) for _ in range(planted)]
        hashes[-planted:] = hashes[:planted] ^ np.array(flips, dtype=np.uint64)
        start = time.perf_counter()
        left, _, _ = HammingIndex(hashes, radius).search(hashes, exclude_self=True)
        indexed = time.perf_counter() - start
        start = time.perf_counter()
        for row in range(0, 1000, 100):
            np.bitwise_count(hashes[row : row + 100, None] ^ hashes[None, :])
        brute = (time.perf_counter() - start) * size / 1000 / 2
        print(f"near index, {size:>9,} hashes, radius {radius}: {indexed:8.1f} s ({len(left):,} pairs); "
              f"numpy all-pairs popcount ~{brute:8.0f} s (extrapolated); {brute / indexed:.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()

"""Speed of the humans stage against raw onnxruntime throughput of the same models, same threads.

Over N real-size JPEGs (>= 1,000 by default), made untimed into a temporary directory outside the repo from the
people-dev photos: each photo re-encoded at the sizes a Flickr download has (long side 1024 px, quality 90; and a
crop of 70-100 % per axis at long side 2048 px, quality 88), the (photo, size) pairs in a fixed shuffled order:
  stage   humans_stage on Samples holding the JPEG bytes: decoding (JPEG draft), views, pre-processing, inference,
          box decoding, fusion and the manifest rows — what a pipeline worker runs;
  raw     the same models' session.run alone on the same inputs already decoded, cropped, resized and laid out as
          tensors (prepared untimed, chunk by chunk so memory stays bounded); for zoom passes, the same candidate
          windows the stage looks at (found by running the fixed passes untimed).
Prints images/s of both, the ratio stage/raw (target >= 0.85x) and images/s per core, for each preset; beside it the
same ratio in process CPU time (one thread: what each side cost the core, less swayed by other jobs on a shared
machine than the wall clock).

    python benchmarks/human_filter_speed.py [--images 1000] [--presets fast,default] [--threads 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from passkit.core.sample import Sample
from passkit.detect.image import decode_for_detection
from passkit.detect.presets import get_preset
from passkit.detect.views import crops, zoom_count
from passkit.stages.humans import HumansConfig, _ensemble, humans_stage

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))


SIZES = ((1024, 90, False), (2048, 88, True))  # (long side px, JPEG quality, random crop first)


def real_size_jpegs(files: list[Path], count: int, out: Path, seed: int = 0) -> list[Path]:
    """``count`` JPEGs written to ``out``: the photos re-encoded at each of ``SIZES`` (cycled beyond that)."""
    rng = random.Random(seed)
    pairs = [(index, size) for index in range(len(files)) for size in range(len(SIZES))]
    rng.shuffle(pairs)
    paths = []
    for number in range(count):
        index, size = pairs[number % len(pairs)]
        side, quality, crop = SIZES[size]
        with Image.open(files[index]) as source:
            image = source.convert("RGB")
        if crop:
            width, height = round(image.width * rng.uniform(0.7, 1.0)), round(image.height * rng.uniform(0.7, 1.0))
            left, top = rng.randint(0, image.width - width), rng.randint(0, image.height - height)
            image = image.crop((left, top, left + width, top + height))
        ratio = side / max(image.size)
        image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        path = out / f"{number:05d}-{files[index].stem}-{side}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def raw_seconds(preset_name: str, photos: list[bytes], threads: int, chunk: int = 25) -> tuple[float, float]:
    """Wall and process CPU seconds of the models' ``session.run`` alone on the photos' prepared tensors."""
    preset = get_preset(preset_name)
    ensemble = _ensemble(preset.passes, threads, "cpu", 5)
    total = cpu = 0.0
    for start in range(0, len(photos), chunk):
        tensors = []  # (detector, tensor): prepared outside the timed region
        for data in photos[start : start + chunk]:
            image = decode_for_detection(data, preset.decode_max_side)
            height, width = image.pixels.shape[:2]
            boxes = ensemble(image).boxes if any(item.zoom for item in preset.passes) else []
            for item in preset.passes:
                detector = ensemble.detectors[item.model]
                if item.zoom:  # the windows the stage's zoom looks at (found by running the fixed passes, untimed)
                    for look in ensemble.zoom_plan(image, boxes, zoom_count(item.view)):
                        tensors.append((detector, detector.prepare(look.pixels)[0]))
                    continue
                for x, y, w, h in crops(width, height, item.view):
                    tensors.append((detector, detector.prepare(image.pixels[y : y + h, x : x + w])[0]))
        began, began_cpu = time.perf_counter(), time.process_time()
        for detector, tensor in tensors:
            detector.infer(tensor)
        total += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    return total, cpu


def stage_seconds(preset_name: str, photos: list[bytes], threads: int, batch: int = 32) -> tuple[float, float]:
    """Wall and process CPU seconds of the humans stage on the photos (models loaded before timing)."""
    cfg = HumansConfig(preset=preset_name, threads=threads, device="cpu")
    samples = [Sample(f"bench-{i:06d}", {"jpg": data}) for i, data in enumerate(photos)]
    humans_stage(samples[:1], cfg)  # load models before timing (once per worker process in a pipeline)
    began, began_cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(samples), batch):
        result = humans_stage(samples[start : start + batch], cfg)
        assert result.rows.num_rows == len(samples[start : start + batch])
    return time.perf_counter() - began, time.process_time() - began_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--presets", default="fast,default")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (= cores used)")
    parser.add_argument("--chunk", type=int, default=50, help="images per stage/raw alternation")
    parser.add_argument("--workdir", type=Path, help="where to write the JPEGs (default: a temporary directory)")
    args = parser.parse_args()
    if not (DEV / "images").is_dir():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    files = sorted((DEV / "images").glob("*.jpg"))
    with tempfile.TemporaryDirectory(prefix="passkit-speed-", dir=args.workdir) as workdir:
        paths = real_size_jpegs(files, args.images, Path(workdir))
        run(paths, args, len(files))


def run(paths: list[Path], args: argparse.Namespace, distinct: int) -> None:
    mean_kib = sum(path.stat().st_size for path in paths) / len(paths) / 1024
    sides = sorted({int(path.stem.rsplit("-", 1)[1]) for path in paths})
    print(
        f"{len(paths)} JPEGs ({distinct} people-dev photos re-encoded, long side {sides} px, mean {mean_kib:.0f} KiB), "
        f"threads={args.threads}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        flush=True,
    )
    print(
        f"{'preset':8s} {'stage img/s':>12s} {'raw ORT img/s':>14s} {'ratio':>7s} {'stage img/s/core':>17s} "
        f"{'cpu-time ratio':>15s}"
    )
    for name in args.presets.split(","):
        # Interleave chunks so both sides see the same background load on a shared machine.
        stage = raw = stage_cpu = raw_cpu = 0.0
        for start in range(0, len(paths), args.chunk):
            part = [path.read_bytes() for path in paths[start : start + args.chunk]]
            wall, cpu = stage_seconds(name, part, args.threads)
            stage, stage_cpu = stage + wall, stage_cpu + cpu
            wall, cpu = raw_seconds(name, part, args.threads)
            raw, raw_cpu = raw + wall, raw_cpu + cpu
        stage_rate, raw_rate = len(paths) / stage, len(paths) / raw
        print(
            f"{name:8s} {stage_rate:12.2f} {raw_rate:14.2f} {stage_rate / raw_rate:6.3f}x "
            f"{stage_rate / args.threads:17.2f} {raw_cpu / stage_cpu:14.3f}x   "
            f"(load average {' '.join(f'{v:.2f}' for v in os.getloadavg())})",
            flush=True,
        )


if __name__ == "__main__":
    main()

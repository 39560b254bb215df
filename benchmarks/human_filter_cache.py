"""Per-pass detections on people-dev, computed once with the package's own detectors and cached outside the repo.

For each pass (model @ view) and photo it stores what the humans stage keeps in the manifest: the top boxes of the
pass (score and box in original pixels, best first, ``--boxes`` of them) plus the image size. The combiner fit
(``human_filter_fit.py``) and the HOG evaluation read these caches, so refitting never re-runs models.

    python benchmarks/human_filter_cache.py yolox_nano@full yolox_nano@tiles4 ... [--cache DIR] [--decode 1024]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from passkit.detect.ensemble import Ensemble, Pass
from passkit.detect.image import decode_for_detection

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))
CACHE = Path("/tmp/passkit-human-cache/boxes")
BOXES = 5  # = HumansConfig.boxes_per_pass: features may only use what the manifest keeps


def dev_files() -> tuple[list[str], list[bool]]:
    if not (DEV / "labels.csv").is_file():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    with (DEV / "labels.csv").open(newline="") as handle:
        labeled = sorted(csv.DictReader(handle), key=lambda row: row["file"])
    return [row["file"] for row in labeled], [row["has_person"] == "1" for row in labeled]


def cache_path(feature: str, decode_side: int, cache: Path = CACHE) -> Path:
    return cache / f"{feature}@{decode_side}.json"


def load(feature: str, decode_side: int, files: list[str], cache: Path = CACHE) -> dict[str, dict] | None:
    path = cache_path(feature, decode_side, cache)
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored if all(name in stored for name in files) else None


def compute(feature: str, decode_side: int, files: list[str], cache: Path = CACHE, threads: int = 1) -> dict:
    stored = load(feature, decode_side, files, cache)
    if stored is not None:
        return stored
    item = Pass(*feature.split("@"))
    ensemble = Ensemble([item], threads=threads, device="cpu", boxes_per_pass=BOXES)
    stored, began = {}, time.perf_counter()
    for index, name in enumerate(files):
        image = decode_for_detection((DEV / "images" / name).read_bytes(), decode_side)
        found = ensemble.detect_views(image, item)
        stored[name] = {
            "size": [image.width, image.height],
            "boxes": [
                [round(float(s), 5), *(round(float(v), 1) for v in box)]
                for box, s in zip(found.boxes[:BOXES], found.scores[:BOXES], strict=False)
            ],
        }
        if index % 100 == 0:
            print(f"  {feature}: {index}/{len(files)} {time.perf_counter() - began:.0f}s", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache_path(feature, decode_side, cache)
    path.with_suffix(".tmp").write_text(json.dumps(stored))
    path.with_suffix(".tmp").replace(path)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("features", nargs="+", help="model@view, e.g. yolox_nano@tiles3")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--decode", type=int, default=1024)
    args = parser.parse_args()
    files, _ = dev_files()
    for feature in args.features:
        began = time.perf_counter()
        compute(feature, args.decode, files, args.cache)
        print(f"{feature}@{args.decode}: {time.perf_counter() - began:.0f}s", flush=True)


if __name__ == "__main__":
    main()

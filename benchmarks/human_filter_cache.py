"""Per-pass detections on people-dev, computed once with the package's own detectors and cached outside the repo.

For each pass (model @ view) and photo it stores what the humans stage keeps in the manifest: the top boxes of the
pass (score and box in original pixels, best first, ``--boxes`` of them) plus the image size. The combiner fit
(``human_filter_fit.py``) and the HOG evaluation read these caches, so refitting never re-runs models.

A zoom pass (``model@zoomK``) depends on the person passes whose boxes are its candidates (``--seeds``, default:
the person passes of the ``default`` preset): its cache holds, per photo, the confirmation of each of the first
``ZOOM_CACHED`` candidates (built from the seed caches rounded as the manifest stores them), so every K up to that
is derived without running the model again, exactly as the stage would merge them.

    python benchmarks/human_filter_cache.py yolox_nano@full yolox_nano@tiles4 ... [--cache DIR] [--decode 1024]
    python benchmarks/human_filter_cache.py nanodet_m@zoom6 --seeds yolox_nano@full,yolox_nano@tiles2,fastestdet@full
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from passkit.detect.ensemble import Ensemble, Pass, merge_zoom, zoom_looks
from passkit.detect.image import decode_for_detection
from passkit.detect.views import ZOOM_CONTEXT, ZOOM_MIN_SIDE, is_zoom, zoom_count

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))
CACHE = Path("/tmp/passkit-human-cache/boxes")
BOXES = 5  # = HumansConfig.boxes_per_pass: features may only use what the manifest keeps
ZOOM_CACHED = 8  # candidates whose confirmations a zoom cache holds (any zoomK with K <= this is derived)


def dev_files() -> tuple[list[str], list[bool]]:
    if not (DEV / "labels.csv").is_file():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    with (DEV / "labels.csv").open(newline="") as handle:
        labeled = sorted(csv.DictReader(handle), key=lambda row: row["file"])
    return [row["file"] for row in labeled], [row["has_person"] == "1" for row in labeled]


GEOMETRY = (ZOOM_CONTEXT, ZOOM_MIN_SIDE)  # zoom windows: context (x the candidate's long side), min side (px)


def cache_path(
    feature: str,
    decode_side: int,
    cache: Path = CACHE,
    seeds: tuple[str, ...] = (),
    geometry: tuple[float, int] = GEOMETRY,
) -> Path:
    if seeds:
        digest = hashlib.sha256(",".join(sorted(seeds)).encode()).hexdigest()[:10]
        model = feature.split("@")[0]
        windows = f"c{geometry[0]:g}-m{geometry[1]}"  # the window geometry the confirmations were found with
        return cache / f"{model}@zoom{ZOOM_CACHED}@{decode_side}+{windows}+seeds-{digest}.json"
    return cache / f"{feature}@{decode_side}.json"


def _read(path: Path, files: list[str]) -> dict[str, dict] | None:
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored if all(name in stored for name in files) else None


def _write(path: Path, stored: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(stored))
    path.with_suffix(".tmp").replace(path)


def load(feature: str, decode_side: int, files: list[str], cache: Path = CACHE) -> dict[str, dict] | None:
    return _read(cache_path(feature, decode_side, cache), files)


def compute(
    feature: str,
    decode_side: int,
    files: list[str],
    cache: Path = CACHE,
    threads: int = 1,
    seeds: tuple[str, ...] = (),
    geometry: tuple[float, int] = GEOMETRY,
) -> dict:
    """The cached boxes of pass ``feature`` per photo (computed and stored when missing). A zoom pass needs the
    person passes whose boxes are its candidates (``seeds``) and may use another window ``geometry``."""
    item = Pass(*feature.split("@"))
    if item.zoom:
        if not seeds:
            raise ValueError(f"{feature}: a zoom pass needs its seed passes")
        return _zoom_boxes(item, _zoom_matches(item, decode_side, files, cache, threads, tuple(seeds), geometry))
    stored = load(feature, decode_side, files, cache)
    if stored is not None:
        return stored
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
    _write(cache_path(feature, decode_side, cache), stored)
    return stored


def seed_boxes(seeds: tuple[str, ...], decode_side: int, files: list[str], cache: Path, threads: int) -> dict:
    """Per photo, the candidates of each seed pass rounded exactly as the manifest stores them (what the stage's
    zoom reads)."""
    stored = {seed: compute(seed, decode_side, files, cache, threads) for seed in seeds}
    return {
        name: [[(round(b[0], 4), tuple(b[1:])) for b in stored[seed][name]["boxes"]] for seed in seeds]
        for name in files
    }


def _zoom_matches(
    item: Pass,
    decode_side: int,
    files: list[str],
    cache: Path,
    threads: int,
    seeds: tuple[str, ...],
    geometry: tuple[float, int] = GEOMETRY,
) -> dict:
    path = cache_path(item.feature, decode_side, cache, seeds, geometry)
    stored = _read(path, files)
    if stored is not None:
        return stored
    candidates = seed_boxes(seeds, decode_side, files, cache, threads)
    looking = Pass(item.model, f"zoom{ZOOM_CACHED}")
    ensemble = Ensemble([looking], threads=threads, device="cpu", boxes_per_pass=BOXES)
    stored, began = {}, time.perf_counter()
    for index, name in enumerate(files):
        image = decode_for_detection((DEV / "images" / name).read_bytes(), decode_side)
        looks = zoom_looks(image, candidates[name], ZOOM_CACHED, ensemble.zoom_input_side, *geometry)
        matches = ensemble.zoom_matches(looking, looks)
        stored[name] = {
            "size": [image.width, image.height],
            "matches": [None if m is None else [round(m[0], 5), *(round(v, 1) for v in m[1])] for m in matches],
            "windows": [list(look.window) for look in looks],
        }
        if index % 100 == 0:
            print(f"  {item.model}@zoom: {index}/{len(files)} {time.perf_counter() - began:.0f}s", file=sys.stderr)
    _write(path, stored)
    return stored


def _zoom_boxes(item: Pass, matches: dict) -> dict:
    """A zoomK pass's boxes from the cached confirmations of its first K candidates, merged as the stage does."""
    count, out = zoom_count(item.view), {}
    for name, record in matches.items():
        confirmed = [None if m is None else (m[0], tuple(m[1:])) for m in record["matches"][:count]]
        found = merge_zoom(confirmed)
        out[name] = {
            "size": record["size"],
            "boxes": [
                [round(float(s), 5), *(round(float(v), 1) for v in box)]
                for box, s in zip(found.boxes[:BOXES], found.scores[:BOXES], strict=False)
            ],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("features", nargs="+", help="model@view, e.g. yolox_nano@tiles3")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--decode", type=int, default=1024)
    parser.add_argument("--seeds", help="zoom passes: the person passes whose boxes are candidates (comma-separated)")
    parser.add_argument("--zoom-context", type=float, default=ZOOM_CONTEXT, help="zoom window: x the candidate's side")
    parser.add_argument("--zoom-min-side", type=int, default=ZOOM_MIN_SIDE, help="zoom window: at least this (px)")
    args = parser.parse_args()
    files, _ = dev_files()
    for feature in args.features:
        began = time.perf_counter()
        seeds = tuple(args.seeds.split(",")) if args.seeds else ()
        if is_zoom(feature.split("@")[-1]) and not seeds:
            from passkit.detect.presets import PRESETS

            seeds = PRESETS["default"].zoom_seeds
        compute(feature, args.decode, files, args.cache, seeds=seeds, geometry=(args.zoom_context, args.zoom_min_side))
        print(f"{feature}@{args.decode}: {time.perf_counter() - began:.0f}s", flush=True)


if __name__ == "__main__":
    main()

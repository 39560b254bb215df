"""Cross-validated effect of candidate improvements to ``default``'s combiner, with the protocol of
``human_filter_fit.py`` (repeated stratified 5-fold CV, coefficients and threshold refitted without the held-out
fold, threshold from out-of-fold probabilities), each fitted for recall 0.999 / 0.995 / 0.99:

  shipped          the shipped feature set (``max`` of every pass), the reference
  flip-sep         + every pass on the horizontally mirrored photo, as its own features
  flip-max         every pass's boxes = those of the photo and of its mirror image together (best of both)
  flip-mean        every pass's best score = the mean of the photo's and the mirror's
  zoom64-extra     + a second zoom scale: YOLOX-Nano on the same 4 candidates in windows >= 64 px (~6.5x enlarged)
  zoom96-extra     + the same with windows >= 96 px (~4.3x)
  zoom64-instead   the 64 px zoom instead of the shipped 192 px one
  zoom-agree       + agreement of the two zoom scales (both confirm the same place)
  tiles4           + YOLOX-Nano on a 4x4 tiling
  agree-views      + agreement of the zoom with YOLOX 3x3 tiles and with NanoDet 2x2 tiles

Mirrored detections are computed once with the package's own ensemble (the zoom of the mirrored photo re-examines
the mirrored photo's own candidates) and cached beside the other caches; every other pass comes from
``human_filter_cache.py``'s caches.

    python benchmarks/human_filter_ideas.py [--ideas shipped,flip-max,...] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from human_filter_cache import BOXES, CACHE, DEV, compute, dev_files
from human_filter_fit import RULES, load_images, print_cv
from passkit.detect.calibrate import cross_validate
from passkit.detect.ensemble import Ensemble
from passkit.detect.features import PassBoxes
from passkit.detect.image import DecodedImage, decode_for_detection
from passkit.detect.presets import PRESETS

MIRROR = "~mirror"  # suffix of a pass run on the mirrored photo
TARGETS = (0.999, 0.995, 0.99)
IDEAS = (
    "shipped",
    "flip-sep",
    "flip-max",
    "flip-mean",
    "zoom64-extra",
    "zoom96-extra",
    "zoom64-instead",
    "zoom-agree",
    "tiles4",
    "agree-views",
)


def mirrored(files: list[str], decode_side: int) -> dict:
    """Per photo, every ``default`` pass's top boxes on the mirrored photo, mapped back to the photo's pixels."""
    path = CACHE / f"default-mirrored@{decode_side}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if all(name in stored for name in files):
            return stored
    ensemble = Ensemble(list(PRESETS["default"].passes), threads=1, device="cpu", boxes_per_pass=BOXES)
    stored, began = {}, time.perf_counter()
    for index, name in enumerate(files):
        image = decode_for_detection((DEV / "images" / name).read_bytes(), decode_side)
        # No stored bytes: the zoom cuts its windows from the mirrored decode (people-dev photos are <= 640 px, so
        # the detection decode already has every pixel).
        mirror = DecodedImage(image.pixels[:, ::-1].copy(), image.width, image.height, None)
        passes: dict[str, list] = {}
        for box in ensemble(mirror).boxes:
            x1, y1, x2, y2 = box.box
            back = (image.width - x2, y1, image.width - x1, y2)  # the mirror's box in the photo's pixels
            passes.setdefault(box.feature, []).append([round(box.score, 5), *(round(v, 1) for v in back)])
        stored[name] = {"size": [image.width, image.height], "passes": passes}
        if index % 100 == 0:
            print(f"  mirrored: {index}/{len(files)} {time.perf_counter() - began:.0f}s", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    return stored


def with_passes(images: list[PassBoxes], extra: dict[str, dict]) -> list[PassBoxes]:
    """``images`` plus the passes of ``extra`` (feature -> per-photo list of (score, box), best first)."""
    out = []
    for index, image in enumerate(images):
        boxes = dict(image.boxes)
        for feature, per_image in extra.items():
            boxes[feature] = per_image[index]
        out.append(PassBoxes(boxes, image.width, image.height))
    return out


def combined(images: list[PassBoxes], passes: list[str], how: str) -> list[PassBoxes]:
    """Every pass's boxes replaced by the photo's and the mirror's together (``max``) or the mean best score."""
    out = []
    for image in images:
        boxes = dict(image.boxes)
        for p in passes:
            own, mirror = list(image.of(p)), list(image.of(p + MIRROR))
            if how == "max":
                boxes[p] = sorted(own + mirror, key=lambda b: -b[0])[:BOXES]
            else:
                first = own[0][0] if own else 0.0
                second = mirror[0][0] if mirror else 0.0
                place = (own or mirror or [(0.0, (0.0, 0.0, 0.0, 0.0))])[0][1]
                boxes[p] = [((first + second) / 2, place), *own[1:BOXES]]
        out.append(PassBoxes(boxes, image.width, image.height))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ideas", default=",".join(IDEAS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--C", type=float, default=0.03)
    args = parser.parse_args()
    files, truth = dev_files()
    labels = np.array(truth)
    preset = PRESETS["default"]
    side, seeds = preset.decode_max_side, preset.zoom_seeds
    passes = [p.feature for p in preset.passes]
    images = load_images(passes, files, side, seeds)
    shipped = [f"max:{p}" for p in passes]
    zoom = next(p for p in passes if "@zoom" in p)
    rounded = lambda stored: [[(round(b[0], 4), tuple(b[1:])) for b in stored[n]["boxes"]] for n in files]  # noqa: E731
    small_zoom = f"{zoom}s64"  # the same zoom pass with windows >= 64 px
    extra = {small_zoom: rounded(compute(zoom, side, files, seeds=seeds, geometry=(3.0, 64)))}
    extra[f"{zoom}s96"] = rounded(compute(zoom, side, files, seeds=seeds, geometry=(3.0, 96)))
    extra["yolox_nano@tiles4"] = rounded(compute("yolox_nano@tiles4", side, files))
    ideas = args.ideas.split(",")
    if any(idea.startswith("flip") for idea in ideas):
        stored = mirrored(files, side)
        for p in passes:
            extra[p + MIRROR] = [
                [(round(b[0], 4), tuple(b[1:])) for b in sorted(stored[n]["passes"].get(p, []), key=lambda b: -b[0])]
                for n in files
            ]
    images = with_passes(images, extra)
    variants = {
        "shipped": (images, shipped),
        "flip-sep": (images, shipped + [f"max:{p}{MIRROR}" for p in passes]),
        "flip-max": (lambda: combined(images, passes, "max"), shipped),
        "flip-mean": (lambda: combined(images, passes, "mean"), shipped),
        "zoom64-extra": (images, [*shipped, f"max:{small_zoom}"]),
        "zoom96-extra": (images, [*shipped, f"max:{zoom}s96"]),
        "zoom64-instead": (images, [f for f in shipped if f != f"max:{zoom}"] + [f"max:{small_zoom}"]),
        "zoom-agree": (images, [*shipped, f"agree:{zoom}+{small_zoom}"]),
        "tiles4": (images, [*shipped, "max:yolox_nano@tiles4"]),
        "agree-views": (images, [*shipped, f"agree:{zoom}+yolox_nano@tiles3", f"agree:{zoom}+nanodet_m@tiles2"]),
    }
    rules = {f: t for f, t in RULES.items() if f in passes}
    for idea in ideas:
        data, features = variants[idea]
        data = data() if callable(data) else data
        for target in TARGETS:
            cv = cross_validate(data, labels, features, target, rules, args.C, repeats=args.repeats)
            print_cv(f"{idea:15s} ({len(features)})", cv, files)


if __name__ == "__main__":
    main()

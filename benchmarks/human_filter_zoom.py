"""Cross-validated effect of zoom passes (a second look at the best person candidates) on a preset's combiner.

The preset's fixed passes plus the given zoom passes, with a given zoom window geometry, cached by
``human_filter_cache.py`` (computed when missing); the ``rich`` (or ``max``) feature set fitted for each target
recall with exactly the protocol of ``human_filter_fit.py`` (repeated stratified 5-fold CV, coefficients and
threshold refitted without the held-out fold, threshold from out-of-fold probabilities). ``--zoom ""`` gives the
reference without zoom. This is how the window geometry and the zoom passes of the presets were chosen.

    python benchmarks/human_filter_zoom.py --preset default --zoom yolox_nano@zoom4 --context 3 --min-side 192
    python benchmarks/human_filter_zoom.py --preset fast --zoom yolox_nano@zoom2 --context 8 --min-side 192
"""

from __future__ import annotations

import argparse

import numpy as np

from human_filter_cache import compute, dev_files
from human_filter_fit import RULES, feature_sets, load_images, print_cv
from passkit.detect.calibrate import cross_validate
from passkit.detect.presets import PRESETS
from passkit.detect.registry import get_entry
from passkit.detect.views import ZOOM_CONTEXT, ZOOM_MIN_SIDE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", choices=["fast", "default"])
    parser.add_argument("--zoom", default="yolox_nano@zoom4", help="zoom passes, comma-separated ('' = none)")
    parser.add_argument("--context", type=float, default=ZOOM_CONTEXT)
    parser.add_argument("--min-side", type=int, default=ZOOM_MIN_SIDE)
    parser.add_argument("--set", default="rich", choices=["max", "rich"])
    parser.add_argument("--targets", default="0.999,0.995,0.99,0.98")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--C", type=float, default=0.03)
    args = parser.parse_args()
    files, truth = dev_files()
    labels = np.array(truth)
    preset = PRESETS[args.preset]
    fixed = [p.feature for p in preset.passes if not p.zoom]
    zoom = [z for z in args.zoom.split(",") if z]
    images = load_images(fixed, files, preset.decode_max_side)
    for feature in zoom:
        stored = compute(
            feature, preset.decode_max_side, files, seeds=preset.zoom_seeds, geometry=(args.context, args.min_side)
        )
        for image, name in zip(images, files, strict=True):
            # Rounded as the manifest's humans_boxes, like every other pass in the fit.
            image.boxes[feature] = [(round(b[0], 4), tuple(b[1:])) for b in stored[name]["boxes"]]
    passes = fixed + zoom
    features = feature_sets(passes, {p: get_entry(p.split("@")[0]).task for p in passes})[args.set]
    rules = {f: t for f, t in RULES.items() if f in fixed}
    label = f"{args.preset} + [{','.join(zoom) or 'no zoom'}] windows {args.context:g}x, >= {args.min_side} px"
    for target in (float(t) for t in args.targets.split(",")):
        cv = cross_validate(images, labels, features, target, rules, args.C, repeats=args.repeats)
        print_cv(f"{label} {args.set} ({len(features)})", cv, files, shown=5)


if __name__ == "__main__":
    main()

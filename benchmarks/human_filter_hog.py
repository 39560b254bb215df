"""OpenCV's HOG people detector (Dalal-Triggs linear SVM, 64x128 window; BSD/Apache-2.0 with OpenCV) on people-dev.

The issue asks whether it adds anything to the ensemble. For each photo the raw SVM margins of all windows of
``detectMultiScale`` (no grouping: groupThreshold 0; hit threshold -1) are kept, top boxes first, as
score = sigmoid(margin), at the image's own size and, with ``--scales 1,2``, upscaled 2x (so people of ~32x64 px
fill the window). The caches use the format of ``human_filter_cache.py`` (pass names ``hog@full``, ``hog@up2``), so
a combiner can be cross-validated with them. This prints HOG's own ROC points (recall of images with people at a
given retention of people-free images) and its speed.

    python benchmarks/human_filter_hog.py [--scales 1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import cv2
import numpy as np

from human_filter_cache import BOXES, CACHE, DEV, cache_path, dev_files, load


def hog_boxes(image: np.ndarray, upscale: float) -> list[list[float]]:
    hog = hog_boxes.__dict__.setdefault("hog", _people_hog())
    if upscale != 1.0:
        image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    rects, margins = hog.detectMultiScale(
        image, hitThreshold=-1.0, winStride=(8, 8), padding=(8, 8), scale=1.05, groupThreshold=0
    )
    if len(rects) == 0:
        return []
    margins = np.asarray(margins, np.float64).ravel()
    order = np.argsort(-margins)[:BOXES]
    out = []
    for i in order:
        x, y, w, h = (float(v) / upscale for v in rects[i])
        out.append(
            [round(1.0 / (1.0 + math.exp(-margins[i])), 5), round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1)]
        )
    return out


def _people_hog() -> cv2.HOGDescriptor:
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,2")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    files, labels = dev_files()
    labels = np.array(labels)
    for scale in (float(s) for s in args.scales.split(",")):
        feature = "hog@full" if scale == 1 else f"hog@up{scale:g}"
        stored = load(feature, 1024, files)
        began = time.perf_counter()
        if stored is None:
            stored = {}
            for index, name in enumerate(files):
                image = cv2.imread(str(DEV / "images" / name), cv2.IMREAD_COLOR)
                stored[name] = {"size": [image.shape[1], image.shape[0]], "boxes": hog_boxes(image, scale)}
                if index % 100 == 0:
                    print(f"  {feature}: {index}/{len(files)}", file=sys.stderr, flush=True)
            seconds = time.perf_counter() - began
            CACHE.mkdir(parents=True, exist_ok=True)
            cache_path(feature, 1024).write_text(json.dumps(stored))
            print(f"{feature}: {len(files) / seconds:.2f} img/s on one core")
        scores = np.array([stored[n]["boxes"][0][0] if stored[n]["boxes"] else 0.0 for n in files])
        negatives = np.sort(scores[~labels])
        for retention in (0.5, 0.8, 0.9, 0.975):
            threshold = negatives[min(len(negatives) - 1, math.ceil(retention * len(negatives)) - 1)]
            flagged = scores > threshold
            print(
                f"{feature}: retention {np.mean(~flagged[~labels]):.3f} -> recall {np.mean(flagged[labels]):.3f} "
                f"(score > {threshold:.4f})"
            )


if __name__ == "__main__":
    main()

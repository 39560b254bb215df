"""Makes docs/img/review.png: the review app in Chromium on crops of scikit-learn's two sample photos.

    .venv/bin/python tests/review_screenshot.py docs/img/review.png

The photos are china.jpg and flower.jpg (Flickr, CC BY 2.0, see sklearn/datasets/images/README.txt); detector scores
and boxes in the picture are illustrative, set by this script.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright
from sklearn.datasets import load_sample_images

from passkit.core.manifest import write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import ShardWriter
from review_server import ReviewServer


def crops() -> list[Image.Image]:
    photos = [Image.fromarray(array) for array in load_sample_images().images]
    result = []
    for index in range(24):
        photo = photos[index % 2]
        width, height = photo.size
        scale = 0.45 + 0.1 * (index % 4)
        box_w, box_h = int(width * scale), int(height * scale * 0.8)
        x = (index * 53) % (width - box_w)
        y = (index * 31) % (height - box_h)
        result.append(photo.crop((x, y, x + box_w, y + box_h)))
    return result


def write_folder(root: Path) -> None:
    rows = []
    with ShardWriter(ShardPaths(root, 0).tar) as writer:
        for index, image in enumerate(crops()):
            key = f"yfcc-{100200 + index * 7919}"
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            writer.write(Sample.build(key, jpg=buffer.getvalue(), json={"title": key}))
            width, height = image.size
            score = round(0.0043 * (0.97**index), 5)
            boxes = []
            if index % 5 == 0:
                boxes.append({"by": "yolox_nano@tiles2", "task": "person", "score": 0.03, "box": [20, 30, 90, 150]})
            if index % 7 == 3:
                boxes.append(
                    {"by": "yunet@full", "task": "face", "score": 0.2, "box": [width / 2, 40, width / 2 + 40, 85]}
                )
            rows.append(
                {
                    "key": key,
                    "status": "kept",
                    "reason": "",
                    "width": width,
                    "height": height,
                    "humans_score": score,
                    "humans_boxes": json.dumps(boxes),
                }
            )
    write_manifest(ShardPaths(root, 0).manifest, rows)


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        write_folder(Path(folder))
        with ReviewServer(Path(folder), "--reviewer", "ann", "--page-size", "24") as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 700})
            page.goto(server.url)
            page.wait_for_selector(".tile.current")
            for key in ("1", "0", "0", "0", "0", "0"):
                page.keyboard.press(key)
                page.wait_for_timeout(150)
            page.wait_for_timeout(800)
            png = page.screenshot()
            browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/review.png")

"""Make docs/img/datasheet.png: build a small release from generated pictures and screenshot its datasheet.

    .venv/bin/python docs/img/datasheet_screenshot.py [--chromium /usr/bin/chromium]

The pictures are drawn here (sky, hills, sun; no photo of anyone), the funnel rows and the audit are made up for the
illustration. Needs Debian's `chromium` (headless screenshot); the PNG is quantised to stay small.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from passkit.core.manifest import write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import write_shard
from passkit.release import ReleaseConfig, build_release

OUT = Path(__file__).resolve().parent / "datasheet.png"
CREATORS = ["Ana Ruiz", "Ben Okafor", "Chen Wei", "Dana Levi", "Emil Berg", "Fatma Kaya", "Goran Ilic", "Hana Sato"]
REJECTS = {"download:http-404": 31, "download:timeout": 6, "image:corrupt": 4, "image:too-small": 7,
           "humans:person": 58, "humans:face": 17, "dedup:exact": 9, "dedup:near": 12, "cap:creator": 5,
           "review:human": 2, "review:other": 1}  # fmt: skip


def landscape(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(320, 640)), int(rng.integers(240, 480))
    top, bottom = rng.integers(40, 230, 3), rng.integers(120, 255, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    sky = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    image = Image.fromarray(sky, "RGB")
    draw = ImageDraw.Draw(image)
    sun = int(rng.integers(20, 60))
    cx, cy = int(rng.integers(sun, width - sun)), int(rng.integers(sun, height // 2))
    draw.ellipse((cx - sun, cy - sun, cx + sun, cy + sun), fill=tuple(int(v) for v in rng.integers(200, 256, 3)))
    for layer in range(3):
        base = height * (0.55 + 0.15 * layer)
        xs = np.linspace(0, width, 12)
        ys = base + rng.normal(0, height * 0.06, 12)
        colour = tuple(int(v) for v in rng.integers(20, 140, 3) // (layer + 1))
        draw.polygon([(0, height), *zip(xs.tolist(), ys.tolist(), strict=True), (width, height)], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_filtered(root: Path, count: int = 160) -> Path:
    samples, rows = [], []
    for index in range(count):
        key = f"yfcc-{500000 + index * 7}"
        license_id = ("CC-BY-2.0", "CC-BY-2.0", "CC-BY-2.0", "CC-BY-4.0")[index % 4]
        meta = {"key": key, "source": "yfcc", "photo_id": key[5:], "creator": CREATORS[index * 5 % 7 + index % 2],
                "title": f"Hills at dusk {index}" if index % 3 else "", "license": license_id,
                "page_url": f"https://www.flickr.com/photos/example/{key[5:]}/",
                "license_url": f"https://creativecommons.org/licenses/by/{license_id[-3:]}/",
                "url": f"https://farm.example.org/{key[5:]}.jpg", "date_taken": "2011-06-01 18:00:00"}  # fmt: skip
        samples.append(Sample.build(key, jpg=landscape(index), json=meta))
        rows.append({"key": key, "status": "kept", "reason": ""})
    number = 0
    for reason, times in REJECTS.items():
        for _ in range(times):
            rows.append({"key": f"yfcc-{900000 + number}", "status": "rejected", "reason": reason})
            number += 1
    shard = ShardPaths(root, 0)
    write_shard(shard.tar, samples)
    write_manifest(shard.manifest, rows)
    (root / "review").mkdir()
    audit = {"method": "clopper-pearson", "confidence": 0.95, "seed": 0, "kept_total": count, "sample_size": 120,
             "reviewed": 120, "with_people": 0, "rate": 0.0, "upper": 0.0247, "per_reason": {},
             "statement": "0 of 120 reviewed -> humans <= 2.47% at 95% confidence"}  # fmt: skip
    (root / "review" / "audit.json").write_text(json.dumps(audit))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        filtered = make_filtered(Path(temp) / "filtered")
        release = Path(temp) / "release"
        build_release(filtered, release, ReleaseConfig(shard_size=50, sample_grid=10, contact="takedown@example.org"))
        shot = Path(temp) / "shot.png"
        subprocess.run(
            [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1000,1700", f"--screenshot={shot}", (release / "datasheet.html").as_uri()],
            check=True, capture_output=True,
        )  # fmt: skip
        image = Image.open(shot).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        image.save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()

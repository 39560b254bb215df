"""Shared bits of the human-filter tests: real people-dev photos with verified boxes, synthetic odd images."""

import io

import numpy as np
from PIL import Image

# coco-train2017-000000000036.jpg (481 x 640): a woman with an umbrella; boxes checked by drawing them.
PERSON_PHOTO = "coco-train2017-000000000036.jpg"
PERSON_BOX = (176, 156, 470, 640)
FACE_BOX = (226, 192, 304, 298)


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def negative_photos(people_dev, count: int) -> list[str]:
    import csv

    with (people_dev / "labels.csv").open() as handle:
        return [row["file"] for row in csv.DictReader(handle) if row["has_person"] == "0"][:count]


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def noise_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    shape = (size[1], size[0]) if bands == 1 else (size[1], size[0], bands)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)

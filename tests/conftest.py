import io

import pytest
from PIL import Image

from passkit.core.sample import Sample


def jpeg_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_samples(count: int, prefix: str = "pool") -> list[Sample]:
    return [
        Sample.build(
            f"{prefix}-{i:04d}",
            jpg=jpeg_bytes(i),
            json={"creator": f"creator {i}", "title": f"Photo nº {i}", "license": "CC-BY-2.0"},
        )
        for i in range(count)
    ]


@pytest.fixture
def samples() -> list[Sample]:
    return make_samples(12)

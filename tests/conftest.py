import io
import os
from pathlib import Path

import pytest
from PIL import Image

from passkit.core.sample import Sample

REPO = Path(__file__).resolve().parents[1]
# The project's shared folder (real photos, detector models) lies beside the repository, as in CI.
SHARED = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared"))
PEOPLE_DEV = SHARED / "data" / "people-dev"
SHARED_MODELS = SHARED / "models"

if "PASSKIT_MODELS" not in os.environ and SHARED_MODELS.is_dir():
    os.environ["PASSKIT_MODELS"] = str(SHARED_MODELS)


@pytest.fixture
def people_dev() -> Path:
    """The labeled real photos of ../shared/data/people-dev (skips cleanly where absent)."""
    if not (PEOPLE_DEV / "labels.csv").is_file():
        pytest.skip(f"real labeled photos not found at {PEOPLE_DEV} (set PASSKIT_SHARED to the shared folder)")
    return PEOPLE_DEV


@pytest.fixture
def shared_models() -> Path:
    """The offline detector models of ../shared/models (skips cleanly where absent)."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"detector models not found at {SHARED_MODELS} (set PASSKIT_SHARED to the shared folder)")
    return SHARED_MODELS


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

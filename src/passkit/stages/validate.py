"""validate: decode every image fully and reject what cannot be a training image.

Reasons: ``image:corrupt`` (empty, unrecognised, truncated, damaged), ``image:bomb`` (more pixels than
``max_pixels``, or Pillow's decompression-bomb warning — never ignored), ``image:unsupported`` (SVG, HEIC, PDF:
real formats this build does not decode), ``image:too-small`` (short side below ``min_side`` or aspect ratio above
``max_aspect``), ``image:single-colour`` (grey-level standard deviation below ``min_std`` or histogram entropy below
``min_entropy`` bits: flat or near-empty images). Kept samples carry their decoded RGB pixels (orientation applied)
to the next stages.

Decoding reads all of an image's data, but a JPEG that privacy will store by a lossless strip only needs pixels for
the statistics and the perceptual hash: it is DCT-scaled while decoding to no less than ``analysis_side``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from passkit.core.manifest import ManifestBuilder
from passkit.core.reasons import IMAGE_SINGLE_COLOUR, IMAGE_TOO_SMALL
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.stages.image import DecodedImage, DecodeError, DecodeLimits, decode, image_part, open_image, with_image


@dataclass(frozen=True)
class ValidateConfig:
    max_pixels: int = 64_000_000
    min_side: int = 64
    max_aspect: float = 6.0
    min_std: float = 4.0  # grey levels (0-255) over the analysis thumbnail
    min_entropy: float = 1.0  # bits of the 256-bin grey histogram
    decode_max_side: int | None = None  # JPEGs are DCT-scaled down to no less than this (set when storing resized)
    analysis_side: int | None = 128  # JPEGs stored by a lossless strip: DCT-scaled to no less than this for analysis

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or self.min_side < 1 or self.max_aspect < 1:
            raise ValueError(f"invalid validate config {self}")
        for name in ("decode_max_side", "analysis_side"):
            value = getattr(self, name)
            if value is not None and value < max(self.min_side, 32):
                raise ValueError(f"{name} must be >= min_side and >= 32 (or None for full resolution)")

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_pixels, self.decode_max_side, self.analysis_side)


def grey_statistics(image: DecodedImage) -> tuple[float, float]:
    """Standard deviation and histogram entropy (bits) of the grey thumbnail."""
    grey = np.asarray(image.grey)
    histogram = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    probabilities = histogram[histogram > 0] / grey.size
    entropy = float(-(probabilities * np.log2(probabilities)).sum())
    return float(grey.std()), entropy


def _size_problem(width: int, height: int, cfg: ValidateConfig) -> str:
    if min(width, height) < cfg.min_side:
        return f"short side {min(width, height)} < {cfg.min_side}"
    if max(width, height) / min(width, height) > cfg.max_aspect:
        return f"aspect {max(width, height) / min(width, height):.1f} > {cfg.max_aspect}"
    return ""


def validate_stage(batch: list[Sample], cfg: ValidateConfig) -> StageResult[list[Sample]]:
    rows = ManifestBuilder()
    kept: list[Sample] = []
    for sample in batch:
        measures: dict[str, object] = {}
        try:
            _, data = image_part(sample)
            measures["source_bytes"] = len(data)
            header = open_image(data, cfg.limits)
            measures.update(source_format=header.format or "", source_width=header.width, source_height=header.height)
            problem = _size_problem(header.width, header.height, cfg)
            if problem:
                rows.rejected(sample.key, IMAGE_TOO_SMALL, detail=problem, **measures)
                continue
            image = decode(data, cfg.limits, opened=header)
        except DecodeError as error:
            rows.rejected(sample.key, error.reason, detail=error.detail[:200], **measures)
            continue
        std, entropy = grey_statistics(image)
        measures.update(
            source_mode=image.source_mode,
            orientation=image.orientation,
            frames=image.frames,
            decoded_width=image.rgb.width,
            decoded_height=image.rgb.height,
            std=round(std, 3),
            entropy=round(entropy, 3),
            notes=image.notes,
        )
        if std < cfg.min_std or entropy < cfg.min_entropy:
            detail = f"std {std:.2f} (min {cfg.min_std}), entropy {entropy:.2f} bits (min {cfg.min_entropy})"
            rows.rejected(sample.key, IMAGE_SINGLE_COLOUR, detail=detail, **measures)
            continue
        rows.kept(sample.key, detail="", **measures)
        kept.append(with_image(sample, image))
    return StageResult(kept, rows.to_table())

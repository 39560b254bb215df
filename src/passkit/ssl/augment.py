"""The three recipes' view augmentations, as torchvision v2 transforms on uint8 image tensors.

- MoCo-v2: 2 views, RandomResizedCrop scale (0.2, 1), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, grayscale p=0.2,
  Gaussian blur sigma (0.1, 2) p=0.5, horizontal flip.
- SwAV: 2 x 224 crops scale (0.14, 1) + 6 x 96 crops scale (0.05, 0.14); flip, ColorJitter(0.8, 0.8, 0.8, 0.2)
  p=0.8, grayscale p=0.2, Gaussian blur p=0.5 on every crop.
- DINO: 2 global 224 crops scale (0.4, 1) (bicubic), flip, ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale
  p=0.2; global 1 always blurred, global 2 blurred p=0.1 and solarized p=0.2; N local 96 crops scale (0.05, 0.4)
  blurred p=0.5.

Crop sizes are configurable for small images; the blur kernel follows the crop (about 10 % of its side, odd),
as the torchvision ports of these recipes do (23 px at 224). Views are ordered globals first, then locals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RECIPES = ("mocov2", "swav", "dino")


@dataclass(frozen=True)
class AugmentConfig:
    recipe: str
    global_size: int = 224
    local_size: int = 96
    n_global: int = 2
    n_local: int = 0
    global_scale: tuple[float, float] = (0.2, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.14)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown augmentation recipe {self.recipe!r} (one of {', '.join(RECIPES)})")
        if self.n_global < 1 or self.n_local < 0:
            raise ValueError("need at least one global view and a non-negative number of local views")
        for lo, hi in (self.global_scale, self.local_scale):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"crop scale ({lo}, {hi}) must satisfy 0 < lo <= hi <= 1")

    @property
    def n_views(self) -> int:
        return self.n_global + self.n_local

    def decode_min_side(self) -> int:
        """Shortest image side that still gives the smallest global crop its full resolution (decode hint)."""
        sizes = [(self.global_size, self.global_scale[0])]
        if self.n_local:
            sizes.append((self.local_size, self.local_scale[0]))
        return max(math.ceil(size / math.sqrt(scale)) for size, scale in sizes)


def recipe_defaults(recipe: str) -> dict[str, object]:
    """The official crop settings of each recipe."""
    if recipe == "mocov2":
        return {"n_global": 2, "n_local": 0, "global_scale": (0.2, 1.0)}
    if recipe == "swav":
        return {"n_global": 2, "n_local": 6, "global_scale": (0.14, 1.0), "local_scale": (0.05, 0.14)}
    if recipe == "dino":
        return {"n_global": 2, "n_local": 8, "global_scale": (0.4, 1.0), "local_scale": (0.05, 0.4)}
    raise ValueError(f"unknown augmentation recipe {recipe!r}")


def blur_kernel(size: int) -> int:
    return max(3, 2 * round(0.05 * size) + 1)


class SeparableGaussianBlur(torch.nn.Module):
    """Gaussian blur with sigma ~ U(sigma), as two 1-D passes: torchvision's ``GaussianBlur`` result (same kernel,
    reflect padding, rounding back to uint8) at ~k/2 times fewer operations (the 2-D 23 x 23 kernel of a 224 px
    crop made blur ~70 % of an augmentation's time). Draws sigma from torch's generator as torchvision does."""

    def __init__(self, kernel_size: int, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"kernel size must be odd and positive, got {kernel_size}")
        self.kernel_size = kernel_size
        self.sigma = sigma

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        sigma = torch.empty(1).uniform_(self.sigma[0], self.sigma[1]).item()
        return gaussian_blur(image, self.kernel_size, sigma)


def gaussian_blur(image: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, H, W) or (N, C, H, W) image tensor (uint8 or float)."""
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    shape = image.shape
    batch = image.reshape(-1, *shape[-3:]).float()
    channels = batch.shape[1]
    pad = kernel_size // 2
    batch = torch.nn.functional.pad(batch, [pad, pad, pad, pad], mode="reflect")
    batch = torch.nn.functional.conv2d(batch, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    batch = torch.nn.functional.conv2d(batch, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    if image.dtype == torch.uint8:
        batch = batch.round_().clamp_(0, 255).to(torch.uint8)
    out = batch.reshape(shape)
    return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out


def _blur(size: int, p: float) -> torch.nn.Module:
    blur = SeparableGaussianBlur(blur_kernel(size), sigma=(0.1, 2.0))
    return blur if p >= 1 else v2.RandomApply([blur], p=p)


def _tail(cfg: AugmentConfig) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(cfg.mean, cfg.std)]


def _crop(size: int, scale: tuple[float, float], bicubic: bool = False) -> v2.Transform:
    mode = InterpolationMode.BICUBIC if bicubic else InterpolationMode.BILINEAR
    return v2.RandomResizedCrop(size, scale=scale, interpolation=mode, antialias=True)


def _mocov2(cfg: AugmentConfig) -> list[v2.Transform]:
    view = v2.Compose(
        [
            _crop(cfg.global_size, cfg.global_scale),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            _blur(cfg.global_size, 0.5),
            v2.RandomHorizontalFlip(),
            *_tail(cfg),
        ]
    )
    return [view] * cfg.n_global + [_local_like(cfg, view)] * cfg.n_local


def _local_like(cfg: AugmentConfig, global_view: v2.Compose) -> v2.Compose:
    """A local crop with the same photometric ops (used when MoCo is asked for extra crops)."""
    return v2.Compose([_crop(cfg.local_size, cfg.local_scale), *list(global_view.transforms)[1:]])


def _swav(cfg: AugmentConfig) -> list[v2.Transform]:
    def view(size: int, scale: tuple[float, float]) -> v2.Compose:
        return v2.Compose(
            [
                _crop(size, scale),
                v2.RandomHorizontalFlip(p=0.5),
                v2.RandomApply([v2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                _blur(size, 0.5),
                *_tail(cfg),
            ]
        )

    return [view(cfg.global_size, cfg.global_scale)] * cfg.n_global + [
        view(cfg.local_size, cfg.local_scale)
    ] * cfg.n_local


def _dino(cfg: AugmentConfig) -> list[v2.Transform]:
    flip_and_color = [
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    first = v2.Compose(
        [_crop(cfg.global_size, cfg.global_scale, True), *flip_and_color, _blur(cfg.global_size, 1.0), *_tail(cfg)]
    )
    second = v2.Compose(
        [
            _crop(cfg.global_size, cfg.global_scale, True),
            *flip_and_color,
            _blur(cfg.global_size, 0.1),
            v2.RandomSolarize(threshold=128, p=0.2),
            *_tail(cfg),
        ]
    )
    local = v2.Compose(
        [_crop(cfg.local_size, cfg.local_scale, True), *flip_and_color, _blur(cfg.local_size, 0.5), *_tail(cfg)]
    )
    globals_ = [first, second] * ((cfg.n_global + 1) // 2)
    return globals_[: cfg.n_global] + [local] * cfg.n_local


@dataclass
class MultiView:
    """Callable: uint8 CHW image tensor -> list of normalized float views (globals first)."""

    cfg: AugmentConfig
    transforms: list[v2.Transform] = field(init=False)

    def __post_init__(self) -> None:
        build = {"mocov2": _mocov2, "swav": _swav, "dino": _dino}[self.cfg.recipe]
        self.transforms = build(self.cfg)
        self._to_image = v2.ToImage()

    def __call__(self, image: object) -> list[torch.Tensor]:
        tensor = self._to_image(image)
        if tensor.shape[0] == 1:
            tensor = tensor.expand(3, -1, -1)
        return [transform(tensor) for transform in self.transforms]


def build_augment(recipe: str, global_size: int = 224, local_size: int = 96, **overrides: object) -> MultiView:
    params: dict[str, object] = {**recipe_defaults(recipe), **overrides}
    return MultiView(AugmentConfig(recipe, global_size=global_size, local_size=local_size, **params))  # type: ignore[arg-type]


def eval_transform(size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Resize + center crop for feature extraction (kNN monitor/probe)."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )

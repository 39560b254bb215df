"""Backbones with their feature dimension exposed: ResNet-18/50 (torchvision), ViT-S/16 (timm), small CPU variants.

``build_backbone(name)`` returns a :class:`Backbone` whose ``forward`` maps images to pooled features of size
``dim`` (ResNets: global average pool; ViTs: the class token after the final norm, as DINO uses). ViTs accept
any input side divisible by the patch size (position embeddings are interpolated), which multi-crop needs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18, resnet50


class Backbone(nn.Module):
    def __init__(self, name: str, body: nn.Module, dim: int) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.dim = dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def _resnet(model: nn.Module, name: str, dim: int) -> Backbone:
    model.fc = nn.Identity()
    return Backbone(name, model, dim)


class _TruncatedResNet(nn.Module):
    """A torchvision ResNet-18 cut after its third stage (2.8 M parameters, 256-d): small enough for CPU runs."""

    def __init__(self) -> None:
        super().__init__()
        full = resnet18()
        self.stem = nn.Sequential(full.conv1, full.bn1, full.relu, full.maxpool)
        self.layers = nn.Sequential(full.layer1, full.layer2, full.layer3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(self.stem(images))), 1)


def _vit(name: str, **kwargs: object) -> Backbone:
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as error:  # pragma: no cover - the train extra installs timm
        raise ImportError("ViT backbones need timm: pip install 'passkit[train]'") from error
    model = VisionTransformer(num_classes=0, dynamic_img_size=True, **kwargs)  # type: ignore[arg-type]
    return Backbone(name, model, model.num_features)


def _build_resnet18(**_: object) -> Backbone:
    return _resnet(resnet18(), "resnet18", 512)


def _build_resnet50(**_: object) -> Backbone:
    return _resnet(resnet50(), "resnet50", 2048)


def _build_resnet_tiny(**_: object) -> Backbone:
    return Backbone("resnet_tiny", _TruncatedResNet(), 256)


def _build_vit_small(drop_path_rate: float = 0.1, image_size: int = 224) -> Backbone:
    return _vit(
        "vit_small",
        img_size=image_size,
        patch_size=16,
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=drop_path_rate,
    )


def _build_vit_micro(drop_path_rate: float = 0.0, image_size: int = 32) -> Backbone:
    """A 4-block, 128-d ViT with 4 px patches for 16-64 px CPU runs (1.1 M parameters)."""
    return _vit(
        "vit_micro",
        img_size=image_size,
        patch_size=4,
        embed_dim=128,
        depth=4,
        num_heads=4,
        mlp_ratio=3,
        qkv_bias=True,
        drop_path_rate=drop_path_rate,
    )


ARCHS: dict[str, Callable[..., Backbone]] = {
    "resnet18": _build_resnet18,
    "resnet50": _build_resnet50,
    "resnet_tiny": _build_resnet_tiny,
    "vit_small": _build_vit_small,
    "vit_micro": _build_vit_micro,
}


def build_backbone(arch: str, image_size: int = 224, drop_path_rate: float | None = None) -> Backbone:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (one of {', '.join(ARCHS)})")
    kwargs: dict[str, object] = {}
    if arch.startswith("vit"):
        kwargs["image_size"] = image_size
        if drop_path_rate is not None:
            kwargs["drop_path_rate"] = drop_path_rate
    return ARCHS[arch](**kwargs)


def is_vit(arch: str) -> bool:
    return arch.startswith("vit")


def memory_format_for(arch: str) -> torch.memory_format:
    """The layout the trainer keeps a backbone and its input in: NHWC (channels_last) for ResNets, on every device.

    On GPUs NHWC feeds the tensor cores; on CPUs oneDNN's NHWC kernels are far faster than the NCHW ones for the
    same maths (one thread, a 32 x 64 x 32 x 32 batch: max-pool 18 ms -> 1.1 ms, batch norm 5.5 -> 0.9 ms, the
    7x7 stem convolution 16 -> 6.6 ms). ViTs gain nothing from it.
    """
    return torch.preserve_format if is_vit(arch) else torch.channels_last


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

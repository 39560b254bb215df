"""torch.hub entry points for passkit backbones.

    model = torch.hub.load("OWNER/passkit", "resnet50", weights="https://.../resnet50.pth", sha256="...")
    model = torch.hub.load("/path/to/passkit", "vit_small", source="local", weights="vit_small.pth")

``weights`` is a file written by ``passkit export`` (or a run's ``backbone.pt``), as a local path or an http(s)
URL; URLs are downloaded once into torch.hub's cache (``torch.hub.get_dir()/checkpoints``) and, given ``sha256``,
verified. Without ``weights`` the model is randomly initialised. The models are feature extractors: the classifier
is ``Identity`` (ResNet: 2,048 / 512-d pooled features; ViT-S/16: the 384-d class token), unless ``head=True``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse

dependencies = ["torch", "torchvision", "timm"]


def _state_dict(weights: str, sha256: str | None, progress: bool) -> dict:
    import torch

    if urlparse(weights).scheme in ("http", "https"):
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(urlparse(weights).path).name
        if not path.exists():
            torch.hub.download_url_to_file(weights, str(path), hash_prefix=sha256, progress=progress)
    else:
        path = Path(weights).expanduser()
    if sha256:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(sha256):
            raise RuntimeError(f"{path}: sha256 {digest} does not match {sha256}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and "state_dict" in payload and "arch" in payload:  # a passkit backbone.pt
        payload = {k.removeprefix("body."): v for k, v in payload["state_dict"].items()}
    return payload


def _load(model, head_name: str, weights: str | None, sha256: str | None, progress: bool, head: bool):
    import torch

    if weights is not None:
        state = _state_dict(weights, sha256, progress)
        if not any(key.startswith(f"{head_name}.") for key in state):
            setattr(model, head_name, torch.nn.Identity())
        model.load_state_dict(state, strict=True)
    if not head:
        setattr(model, head_name, torch.nn.Identity())
    return model.eval()


def resnet50(weights: str | None = None, sha256: str | None = None, progress: bool = True, head: bool = False):
    """ResNet-50 (torchvision definition) with passkit-pretrained weights."""
    import torchvision

    return _load(torchvision.models.resnet50(), "fc", weights, sha256, progress, head)


def resnet18(weights: str | None = None, sha256: str | None = None, progress: bool = True, head: bool = False):
    """ResNet-18 (torchvision definition) with passkit-pretrained weights."""
    import torchvision

    return _load(torchvision.models.resnet18(), "fc", weights, sha256, progress, head)


def vit_small(weights: str | None = None, sha256: str | None = None, progress: bool = True, head: bool = False):
    """ViT-S/16 at 224 px (timm's vit_small_patch16_224) with passkit-pretrained weights."""
    import timm

    return _load(timm.create_model("vit_small_patch16_224", pretrained=False), "head", weights, sha256, progress, head)

"""Load the backbone to evaluate: a pretraining run, its ``backbone.pt`` or ``checkpoint.pt``, or random init.

Every loaded backbone carries a :class:`CheckpointInfo` (architecture, image size, the sha256 of the weights file)
that results and the feature cache are keyed by. The image size comes from ViT position embeddings, else the run's
``config.json`` (``global_size``), else 224.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from passkit.ssl.backbones import ARCHS, Backbone, build_backbone

BACKBONE_FILE = "backbone.pt"
CHECKPOINT_FILE = "checkpoint.pt"
# Which encoder of a training checkpoint to evaluate: prefix of its keys in the method's state dict.
ENCODERS = {"backbone": "backbone.", "teacher": "teacher.backbone.", "key": "key_backbone."}
DEFAULT_IMAGE_SIZE = 224


class CheckpointError(ValueError):
    """A checkpoint that cannot be evaluated as asked (missing, unknown architecture, wrong encoder)."""


@dataclass(frozen=True)
class CheckpointInfo:
    arch: str
    image_size: int
    sha256: str  # of the weights file; for random init: a digest of (arch, seed)
    path: str | None
    random_init: bool = False
    seed: int | None = None
    encoder: str = "backbone"
    method: str | None = None

    @property
    def label(self) -> str:
        return f"{self.arch} random-init (seed {self.seed})" if self.random_init else f"{self.arch} {self.sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _run_config(folder: Path) -> dict[str, Any]:
    config = folder / "config.json"
    return json.loads(config.read_text()) if config.exists() else {}


def vit_image_size(state: dict[str, torch.Tensor]) -> int | None:
    """Side the ViT's position embeddings were trained at (square grid + class token)."""
    pos, proj = state.get("body.pos_embed"), state.get("body.patch_embed.proj.weight")
    if pos is None or proj is None:
        return None
    grid = math.isqrt(pos.shape[1] - 1)
    return grid * proj.shape[-1] if grid * grid == pos.shape[1] - 1 else None


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in (BACKBONE_FILE, CHECKPOINT_FILE):
            if (path / name).exists():
                return path / name
        raise CheckpointError(f"{path}: no {BACKBONE_FILE} or {CHECKPOINT_FILE} (is it a `passkit pretrain` run?)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def read_checkpoint(path: str | Path, encoder: str = "backbone") -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(arch, backbone state dict with Backbone keys, run config)`` of a run folder, backbone.pt or checkpoint.pt."""
    file = _resolve(Path(path))
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{file}: not a readable torch checkpoint ({error})") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"{file}: expected a dict, found {type(payload).__name__}")
    config = _run_config(file.parent)
    if "config" in payload and "model" in payload:  # a training checkpoint: pick the encoder's keys
        config = {**config, **json.loads(payload["config"])}
        if encoder not in ENCODERS:
            raise CheckpointError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")
        prefix = ENCODERS[encoder]
        state = {k[len(prefix) :]: v for k, v in payload["model"].items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f"{file}: the {config.get('method')} checkpoint has no {encoder!r} encoder")
        arch = config.get("arch", "")
    elif "state_dict" in payload and "arch" in payload:
        if encoder != "backbone":
            raise CheckpointError(f"{file} holds only the final backbone; use checkpoint.pt for --encoder {encoder}")
        arch, state = payload["arch"], payload["state_dict"]
    else:
        raise CheckpointError(
            f"{file}: not a passkit checkpoint (expected backbone.pt {{arch, state_dict}} or a training checkpoint)"
        )
    if arch not in ARCHS:
        raise CheckpointError(f"{file}: unknown architecture {arch!r}")
    return arch, state, config


def load_backbone(
    checkpoint: str | Path | None = None,
    *,
    arch: str | None = None,
    random_init: bool = False,
    seed: int = 0,
    image_size: int | None = None,
    encoder: str = "backbone",
) -> tuple[Backbone, CheckpointInfo]:
    """The backbone of ``checkpoint`` (strictly loaded) in eval mode, or with ``random_init`` an untrained one of
    the checkpoint's (or ``arch``'s) architecture, initialised from ``seed``."""
    state: dict[str, torch.Tensor] = {}
    config: dict[str, Any] = {}
    file: Path | None = None
    if checkpoint is not None:
        file = _resolve(Path(checkpoint))
        found_arch, state, config = read_checkpoint(file, encoder)
        if arch is not None and arch != found_arch:
            raise CheckpointError(f"{file} is a {found_arch}, not a {arch}")
        arch = found_arch
    elif arch is None or not random_init:
        raise CheckpointError("give a checkpoint, or --random-init with an architecture")
    elif arch not in ARCHS:
        raise CheckpointError(f"unknown architecture {arch!r} (one of {', '.join(ARCHS)})")
    trained_size = vit_image_size(state) or int(config.get("global_size") or DEFAULT_IMAGE_SIZE)
    size = image_size or trained_size
    if random_init:
        torch.manual_seed(seed)
    # ViTs are built at their trained grid (the weights' shape) and interpolate to any evaluation size.
    backbone = build_backbone(arch, trained_size if state else size)
    if random_init:
        sha = hashlib.sha256(f"random-init:{arch}:{size}:{seed}".encode()).hexdigest()
        info = CheckpointInfo(arch, size, sha, str(file) if file else None, True, seed, encoder, config.get("method"))
    else:
        assert file is not None
        try:
            missing, unexpected = backbone.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shape mismatches
            raise CheckpointError(f"{file}: weights do not fit {arch}: {error}") from error
        if missing or unexpected:
            raise CheckpointError(
                f"{file}: weights do not fit {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        info = CheckpointInfo(arch, size, file_sha256(file), str(file), False, None, encoder, config.get("method"))
    backbone.eval()
    return backbone, info

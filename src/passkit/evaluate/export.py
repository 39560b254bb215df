"""Export a pretrained backbone as plain weights for the standard model definitions.

- ``torchvision``: ``resnet18`` / ``resnet50`` -> a state dict that ``torchvision.models.resnet50()`` loads with
  ``strict=True``.
- ``timm``: ``vit_small`` -> a state dict that ``timm.create_model("vit_small_patch16_224")`` loads with
  ``strict=True``; position embeddings learnt at another size are resampled to the 14 x 14 grid exactly as timm
  resamples them at run time (bicubic, antialiased), so features at 224 px do not change.

A self-supervised backbone has no classifier: the exported ``fc`` / ``head`` is all zeros with ``num_classes``
outputs (1,000 by default, what the model constructors build); replace it, or set ``model.fc =
torch.nn.Identity()`` / ``model.reset_classifier(0)`` to get the features. ``num_classes=0`` writes the backbone
only (load it into ``resnet50(); model.fc = Identity()`` or ``create_model(..., num_classes=0)``). The export is
checked against a freshly built target model (same keys, same shapes) before it is written, and a ``FILE.json``
sidecar records its provenance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from passkit.core.atomic import atomic_path
from passkit.evaluate.checkpoint import CheckpointError, file_sha256, load_backbone

TARGETS = {
    "torchvision": {"resnet18": "resnet18", "resnet50": "resnet50"},
    "timm": {"vit_small": "vit_small_patch16_224"},
}


class ExportError(ValueError):
    """A backbone that cannot be exported to the requested format."""


@dataclass(frozen=True)
class ExportReport:
    path: str
    format: str
    target: str  # the model constructor that loads it
    arch: str
    num_classes: int
    tensors: int
    source_sha256: str
    sha256: str


def target_model(fmt: str, target: str, num_classes: int) -> nn.Module:
    if fmt == "torchvision":
        import torchvision

        model = getattr(torchvision.models, target)(num_classes=max(num_classes, 1))
        if num_classes == 0:
            model.fc = nn.Identity()
        return model
    import timm

    return timm.create_model(target, pretrained=False, num_classes=num_classes)


def _resampled_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    from timm.layers import resample_abs_pos_embed

    if pos_embed.shape[1] == grid * grid + 1:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=[grid, grid], num_prefix_tokens=1)


def export_state_dict(backbone: nn.Module, arch: str, fmt: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """The backbone's weights under the target model's key names (validated against a built target model)."""
    if fmt not in TARGETS:
        raise ExportError(f"unknown format {fmt!r} (one of {', '.join(TARGETS)})")
    if arch not in TARGETS[fmt]:
        supported = ", ".join(f"{a} -> {fmt}" for a in TARGETS[fmt])
        raise ExportError(f"a {arch} backbone cannot be exported as {fmt} (supported: {supported})")
    if num_classes < 0:
        raise ExportError(f"num_classes must be >= 0, got {num_classes}")
    target = TARGETS[fmt][arch]
    state = {k.removeprefix("body."): v.detach().clone() for k, v in backbone.state_dict().items()}
    model = target_model(fmt, target, num_classes)
    reference = model.state_dict()
    head = "fc" if fmt == "torchvision" else "head"
    if num_classes:
        state[f"{head}.weight"] = torch.zeros_like(reference[f"{head}.weight"])
        state[f"{head}.bias"] = torch.zeros_like(reference[f"{head}.bias"])
    if fmt == "timm" and "pos_embed" in state:
        grid = model.patch_embed.grid_size[0]  # type: ignore[union-attr,index]
        state["pos_embed"] = _resampled_pos_embed(state["pos_embed"], grid)
    missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    shapes = [k for k in reference if k in state and reference[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ExportError(
            f"{arch} does not map onto {target}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatch {shapes[:5]}"
        )
    return {k: state[k].contiguous() for k in reference}


def export_backbone(
    checkpoint: str | Path,
    fmt: str,
    out: str | Path,
    num_classes: int = 1000,
    encoder: str = "backbone",
) -> ExportReport:
    """Write ``checkpoint``'s backbone (a run folder, backbone.pt or checkpoint.pt) to ``out`` in ``fmt``."""
    try:
        backbone, info = load_backbone(checkpoint, encoder=encoder)
    except CheckpointError as error:
        raise ExportError(str(error)) from error
    state = export_state_dict(backbone, info.arch, fmt, num_classes)
    path = Path(out)
    with atomic_path(path) as temp:
        torch.save(state, temp)
    report = ExportReport(
        str(path), fmt, TARGETS[fmt][info.arch], info.arch, num_classes, len(state), info.sha256, file_sha256(path)
    )
    sidecar = {
        **asdict(report),
        "source": info.to_dict(),
        "head": "zeros (no classifier was trained)" if num_classes else "none",
        "load": _load_hint(fmt, report.target, num_classes),
    }
    with atomic_path(path.with_name(path.name + ".json")) as temp:
        temp.write_text(json.dumps(sidecar, indent=2) + "\n")
    return report


def _load_hint(fmt: str, target: str, num_classes: int) -> str:
    if fmt == "torchvision":
        build = f"torchvision.models.{target}()" + ("" if num_classes else "; model.fc = torch.nn.Identity()")
    else:
        build = f"timm.create_model('{target}'" + ("" if num_classes else ", num_classes=0") + ")"
    return f"model = {build}; model.load_state_dict(torch.load(FILE), strict=True)"

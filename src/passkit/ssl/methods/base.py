"""What the trainer expects of a method: a module whose forward returns the loss of a batch of views."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from passkit.ssl.backbones import Backbone


class SSLMethod(nn.Module):
    """``forward(views, step)`` -> (loss, logs); hooks around the optimiser step; schedules set by the trainer.

    ``schedules`` are per-iteration arrays (lr, wd and the method's own, e.g. momentum or teacher temperature).
    ``backbone`` is the network whose features are the pretrained representation.
    """

    backbone: Backbone
    iters_per_epoch: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.schedules: dict[str, np.ndarray] = {}

    def method_schedules(self, epochs: int, iters_per_epoch: int) -> dict[str, np.ndarray]:
        return {}

    def forward(self, views: list[torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def cancel_gradients(self, step: int) -> None:
        """Called after backward, before the optimiser step (e.g. frozen prototypes or last layer)."""

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Called after the optimiser step (e.g. momentum encoder update)."""

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Trainable parameters; one group, decayed (methods may exclude norms and biases)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": weight_decay, "apply_wd": True}]

    def epoch_of(self, step: int) -> int:
        return step // max(self.iters_per_epoch, 1)


def frozen_copy(module: nn.Module) -> nn.Module:
    twin = copy.deepcopy(module)
    for param in twin.parameters():
        param.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: Iterable[torch.Tensor], source: Iterable[torch.Tensor], momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * source``, as one fused multi-tensor lerp."""
    target_list = target if isinstance(target, list) else list(target)
    source_list = source if isinstance(source, list) else list(source)
    torch._foreach_lerp_(target_list, source_list, 1 - momentum)


def split_decay(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two groups: weights decayed; biases and norm parameters (ndim <= 1) not, as DINO does."""
    decayed, plain = [], []
    for _name, param in named:
        if not param.requires_grad:
            continue
        (plain if param.ndim <= 1 else decayed).append(param)
    return [
        {"params": decayed, "weight_decay": weight_decay, "apply_wd": True},
        {"params": plain, "weight_decay": 0.0, "apply_wd": False},
    ]


def forward_multicrop(backbone: Callable[[torch.Tensor], torch.Tensor], views: list[torch.Tensor]) -> torch.Tensor:
    """Run consecutive views of equal resolution as one batch each; concatenate features in view order."""
    outputs, start = [], 0
    while start < len(views):
        end = start
        while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
            end += 1
        outputs.append(backbone(torch.cat(views[start:end])))
        start = end
    return torch.cat(outputs)

"""Optimisers of the recipes: SGD (MoCo-v2), LARS as SwAV's LARC wrapper (trust 0.001, no clipping), AdamW (DINO)."""

from __future__ import annotations

import torch


class LARS(torch.optim.SGD):
    """SGD whose per-parameter step is scaled by ``trust * |w| / (|g| + wd * |w| + eps)``.

    The weight decay is folded into the gradient before scaling (as apex's LARC with ``clip=False``), so the
    inner SGD step runs with weight decay 0.
    """

    def __init__(
        self, params: object, lr: float, momentum: float = 0.9, trust: float = 0.001, eps: float = 1e-8
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum)  # type: ignore[arg-type]
        self.trust = trust
        self.eps = eps

    @torch.no_grad()
    def step(self, closure: object = None) -> None:  # type: ignore[override]
        decays = []
        for group in self.param_groups:
            weight_decay = group["weight_decay"]
            decays.append(weight_decay)
            for param in group["params"]:
                if param.grad is None:
                    continue
                param_norm = torch.linalg.vector_norm(param)
                grad_norm = torch.linalg.vector_norm(param.grad)
                if param_norm > 0 and grad_norm > 0:
                    adaptive = self.trust * param_norm / (grad_norm + param_norm * weight_decay + self.eps)
                    param.grad.add_(param, alpha=weight_decay).mul_(adaptive)
            group["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for group, weight_decay in zip(self.param_groups, decays, strict=True):
                group["weight_decay"] = weight_decay


def build_optimizer(name: str, groups: list[dict], lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r} (sgd | lars | adamw)")


@torch.no_grad()
def clip_per_parameter(parameters: object, max_norm: float) -> None:
    """DINO's clipping: each parameter's gradient is scaled to norm <= ``max_norm`` on its own."""
    for param in parameters:  # type: ignore[attr-defined]
        if param.grad is None:
            continue
        norm = torch.linalg.vector_norm(param.grad)
        coef = max_norm / (norm + 1e-6)
        if coef < 1:
            param.grad.mul_(coef)

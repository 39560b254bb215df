"""DINO (Caron et al. 2021): self-distillation of a student by a momentum teacher over multi-crop views.

Official recipe: 3-layer head to 65,536 dims through a 256-d weight-normalised bottleneck, student temperature
0.1, teacher centring (momentum 0.9) and sharpening with a temperature warmed up linearly, teacher on the two
global crops only, teacher momentum following a cosine from 0.996 to 1, weight decay following a cosine
0.04 -> 0.4 (not on biases and norms), AdamW lr 5e-4 per 256 with 10 warm-up epochs, last layer frozen for the
first epoch, gradient clipping at 3.0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from passkit.ssl.backbones import Backbone
from passkit.ssl.heads import DINOHead
from passkit.ssl.losses import DINOLoss
from passkit.ssl.methods.base import SSLMethod, ema_update, forward_multicrop, frozen_copy, split_decay
from passkit.ssl.schedules import cosine_schedule, teacher_temperature_schedule


class _Network(nn.Module):
    def __init__(self, backbone: Backbone, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.head(forward_multicrop(self.backbone, views))


class DINO(SSLMethod):
    def __init__(
        self,
        make_backbone: Callable[[], Backbone],
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm_last_layer: bool = True,
        momentum_teacher: float = 0.996,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        freeze_last_layer_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.backbone = make_backbone()
        self.student = _Network(
            self.backbone, DINOHead(self.backbone.dim, out_dim, hidden_dim, bottleneck_dim, 3, norm_last_layer)
        )
        self.teacher = frozen_copy(self.student)
        self.loss = DINOLoss(out_dim, student_temp, center_momentum)
        self.momentum_teacher = momentum_teacher
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.freeze_last_layer_epochs = freeze_last_layer_epochs

    def method_schedules(self, epochs: int, iters_per_epoch: int) -> dict[str, np.ndarray]:
        return {
            "momentum": cosine_schedule(self.momentum_teacher, 1.0, epochs, iters_per_epoch),
            "teacher_temp": teacher_temperature_schedule(
                self.warmup_teacher_temp, self.teacher_temp, self.warmup_teacher_temp_epochs, epochs, iters_per_epoch
            ),
        }

    def forward(self, views: list[torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        temps = self.schedules["teacher_temp"]
        temp = float(temps[min(step, len(temps) - 1)])
        with torch.no_grad():
            teacher_out = self.teacher(views[:2])
        student_out = self.student(views)
        loss = self.loss(student_out, teacher_out, len(views), temp)
        return loss, {"teacher_temp": temp}

    def param_groups(self, weight_decay: float) -> list[dict]:
        return split_decay(self.student.named_parameters(), weight_decay)

    def cancel_gradients(self, step: int) -> None:
        if self.epoch_of(step) < self.freeze_last_layer_epochs:
            for param in self.student.head.last_layer.parameters():
                param.grad = None

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        momenta = self.schedules["momentum"]
        m = float(momenta[min(step, len(momenta) - 1)])
        ema_update(self.teacher.parameters(), self.student.parameters(), m)

"""Per-iteration schedules computed up front (as the official DINO): lr, weight decay, momentum, temperature."""

from __future__ import annotations

import numpy as np


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    iters_per_epoch: int,
    warmup_epochs: float = 0,
    warmup_start: float = 0.0,
) -> np.ndarray:
    """Linear warm-up from ``warmup_start`` to ``base`` over ``warmup_epochs``, then a half-cosine to ``final``.

    Returns ``epochs * iters_per_epoch`` values, one per optimisation step.
    """
    total = epochs * iters_per_epoch
    warmup_iters = min(total, round(warmup_epochs * iters_per_epoch))
    warmup = np.linspace(warmup_start, base, warmup_iters) if warmup_iters else np.array([])
    steps = np.arange(total - warmup_iters)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / max(len(steps), 1)))
    return np.concatenate([warmup, cosine]).astype(np.float64)


def constant_schedule(value: float, epochs: int, iters_per_epoch: int) -> np.ndarray:
    return np.full(epochs * iters_per_epoch, value, dtype=np.float64)


def teacher_temperature_schedule(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int, iters_per_epoch: int
) -> np.ndarray:
    """DINO: linear warm-up of the teacher temperature over ``warmup_epochs``, then constant (per iteration)."""
    per_epoch = np.concatenate(
        [np.linspace(warmup_temp, temp, warmup_epochs), np.full(max(epochs - warmup_epochs, 0), temp)]
    )[:epochs]
    return np.repeat(per_epoch, iters_per_epoch)

"""Training configuration: one flat, JSON-serialisable dataclass; method defaults follow the official recipes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    # MoCo-v2: SGD lr 0.03 per 256 images, momentum 0.9, wd 1e-4, cosine to 0.
    "mocov2": {
        "optimizer": "sgd",
        "base_lr": 0.03,
        "lr_ref_batch": 256,
        "final_lr": 0.0,
        "warmup_epochs": 0.0,
        "warmup_start_lr": 0.0,
        "weight_decay": 1e-4,
        "weight_decay_end": 1e-4,
        "clip_grad": 0.0,
    },
    # SwAV: LARS lr 4.8 per 4096 images, 10 warm-up epochs from 0.3, cosine to lr/1000, wd 1e-6.
    "swav": {
        "optimizer": "lars",
        "base_lr": 4.8,
        "lr_ref_batch": 4096,
        "final_lr": 0.0048,
        "warmup_epochs": 10.0,
        "warmup_start_lr": 0.3,
        "weight_decay": 1e-6,
        "weight_decay_end": 1e-6,
        "clip_grad": 0.0,
    },
    # DINO: AdamW lr 5e-4 per 256 images, 10 warm-up epochs, cosine to 1e-6; wd cosine 0.04 -> 0.4; clip 3.0.
    "dino": {
        "optimizer": "adamw",
        "base_lr": 5e-4,
        "lr_ref_batch": 256,
        "final_lr": 1e-6,
        "warmup_epochs": 10.0,
        "warmup_start_lr": 0.0,
        "weight_decay": 0.04,
        "weight_decay_end": 0.4,
        "clip_grad": 3.0,
    },
}


@dataclass
class TrainConfig:
    method: str
    arch: str
    data: str
    out: str
    epochs: int = 100
    batch_size: int = 64  # per rank and micro-batch
    accum_steps: int = 1
    workers: int = 4
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16/fp16 on GPU, fp32 on CPU)
    # Views (None: the recipe's own setting).
    global_size: int = 224
    local_size: int = 96
    n_local: int | None = None
    global_scale: tuple[float, float] | None = None
    local_scale: tuple[float, float] | None = None
    shuffle_buffer: int = 1000
    # Optimisation (None: the method's official default, see METHOD_DEFAULTS).
    optimizer: str | None = None
    base_lr: float | None = None
    lr_ref_batch: int | None = None
    final_lr: float | None = None
    warmup_epochs: float | None = None
    warmup_start_lr: float | None = None
    weight_decay: float | None = None
    weight_decay_end: float | None = None
    clip_grad: float | None = None
    sgd_momentum: float = 0.9
    drop_path_rate: float | None = None
    # Method keyword arguments (e.g. queue_size, n_prototypes, teacher_temp), see ssl/methods/*.py.
    method_args: dict[str, Any] = field(default_factory=dict)
    # Run control.
    save_every: int = 0  # optimiser steps between checkpoints; 0: at the end of every epoch
    log_every: int = 10
    max_steps: int | None = None  # stop after this many steps (a resumable early stop)
    threads: int | None = None  # torch CPU threads per process
    progress: bool = True
    knn_train: str | None = None  # labeled folders (one sub-folder per class) for the online kNN monitor
    knn_val: str | None = None
    knn_every: int = 1  # epochs

    def resolved(self) -> TrainConfig:
        """A copy with every None optimisation field set from the method's defaults (lr endpoints relative to an
        explicit ``base_lr``)."""
        if self.method not in METHOD_DEFAULTS:
            raise ValueError(f"unknown method {self.method!r} (one of {', '.join(METHOD_DEFAULTS)})")
        defaults = METHOD_DEFAULTS[self.method]
        updates = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.base_lr is not None:
            # A changed base lr keeps the recipe's schedule shape: the warm-up start and the final lr stay the
            # recipe's fractions of its base lr (SwAV's absolute 0.3 start would be 300x an AdamW lr of 1e-3).
            for key in ("warmup_start_lr", "final_lr"):
                if getattr(self, key) is None:
                    updates[key] = self.base_lr * defaults[key] / defaults["base_lr"]
        return dataclasses.replace(self, **updates)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        values = dict(values)
        for key in ("global_scale", "local_scale"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def apply_overrides(cfg: TrainConfig, pairs: list[str]) -> TrainConfig:
    """``KEY=VALUE`` strings (VALUE parsed as JSON when possible); unknown keys go to ``method_args``."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    updates: dict[str, Any] = {}
    method_args = dict(cfg.method_args)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} is not KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        key = key.replace("-", "_")
        if key == "method_args":
            if not isinstance(value, dict):
                raise ValueError(f"method_args must be a JSON object, got {raw!r}")
            method_args.update(value)
        elif key in names:
            updates[key] = tuple(value) if key.endswith("_scale") and value is not None else value
        else:
            method_args[key] = value
    return dataclasses.replace(cfg, **updates, method_args=method_args)

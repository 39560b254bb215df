"""Named recipes: the PASS paper's three pretraining runs, and tiny CPU versions for smoke runs and demos.

The paper presets reproduce the official repositories' settings for the global batch given (MoCo-v2: ``main_moco.py``
with ``--lr 0.03 --batch-size 256 --mlp --moco-t 0.2 --aug-plus --cos``; SwAV: ``scripts/swav_200ep_pretrain.sh``;
DINO: the README's 300-epoch ViT-S/16 command with teacher temp 0.07 warmed up over 30 epochs and an unnormalised
last layer -- the run the PASS model ``dino_deit_300ep_ttemp0o07_warumup30ep_normlayerF`` names); ``batch_size`` is
per rank, so launch them with the listed number of GPUs (or set ``accum_steps``) to keep the global batch —
learning rates are scaled linearly from each recipe's reference batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: dict[str, Any]
    gpus: int = 0
    cost: str = ""


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "pass-mocov2-r50-200ep",
            "MoCo-v2, ResNet-50, 200 epochs, global batch 256 (8 GPUs x 32), queue 65,536, m 0.999, T 0.2",
            {
                "method": "mocov2",
                "arch": "resnet50",
                "epochs": 200,
                "batch_size": 32,
                "global_size": 224,
                "workers": 8,
                "method_args": {"queue_size": 65536, "momentum": 0.999, "temperature": 0.2, "dim": 128},
            },
            gpus=8,
            cost="424 V100 GPU-hours (the MoCo README: 200 epochs took 53 h on 8 V100s)",
        ),
        Preset(
            "pass-swav-r50-200ep",
            "SwAV, ResNet-50, 200 epochs, 2x224 + 6x96 crops, global batch 4096 (64 GPUs x 64), 3,000 prototypes",
            {
                "method": "swav",
                "arch": "resnet50",
                "epochs": 200,
                "batch_size": 64,
                "global_size": 224,
                "local_size": 96,
                "n_local": 6,
                "global_scale": (0.14, 1.0),
                "local_scale": (0.05, 0.14),
                "workers": 8,
                "precision": "fp16",
                "method_args": {
                    "n_prototypes": 3000,
                    "epsilon": 0.05,
                    "sinkhorn_iterations": 3,
                    "temperature": 0.1,
                    "queue_length": 0,  # the batch-4,096 script has no queue (3,840 from epoch 15 is batch 256's)
                    "freeze_prototypes_iters": 313,  # one ImageNet epoch at batch 4,096 (5,005 is batch 256's)
                },
            },
            gpus=64,
            cost=(
                "about 780 GPU-hours, estimated from the SwAV README's 3 min 40 s per epoch at batch 4,096 x 200 "
                "epochs x the 64 GPUs its 200-epoch script requests"
            ),
        ),
        Preset(
            "pass-dino-vits16-300ep",
            "DINO, ViT-S/16, 300 epochs, 2x224 + 8x96 crops, batch 1024 (16 GPUs x 64), teacher temp 0.04->0.07",
            {
                "method": "dino",
                "arch": "vit_small",
                "epochs": 300,
                "batch_size": 64,
                "global_size": 224,
                "local_size": 96,
                "n_local": 8,
                "global_scale": (0.4, 1.0),
                "local_scale": (0.05, 0.4),
                "workers": 10,
                "drop_path_rate": 0.1,
                "method_args": {
                    "out_dim": 65536,
                    "norm_last_layer": False,
                    "momentum_teacher": 0.996,
                    "warmup_teacher_temp": 0.04,
                    "teacher_temp": 0.07,
                    "warmup_teacher_temp_epochs": 30,
                    "freeze_last_layer_epochs": 1,
                },
            },
            gpus=16,
            cost="about 1,000 GPU-hours (the DINO README: this 300-epoch run takes 2.6 days on 16 GPUs)",
        ),
        Preset(
            "tiny-mocov2",
            "MoCo-v2 at 16 px on a 4-block ViT: a CPU smoke run (about a minute for ~2,000 images on 2 cores)",
            {
                "method": "mocov2",
                "arch": "vit_micro",
                "epochs": 4,
                "batch_size": 32,
                "global_size": 16,
                "global_scale": (0.4, 1.0),
                "workers": 1,
                "optimizer": "adamw",
                "base_lr": 1e-3,
                "lr_ref_batch": 32,
                "warmup_epochs": 0.1,
                "weight_decay": 0.05,
                "weight_decay_end": 0.05,
                "log_every": 5,
                "method_args": {"queue_size": 256, "momentum": 0.9, "temperature": 0.5},
            },
        ),
        Preset(
            "tiny-swav",
            "SwAV at 16 px (2x16 + 2x8 crops) on a 4-block ViT: a CPU smoke run",
            {
                "method": "swav",
                "arch": "vit_micro",
                "epochs": 4,
                "batch_size": 32,
                "global_size": 16,
                "local_size": 8,
                "n_local": 2,
                "global_scale": (0.4, 1.0),
                "local_scale": (0.2, 0.4),
                "workers": 1,
                "optimizer": "adamw",
                "base_lr": 1e-3,
                "lr_ref_batch": 32,
                "warmup_epochs": 0.1,
                "weight_decay": 0.05,
                "weight_decay_end": 0.05,
                "log_every": 5,
                "method_args": {
                    "n_prototypes": 100,
                    "hidden_dim": 256,
                    "freeze_prototypes_iters": 20,
                    "queue_length": 256,
                    "queue_start_epoch": 0,
                },
            },
        ),
        Preset(
            "tiny-dino",
            "DINO at 16 px (2x16 + 2x8 crops) on a 4-block ViT: a CPU smoke run (about a minute for ~2,000 images)",
            {
                "method": "dino",
                "arch": "vit_micro",
                "epochs": 4,
                "batch_size": 32,
                "global_size": 16,
                "local_size": 8,
                "n_local": 2,
                "global_scale": (0.4, 1.0),
                "workers": 1,
                "base_lr": 5e-3,
                "warmup_epochs": 0.1,
                "drop_path_rate": 0.0,
                "log_every": 5,
                "method_args": {
                    "out_dim": 256,
                    "hidden_dim": 256,
                    "bottleneck_dim": 64,
                    "momentum_teacher": 0.95,
                    "teacher_temp": 0.04,
                    "freeze_last_layer_epochs": 0,
                },
            },
        ),
    )
}


def preset_settings(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (one of {', '.join(PRESETS)})")
    return dict(PRESETS[name].settings)

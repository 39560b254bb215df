"""Configuration resolution: recipe defaults, and lr endpoints that follow an explicit base lr."""

import pytest

from passkit.ssl.config import METHOD_DEFAULTS, TrainConfig
from passkit.ssl.presets import PRESETS, preset_settings


def _cfg(method, **changes):
    return TrainConfig(method=method, arch="resnet18", data="d", out="o", **changes).resolved()


def test_recipe_defaults_fill_unset_fields():
    cfg = _cfg("swav")
    assert (cfg.optimizer, cfg.base_lr, cfg.warmup_start_lr, cfg.final_lr) == ("lars", 4.8, 0.3, 0.0048)


def test_explicit_base_lr_scales_the_recipes_warmup_start_and_final_lr():
    # SwAV's absolute warm-up start (0.3) under an AdamW lr of 1e-3 made tiny-swav's first steps 300x too large.
    cfg = _cfg("swav", optimizer="adamw", base_lr=1e-3)
    assert cfg.warmup_start_lr == pytest.approx(1e-3 * 0.3 / 4.8)
    assert cfg.final_lr == pytest.approx(1e-3 * 0.0048 / 4.8)
    assert _cfg("dino", base_lr=1e-3).final_lr == pytest.approx(1e-3 * 1e-6 / 5e-4)
    assert _cfg("swav", base_lr=1e-3, final_lr=0.0, warmup_start_lr=1e-4).final_lr == 0.0  # explicit values kept


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_preset_schedule_starts_or_ends_above_its_base_lr(name):
    cfg = TrainConfig.from_dict({**preset_settings(name), "data": "d", "out": "o"}).resolved()
    assert cfg.method in METHOD_DEFAULTS
    assert 0 <= cfg.warmup_start_lr <= cfg.base_lr
    assert 0 <= cfg.final_lr <= cfg.base_lr

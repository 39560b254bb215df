"""Presets of the human filter: which models run on which views, at what decoding size, fused how."""

from __future__ import annotations

from dataclasses import dataclass, field

from passkit.detect.ensemble import Pass
from passkit.detect.fusion import Combiner, shipped_combiners


@dataclass(frozen=True)
class Preset:
    name: str
    passes: tuple[Pass, ...]
    decode_max_side: int  # long side of the copy the detectors see (JPEG draft decoding down to it)
    description: str
    extra_rules: dict[str, float] = field(default_factory=dict)  # uncalibrated OR-rules added to the combiner

    def combiner(self) -> Combiner:
        """The fitted combiner of this preset (``strong`` reuses ``default``'s and adds its own OR-rules)."""
        fitted = shipped_combiners()
        base = fitted.get(self.name) or fitted["default"]
        missing = [f for f in base.passes if f not in {p.feature for p in self.passes}]
        if missing:
            raise ValueError(f"preset {self.name}: combiner reads passes {missing} that the preset does not run")
        rules = {**base.rules, **self.extra_rules}
        return Combiner(
            base.features, base.weights, base.intercept, base.threshold, rules, {**base.tasks, **self._tasks()}, base.cv
        )

    @property
    def zoom_seeds(self) -> tuple[str, ...]:
        """The passes whose boxes are the candidates of the zoom passes: every fixed-view person pass."""
        from passkit.detect.registry import get_entry

        return tuple(p.feature for p in self.passes if not p.zoom and get_entry(p.model).task == "person")

    def _tasks(self) -> dict[str, str]:
        from passkit.detect.registry import get_entry

        return {p.feature: get_entry(p.model).task for p in self.passes}


def _passes(*specs: str) -> tuple[Pass, ...]:
    return tuple(Pass(*spec.split("@")) for spec in specs)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="fast",
            passes=_passes("yolox_nano@full", "yolox_nano@tiles2", "fastestdet@full", "yunet@full"),
            decode_max_side=640,
            description="CPU: YOLOX-Nano on the image and a 2x2 tiling, FastestDet, YuNet faces.",
        ),
        Preset(
            name="default",
            passes=_passes(
                "yolox_nano@full",
                "yolox_nano@tiles2",
                "yolox_nano@tiles3",
                "nanodet_m@full",
                "nanodet_m@tiles2",
                "fastestdet@full",
                "fastestdet@tiles2",
                "yunet@full",
                "ultraface_rfb320@full",
                "yolox_nano@zoom4",
            ),
            decode_max_side=1024,
            description="CPU or GPU: three person detectors on the image and 2x2 / 3x3 tilings, two face detectors, "
            "and a zoom-in second look of YOLOX-Nano at the 4 best person candidates.",
        ),
        Preset(
            name="strong",
            passes=_passes(
                "yolox_nano@full",
                "yolox_nano@tiles2",
                "yolox_nano@tiles3",
                "nanodet_m@full",
                "nanodet_m@tiles2",
                "fastestdet@full",
                "fastestdet@tiles2",
                "yunet@full",
                "ultraface_rfb320@full",
                "yolox_nano@zoom4",
                "yolox_x@full",
                "yolox_x@tiles2",
            ),
            decode_max_side=1280,
            description="GPU: the default ensemble plus YOLOX-X on the image and a 2x2 tiling (OR-rule, only adds "
            "rejections).",
            extra_rules={"yolox_x@full": 0.3, "yolox_x@tiles2": 0.3},
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None

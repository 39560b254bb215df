"""``passkit pretrain``: settings from preset + flags, or from the run folder when resuming; a final summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from passkit.ssl.config import TrainConfig, apply_overrides
from passkit.ssl.data import DataError
from passkit.ssl.presets import preset_settings
from passkit.ssl.train import ResumeError, train


def resolve_config(
    out: Path,
    data: Path | None,
    method: str | None,
    arch: str | None,
    preset: str | None,
    resume: bool,
    flags: dict[str, Any],
    overrides: list[str],
) -> TrainConfig:
    """Preset < explicit flags < ``--set`` overrides; a resumed run starts from its saved config.json."""
    saved = out / "config.json"
    if resume and saved.exists():
        settings: dict[str, Any] = json.loads(saved.read_text())
        settings.pop("max_steps", None)  # an early stop belongs to the invocation that asked for it
    else:
        settings = preset_settings(preset) if preset else {}
    explicit = {"data": str(data) if data else None, "method": method, "arch": arch}
    settings.update({k: v for k, v in explicit.items() if v is not None})
    settings.update(flags)
    settings["out"] = str(out)
    missing = [name for name in ("method", "arch", "data") if not settings.get(name)]
    if missing:
        raise ValueError(f"missing --{', --'.join(missing)} (or a --preset that sets them)")
    return apply_overrides(TrainConfig.from_dict(settings), overrides)


def run_pretrain(
    out: Path,
    data: Path | None,
    method: str | None,
    arch: str | None,
    preset: str | None,
    resume: bool,
    flags: dict[str, Any],
    overrides: list[str],
    console: Console,
    err_console: Console,
) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve_config(out, data, method, arch, preset, resume, flags, overrides)
        result = train(cfg, resume=resume)
    except (ValueError, ResumeError, DataError, FileNotFoundError) as error:
        err_console.print(f"[red]passkit pretrain:[/] {error}")
        return 1
    from passkit.ssl import distributed

    if distributed.rank() != 0:
        return 0
    table = Table(title=f"pretrain {cfg.method} / {cfg.arch}", show_header=False)
    table.add_row("run folder", str(result.run))
    table.add_row("steps done", str(result.steps))
    table.add_row("epochs done", str(result.epochs_done))
    if result.losses:
        table.add_row("loss first / last", f"{result.losses[0]:.4f} / {result.losses[-1]:.4f}")
    table.add_row("images/s (this session)", f"{result.images_per_second:.1f}")
    finished = (result.run / "backbone.pt").exists()
    table.add_row("backbone", str(result.run / "backbone.pt") if finished else "not finished (use --resume)")
    console.print(table)
    return 0

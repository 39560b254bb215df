"""Evaluation results as self-describing JSON: every number carries its protocol, data and checkpoint.

One file per (metric, protocol, checkpoint, datasets): re-running the same evaluation replaces its file, a
different protocol or checkpoint writes another. Fields::

    schema, metric, value, metrics {top1, top5, ...}, protocol {name, every hyper-parameter, seed, features
    transform}, dataset {train, val: name, split, source, n, classes, file_list_sha256, skipped}, checkpoint
    {arch, sha256, path, random_init, seed, encoder, method, image_size}, passkit_version, created, device, seconds
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from passkit import __version__
from passkit.core.atomic import atomic_path

log = logging.getLogger(__name__)
SCHEMA = "passkit.eval/1"


def make_result(
    metric: str,
    metrics: dict[str, float],
    protocol: dict[str, Any],
    dataset: dict[str, Any],
    checkpoint: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A result whose ``value`` is ``metrics['top1']`` (the headline number of every protocol here)."""
    return {
        "schema": SCHEMA,
        "metric": metric,
        "value": metrics["top1"],
        "metrics": metrics,
        "protocol": protocol,
        "dataset": dataset,
        "checkpoint": checkpoint,
        "passkit_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def result_id(result: dict[str, Any]) -> str:
    """Digest of what identifies an evaluation: metric, protocol, datasets and checkpoint (not its outcome)."""
    identity = {key: result[key] for key in ("metric", "protocol", "dataset", "checkpoint")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def result_filename(result: dict[str, Any]) -> str:
    checkpoint = result["checkpoint"]
    who = f"{checkpoint['arch']}-random" if checkpoint.get("random_init") else checkpoint["arch"]
    val = result["dataset"]["val"]["name"]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in f"{result['protocol']['name']}-{who}-{val}")
    return f"{safe}-{result_id(result)[:12]}.json"


def write_result(result: dict[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / result_filename(result)
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def read_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every passkit result JSON under ``folder`` (other JSON files are ignored), each with its ``_path``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    results = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
            log.warning("%s: not readable JSON (%s), ignored", path, error)
            continue
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            results.append({**data, "_path": str(path)})
    return results


def protocol_label(protocol: dict[str, Any]) -> str:
    name = protocol.get("name", "?")
    if name == "knn":
        return f"kNN k={protocol['k']} T={protocol['temperature']:g}"
    if name == "linear-moco":
        return f"linear MoCo SGD {protocol['epochs']} ep, lr={protocol.get('selected_lr', '?'):g}"
    if name == "linear-lbfgs":
        return f"linear L-BFGS, C={protocol.get('selected_C', 0):.3g}"
    return str(name)


def checkpoint_label(checkpoint: dict[str, Any]) -> str:
    if checkpoint.get("random_init"):
        return f"{checkpoint['arch']} random init (seed {checkpoint.get('seed')})"
    method = f"{checkpoint['method']} " if checkpoint.get("method") else ""
    encoder = f" [{checkpoint['encoder']}]" if checkpoint.get("encoder", "backbone") != "backbone" else ""
    return f"{method}{checkpoint['arch']} {checkpoint['sha256'][:12]}{encoder}"


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One display row per result, sorted by dataset, protocol, then value (best first)."""
    ordered = sorted(
        results,
        key=lambda r: (
            r["dataset"]["val"]["name"],
            r["protocol"].get("name", ""),
            r["protocol"].get("k", 0),
            -float(r["value"]),
        ),
    )
    rows = []
    for result in ordered:
        val, train = result["dataset"]["val"], result["dataset"]["train"]
        top5 = result["metrics"].get("top5")
        rows.append(
            {
                "dataset": f"{val['name']} ({train['n']:,} train / {val['n']:,} {val['split']})",
                "checkpoint": checkpoint_label(result["checkpoint"]),
                "protocol": protocol_label(result["protocol"]),
                "top1": f"{100 * float(result['value']):.2f}",
                "top5": "-" if top5 is None else f"{100 * float(top5):.2f}",
                "seed": str(result["protocol"].get("seed", "-")),
                "file": Path(result.get("_path", "")).name,
            }
        )
    return rows

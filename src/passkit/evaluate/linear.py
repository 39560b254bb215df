"""Linear probes on frozen (cached) features, two protocols whose numbers are *not* comparable with each other.

- ``moco``: the MoCo linear classification recipe — a linear layer (weights N(0, 0.01), bias 0) trained with SGD
  (momentum 0.9, no weight decay, batch 256) for 100 epochs, learning rate divided by 10 at epochs 60 and 80. The
  learning rate is swept (MoCo's own value is 30) and chosen on a seeded held-out part of the training set; the
  chosen rate is then trained on the whole training set and evaluated once on val. MoCo's recipe also augments
  each epoch (random resized crop + flip); on cached centre-crop features it cannot, which is recorded.
- ``lbfgs``: the CLIP-paper protocol — multinomial logistic regression fitted by L-BFGS (up to 1,000 iterations)
  with the L2 strength C chosen on a held-out split: a log-spaced sweep over 1e-6..1e6, then a bisection around the
  best value in log space; the selected C is refitted on the whole training set. The objective is scikit-learn's
  ``C * sum(log loss) + |W|^2 / 2`` (bias unpenalised), divided by ``C * n``. Solver: torch's L-BFGS (CPU or
  GPU; scikit-learn's, as CLIP used, with ``backend="sklearn"``); each fit is warm-started from the nearest C already
  fitted (a strictly convex problem: the same minimiser, found sooner).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from passkit.evaluate.knn import topk_correct


@dataclass(frozen=True)
class MocoProbeConfig:
    lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # MoCo's own: 30
    epochs: int = 100
    milestones: tuple[int, ...] = (60, 80)
    gamma: float = 0.1
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 0.0
    init_std: float = 0.01
    holdout: float = 0.1
    seed: int = 0

    def protocol(self) -> dict[str, Any]:
        return {
            "name": "linear-moco",
            "optimizer": "sgd",
            **asdict(self),
            "schedule": "step",
            "selection": f"lr with the best top-1 on a seeded {self.holdout:.0%} held-out part of train",
            "augmentation": "none (cached centre-crop features; MoCo's recipe uses random resized crop + flip)",
        }


@dataclass(frozen=True)
class LbfgsProbeConfig:
    c_min: float = 1e-6
    c_max: float = 1e6
    coarse_steps: int = 13  # log-spaced values from c_min to c_max
    refine_steps: int = 6  # bisections in log10 space around the best coarse value
    max_iter: int = 1000
    tolerance: float = 1e-4  # on the largest gradient entry, as scikit-learn's lbfgs ``tol``
    holdout: float = 0.1
    seed: int = 0
    backend: str = "torch"  # torch (CPU or GPU) | sklearn (scipy's L-BFGS-B, CLIP's) | auto (sklearn on CPU)

    def protocol(self) -> dict[str, Any]:
        return {
            "name": "linear-lbfgs",
            "optimizer": "lbfgs",
            **asdict(self),
            "loss": "multinomial logistic, L2 on weights (sklearn's C), bias unpenalised",
            "selection": f"C with the best top-1 on a seeded {self.holdout:.0%} held-out part of train",
        }


@dataclass
class ProbeResult:
    top1: float
    top5: float
    selected: dict[str, float]
    sweep: list[dict[str, float]] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, held-out) index split of ``range(n)``; the held-out part has at least one item."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError("need at least 2 training items to hold some out")
    order = np.random.default_rng(seed).permutation(n)
    n_out = min(n - 1, max(1, round(n * fraction)))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def _accuracies(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    return (
        float(topk_correct(logits, labels, 1).float().mean()),
        float(topk_correct(logits, labels, 5).float().mean()),
    )


def train_sgd_probe(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, lr: float, cfg: MocoProbeConfig
) -> torch.nn.Linear:
    """One MoCo-recipe training run of a linear layer on features ``x`` (on their device)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    layer = torch.nn.Linear(x.shape[1], n_classes).to(x.device)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * cfg.init_std)
        layer.bias.zero_()
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(layer(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
    return layer


def moco_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    n_classes: int,
    cfg: MocoProbeConfig = MocoProbeConfig(),
) -> ProbeResult:
    fit, held = holdout_split(len(train_x), cfg.holdout, cfg.seed)
    fit_t, held_t = torch.as_tensor(fit, device=train_x.device), torch.as_tensor(held, device=train_x.device)
    sweep = []
    for lr in cfg.lrs:
        layer = train_sgd_probe(train_x[fit_t], train_y[fit_t], n_classes, lr, cfg)
        with torch.no_grad():
            top1, _ = _accuracies(layer(train_x[held_t]), train_y[held_t])
        sweep.append({"lr": lr, "heldout_top1": top1})
    best = max(sweep, key=lambda row: (row["heldout_top1"], -row["lr"]))
    layer = train_sgd_probe(train_x, train_y, n_classes, best["lr"], cfg)
    with torch.no_grad():
        top1, top5 = _accuracies(layer(val_x), val_y)
    return ProbeResult(top1, top5, {"lr": best["lr"]}, sweep)


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    c: float,
    max_iter: int = 1000,
    tolerance: float = 1e-4,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS: minimises mean log loss + |W|^2 / (2 C n). Returns (W, b).

    Stops when the largest gradient entry is below ``tolerance`` or after ``max_iter`` iterations.
    """
    if c <= 0:
        raise ValueError(f"C must be > 0, got {c}")
    n, dim = x.shape
    weight = (init[0].clone() if init else torch.zeros(dim, n_classes, device=x.device, dtype=x.dtype)).requires_grad_()
    bias = (init[1].clone() if init else torch.zeros(n_classes, device=x.device, dtype=x.dtype)).requires_grad_()
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        max_eval=max_iter * 5 // 4,
        tolerance_grad=tolerance,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    penalty = 0.5 / (c * n)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_logistic_sklearn(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    c: float,
    max_iter: int = 1000,
    tolerance: float = 1e-4,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit_logistic` by scikit-learn's ``LogisticRegression(solver="lbfgs")`` (scipy's L-BFGS-B), as the
    CLIP paper ran it. Same objective, same (W, b) layout. BLAS threads are limited to torch's thread count.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    features, labels = x.detach().cpu().double().numpy(), y.detach().cpu().numpy()
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, tol=tolerance, warm_start=init is not None)
    present = np.unique(labels)
    if init is not None and len(present) > 2:
        model.coef_ = init[0].cpu().double().numpy().T[present].copy()
        model.intercept_ = init[1].cpu().double().numpy()[present].copy()
    with warnings.catch_warnings(), threadpool_limits(torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is part of the protocol
        model.fit(features, labels)
    weight = np.zeros((x.shape[1], n_classes))
    bias = np.full(n_classes, -1e9)  # classes absent from the fit are never predicted
    if len(present) == 2:  # scikit-learn fits one binary logit: class 1 scores w.x + b against class 0's 0
        weight[:, present[1]], bias[present[0]], bias[present[1]] = model.coef_[0], 0.0, model.intercept_[0]
    else:
        weight[:, present], bias[present] = model.coef_.T, model.intercept_
    return (
        torch.as_tensor(weight, dtype=x.dtype, device=x.device),
        torch.as_tensor(bias, dtype=x.dtype, device=x.device),
    )


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto``: scikit-learn (the CLIP paper's solver) for features on the CPU when it is installed, else torch.
    Neither is faster everywhere (benchmarks/eval_probes_vs_sklearn.py, docs/eval.md): torch is the default."""
    if backend not in ("auto", "sklearn", "torch"):
        raise ValueError(f"unknown L-BFGS backend {backend!r} (auto | sklearn | torch)")
    if backend != "auto":
        return backend
    if device.type != "cpu" or importlib.util.find_spec("sklearn") is None:
        return "torch"
    return "sklearn"


def lbfgs_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    n_classes: int,
    cfg: LbfgsProbeConfig = LbfgsProbeConfig(),
) -> ProbeResult:
    fit, held = holdout_split(len(train_x), cfg.holdout, cfg.seed)
    fit_t, held_t = torch.as_tensor(fit, device=train_x.device), torch.as_tensor(held, device=train_x.device)
    fx, fy, hx, hy = train_x[fit_t], train_y[fit_t], train_x[held_t], train_y[held_t]
    backend = resolve_backend(cfg.backend, train_x.device)
    fitter = fit_logistic_sklearn if backend == "sklearn" else fit_logistic
    scores: dict[float, float] = {}
    solutions: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def score(log_c: float) -> float:
        log_c = round(log_c, 6)
        if log_c not in scores:
            # Warm start from the nearest C already fitted: the problem is strictly convex, so only time changes.
            nearest = min(solutions, key=lambda k: abs(k - log_c)) if solutions else None
            init = solutions[nearest] if nearest is not None else None
            weight, bias = fitter(fx, fy, n_classes, 10.0**log_c, cfg.max_iter, cfg.tolerance, init)
            solutions[log_c] = (weight, bias)
            scores[log_c] = _accuracies(hx @ weight + bias, hy)[0]
        return scores[log_c]

    lo, hi = math.log10(cfg.c_min), math.log10(cfg.c_max)
    grid = np.linspace(lo, hi, cfg.coarse_steps) if cfg.coarse_steps > 1 else np.array([lo])
    for log_c in grid:
        score(float(log_c))
    # Ties go to the smaller C (stronger regularisation).
    best = max(scores, key=lambda k: (scores[k], -k))
    step = (grid[1] - grid[0]) / 2 if len(grid) > 1 else 0.0
    for _ in range(cfg.refine_steps if step else 0):
        candidates = [k for k in (best - step, best, best + step) if lo - 1e-9 <= k <= hi + 1e-9]
        best = max(candidates, key=lambda k: (score(k), -k))
        step /= 2
    c = float(10.0**best)
    weight, bias = fitter(train_x, train_y, n_classes, c, cfg.max_iter, cfg.tolerance)
    top1, top5 = _accuracies(val_x @ weight + bias, val_y)
    sweep = [{"C": float(10.0**k), "heldout_top1": v} for k, v in sorted(scores.items())]
    return ProbeResult(top1, top5, {"C": c}, sweep, {"backend": backend})

"""passkit's kNN and L-BFGS probe against scikit-learn on the same frozen features: time ratio and agreement.

Features: a randomly initialised ``vit_micro`` at 16 px (128-d) over scikit-learn's 1,797 digits, extracted once;
train/val = the seeded 80/20 split of ``write_digits_imagefolder``. Both sides then run in this process, one thread,
alternating per repeat (median), so they see the same machine load.

- kNN: passkit's DINO-weighted 20-NN (``knn_votes``) vs ``KNeighborsClassifier(20, metric="cosine",
  weights=exp((1 - d) / T))`` (the same classifier: cosine distance d = 1 - similarity); agreement of predictions.
- L-BFGS: ``fit_logistic`` (torch) vs ``LogisticRegression(solver="lbfgs")`` (the CLIP paper's) at the same C,
  tolerance and iteration cap; agreement of val predictions and the objective each reaches.

    python benchmarks/eval_probes_vs_sklearn.py [--repeats 3] [--device cpu|cuda]
Informs the L-BFGS backend of ``--protocol lbfgs``: the figures in docs/eval.md show neither solver faster
everywhere on a CPU (scikit-learn on one thread here, torch with the default threads on trained features), so the
default is torch, which also runs on a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


def features(device: str) -> tuple[torch.Tensor, ...]:
    from passkit.evaluate import FeatureOptions, write_digits_imagefolder
    from passkit.evaluate.run import extract_pair, prepare_backbone

    with tempfile.TemporaryDirectory() as tmp:
        train_dir, val_dir = write_digits_imagefolder(f"{tmp}/digits", size=16)
        backbone, info = prepare_backbone(None, random_init=True, arch="vit_micro", image_size=16)
        options = FeatureOptions(crop_ratio=1.0, cache=False, device=device)
        _, _, ftrain, fval, _ = extract_pair(backbone, info, train_dir, val_dir, options)
    return (
        torch.tensor(ftrain.features),
        torch.tensor(ftrain.labels),
        torch.tensor(fval.features),
        torch.tensor(fval.labels),
    )


def objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, c: float) -> float:
    logits = x.double() @ w.double() + b.double()
    finite = torch.where(torch.isfinite(logits), logits, torch.full_like(logits, -1e30))
    return float(F.cross_entropy(finite, y) + 0.5 / (c * len(x)) * w.double().pow(2).sum())


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    from passkit.evaluate.knn import knn_votes
    from passkit.evaluate.linear import fit_logistic, fit_logistic_sklearn

    train_x, train_y, val_x, val_y = features(args.device)
    print(f"features: train {tuple(train_x.shape)}, val {tuple(val_x.shape)} (random-init vit_micro, 16 px digits)")
    dev = torch.device(args.device)
    tx, ty, vx = train_x.to(dev), train_y.to(dev), val_x.to(dev)

    with threadpool_limits(1):
        t_ours, votes = timed(lambda: knn_votes(tx, ty, vx, 20, 0.07, n_classes=10).argmax(1).cpu(), args.repeats)
        model = KNeighborsClassifier(20, metric="cosine", weights=lambda d: np.exp((1 - d) / 0.07), algorithm="brute")

        def sk_knn():
            return model.fit(train_x.numpy(), train_y.numpy()).predict(val_x.numpy())

        t_sk, predicted = timed(sk_knn, args.repeats)
    agree = float((votes.numpy() == predicted).mean())
    accuracy = float((votes == val_y).float().mean())
    print(f"kNN k=20: passkit {t_ours * 1e3:.1f} ms vs scikit-learn {t_sk * 1e3:.1f} ms = {t_ours / t_sk:.3f}x; "
          f"predictions agree {agree:.4f}; top-1 {accuracy:.4f}")  # fmt: skip

    for c in (1.0, 100.0, 1e4):
        with threadpool_limits(1):
            t_ours, (w_t, b_t) = timed(lambda c=c: fit_logistic(tx, ty, 10, c, 1000, 1e-4), args.repeats)
            t_sk, (w_s, b_s) = timed(
                lambda c=c: fit_logistic_sklearn(train_x, train_y, 10, c, 1000, 1e-4), args.repeats
            )
        p_t = (vx @ w_t + b_t).argmax(1).cpu()
        p_s = (val_x @ w_s + b_s).argmax(1)
        agree = float((p_t == p_s).float().mean())
        acc_t, acc_s = float((p_t == val_y).float().mean()), float((p_s == val_y).float().mean())
        obj_t = objective(train_x, train_y, w_t.cpu(), b_t.cpu(), c)
        obj_s = objective(train_x, train_y, w_s, b_s, c)
        print(
            f"L-BFGS C={c:g}: torch {t_ours:.3f} s vs scikit-learn {t_sk:.3f} s = {t_ours / t_sk:.3f}x; "
            f"val agree {agree:.4f}; top-1 torch {acc_t:.4f} / sklearn {acc_s:.4f}; "
            f"objective torch {obj_t:.5f} / sklearn {obj_s:.5f}"
        )


if __name__ == "__main__":
    main()

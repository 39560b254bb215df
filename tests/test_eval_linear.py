"""Linear probes recover a linearly separable labelling; the torch L-BFGS fit agrees with scikit-learn's."""

import pytest

torch = pytest.importorskip("torch")

from passkit.evaluate.linear import (  # noqa: E402
    LbfgsProbeConfig,
    MocoProbeConfig,
    fit_logistic,
    fit_logistic_sklearn,
    holdout_split,
    lbfgs_probe,
    moco_probe,
)

torch.set_num_threads(1)


def separable(n, dim=12, classes=4, seed=0):
    """Labels given by the argmax of a fixed random linear map: linearly separable by construction."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.randn(dim, classes, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, dim, generator=generator)
    scores = x @ truth
    top2 = scores.topk(2, dim=1).values
    x = x[(top2[:, 0] - top2[:, 1]) > 0.3]  # a margin, so the separating map is well defined
    return x, (x @ truth).argmax(dim=1)


@pytest.fixture(scope="module")
def data():
    train_x, train_y = separable(600, seed=0)
    val_x, val_y = separable(300, seed=1)
    return train_x, train_y, val_x, val_y


def test_lbfgs_probe_recovers_a_separable_labelling(data):
    cfg = LbfgsProbeConfig(coarse_steps=7, refine_steps=2)
    result = lbfgs_probe(*data, 4, cfg)
    assert result.top1 >= 0.97, result
    assert result.top5 == 1.0
    assert result.selected["C"] >= 1.0  # separable data wants weak regularisation
    assert 7 < len(result.sweep) <= 7 + 2 * 2  # the coarse grid, then up to 2 new values per bisection
    assert all(cfg.c_min <= row["C"] <= cfg.c_max * (1 + 1e-9) for row in result.sweep)


def test_moco_probe_recovers_a_separable_labelling(data):
    cfg = MocoProbeConfig(lrs=(0.01, 1.0), epochs=30, milestones=(18, 24))
    result = moco_probe(*data, 4, cfg)
    assert result.top1 >= 0.95, result
    assert result.selected["lr"] == 1.0  # 0.01 for 30 epochs underfits
    assert [row["lr"] for row in result.sweep] == [0.01, 1.0]


def test_random_labels_are_not_learnt(data):
    train_x, _, val_x, _ = data
    generator = torch.Generator().manual_seed(3)
    noise_train = torch.randint(0, 4, (len(train_x),), generator=generator)
    noise_val = torch.randint(0, 4, (len(val_x),), generator=generator)
    result = lbfgs_probe(train_x, noise_train, val_x, noise_val, 4, LbfgsProbeConfig(coarse_steps=5, refine_steps=0))
    assert result.top1 < 0.45  # chance is 0.25


def test_torch_lbfgs_agrees_with_scikit_learn(data):
    pytest.importorskip("sklearn")
    train_x, train_y, val_x, _ = data
    for c in (0.01, 1.0):
        w_t, b_t = fit_logistic(train_x.double(), train_y, 4, c, max_iter=500, tolerance=1e-7)
        w_s, b_s = fit_logistic_sklearn(train_x.double(), train_y, 4, c, max_iter=500, tolerance=1e-7)
        agree = ((val_x.double() @ w_t + b_t).argmax(1) == (val_x.double() @ w_s + b_s).argmax(1)).float().mean()
        assert agree >= 0.99
        # Same objective, same minimiser (the L2 penalty pins the weights' softmax shift invariance).
        torch.testing.assert_close(w_t, w_s, rtol=0, atol=2e-3 * max(1.0, float(w_s.abs().max())))


def test_holdout_split_is_seeded_and_disjoint():
    fit, held = holdout_split(100, 0.1, seed=4)
    assert len(held) == 10 and len(fit) == 90
    assert not set(fit) & set(held)
    again, _ = holdout_split(100, 0.1, seed=4)
    other, _ = holdout_split(100, 0.1, seed=5)
    assert (fit == again).all() and not (fit == other).all()
    with pytest.raises(ValueError):
        holdout_split(100, 0.0, 0)

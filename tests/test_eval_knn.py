"""The weighted kNN classifier against a brute-force reference written from DINO's definition."""

import math

import pytest

torch = pytest.importorskip("torch")

from passkit.evaluate.knn import knn_predict, knn_scores, knn_votes, knn_votes_multi  # noqa: E402


def reference_votes(train, train_labels, query, k, temperature, n_classes, exclude_self=False):
    """Per query: cosine to every training vector, sort, sum exp(cos / T) per class over the k nearest."""
    out = []
    for qi, q in enumerate(query.tolist()):
        qn = math.sqrt(sum(v * v for v in q))
        sims = []
        for ti, t in enumerate(train.tolist()):
            if exclude_self and ti == qi:
                continue
            tn = math.sqrt(sum(v * v for v in t))
            sims.append((sum(a * b for a, b in zip(q, t, strict=True)) / (qn * tn), int(train_labels[ti])))
        sims.sort(key=lambda item: -item[0])
        votes = [0.0] * n_classes
        for sim, label in sims[:k]:
            votes[label] += math.exp(sim / temperature)
        out.append(votes)
    return torch.tensor(out)


@pytest.fixture
def tiny():
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(40, 6, generator=generator) * 3  # not normalised: the classifier must normalise
    labels = torch.randint(0, 4, (40,), generator=generator)
    query = torch.randn(13, 6, generator=generator)
    return train, labels, query


@pytest.mark.parametrize(("k", "temperature"), [(1, 0.07), (5, 0.07), (20, 0.5), (40, 0.07), (200, 0.1)])
def test_votes_match_brute_force(tiny, k, temperature):
    train, labels, query = tiny
    got = knn_votes(train, labels, query, k, temperature, n_classes=4)
    want = reference_votes(train, labels, query, k, temperature, 4)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def test_chunking_and_several_k_agree_with_one_search(tiny):
    train, labels, query = tiny
    many = knn_votes_multi(train, labels, query, [3, 10], 0.07, n_classes=4, chunk=4)
    for k in (3, 10):
        torch.testing.assert_close(many[k], knn_votes(train, labels, query, k, 0.07, n_classes=4, chunk=1000))


def test_leave_one_out_ignores_each_querys_own_entry(tiny):
    train, labels, _ = tiny
    got = knn_votes(train, labels, train, 7, 0.07, n_classes=4, exclude_self=True, chunk=6)
    want = reference_votes(train, labels, train, 7, 0.07, 4, exclude_self=True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    # Without leave-one-out a point is its own nearest neighbour (cosine 1): 1-NN is always right.
    assert bool((knn_predict(train, labels, train, k=1) == labels).all())
    assert not bool((knn_predict(train, labels, train, k=1, exclude_self=True) == labels).all())


def test_top1_top5_from_the_ranked_votes(tiny):
    train, labels, query = tiny
    query_labels = torch.randint(0, 4, (len(query),), generator=torch.Generator().manual_seed(5))
    scores = knn_scores(train, labels, query, query_labels, ks=(5, 20), n_classes=4)
    for k in (5, 20):
        votes = reference_votes(train, labels, query, k, 0.07, 4)
        top1 = float((votes.argmax(1) == query_labels).float().mean())
        assert scores[k]["top1"] == pytest.approx(top1)
        assert scores[k]["top5"] == 1.0  # 4 classes: every label is in the top 5


def test_clustered_features_are_classified_by_their_cluster():
    generator = torch.Generator().manual_seed(1)
    centres = torch.eye(5, 16) * 10
    labels = torch.arange(5).repeat_interleave(30)
    train = centres[labels] + torch.randn(150, 16, generator=generator)
    query_labels = torch.arange(5).repeat(4)
    query = centres[query_labels] + torch.randn(20, 16, generator=generator)
    assert knn_scores(train, labels, query, query_labels, ks=(20,))[20]["top1"] == 1.0


def test_bad_arguments_are_clear_errors(tiny):
    train, labels, query = tiny
    with pytest.raises(ValueError, match="temperature"):
        knn_votes(train, labels, query, 5, 0.0)
    with pytest.raises(ValueError, match="k must be"):
        knn_votes(train, labels, query, 0)
    with pytest.raises(ValueError, match="labels"):
        knn_votes(train, labels[:3], query, 5)

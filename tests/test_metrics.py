"""Metric definitions checked against hand-computed values (shared/benchmarks/README.md)."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender import metrics, topk


def test_rmse_and_mae():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


def test_ranking_metrics_by_hand():
    # one user, relevant items {1, 3, 7}; recommended [3, 0, 7, 5] at k=4 -> hits at ranks 1, 3
    rec = np.array([[3, 0, 7, 5]])
    rel = sp.csr_matrix(np.isin(np.arange(10), [1, 3, 7])[None, :].astype(float))
    m = metrics.ranking_metrics(rec, rel, k=4)
    assert m["precision"][0] == pytest.approx(2 / 4)
    assert m["recall"][0] == pytest.approx(2 / 3)
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg"][0] == pytest.approx(dcg / idcg)
    assert m["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert m["hr"][0] == 1.0


def test_ideal_dcg_uses_min_of_k_and_relevant():
    rec = np.array([[0, 1]])
    rel = sp.csr_matrix(np.ones((1, 5)))
    m = metrics.ranking_metrics(rec, rel, k=2)
    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["map"][0] == pytest.approx(1.0)


def test_ranking_metrics_reject_users_without_relevant_items():
    with pytest.raises(ValueError, match="relevant"):
        metrics.ranking_metrics(np.array([[0]]), sp.csr_matrix((1, 3)), k=1)


def test_top_k_breaks_ties_by_ascending_index_and_excludes_seen():
    scores = np.array([[1.0, 3.0, 3.0, 0.5, 3.0, 2.0]])
    seen = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0]]))
    out = topk.top_k(lambda users: scores[users], np.array([0]), k=3, n_items=6,
                        exclude=seen)
    assert out.tolist() == [[1, 4, 5]]


def test_top_k_pads_when_fewer_candidates_than_k():
    scores = np.array([[1.0, 2.0, 3.0]])
    seen = sp.csr_matrix(np.array([[1, 1, 0]]))
    out = topk.top_k(lambda users: scores[users], np.array([0]), k=2, n_items=3,
                        exclude=seen)
    assert out.tolist() == [[2, -1]]


def test_top_k_skips_columns_nobody_can_get_and_stays_exact():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(30, 25)).astype(np.float32)
    scores[:, ::3] = -np.inf  # unmodelled movies (as EASE's beyond max_items)
    scores[0] = -np.inf  # a user with no candidate at all
    seen = sp.random(30, 25, density=0.3, random_state=3, format="csr")
    out = topk.top_k(lambda users: scores[users], np.arange(30), 5, 25, seen, batch_size=8)
    masked = scores.copy()
    masked[seen.nonzero()] = -np.inf
    for user, row in enumerate(masked):
        best = sorted((j for j in range(25) if np.isfinite(row[j])), key=lambda j: (-row[j], j))
        assert out[user].tolist() == (best + [-1] * 5)[:5]


def test_top_k_batched_equals_unbatched():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(float)  # many ties on purpose
    seen = sp.random(50, 40, density=0.2, random_state=1, format="csr")
    fn = lambda users: scores[users]  # noqa: E731
    users = np.arange(50)
    whole = topk.top_k(fn, users, 10, 40, seen, batch_size=50)
    batched = topk.top_k(fn, users, 10, 40, seen, batch_size=7)
    np.testing.assert_array_equal(whole, batched)
    # reference: stable sort on -score over candidates
    for u in range(50):
        s = scores[u].copy()
        s[seen[u].indices] = -np.inf
        expected = np.argsort(-s, kind="stable")[:10]
        np.testing.assert_array_equal(whole[u], expected)


def test_coverage_novelty_and_popular_share():
    rec = np.array([[0, 1], [0, 2]])
    assert metrics.coverage(rec, 10) == pytest.approx(0.3)
    counts = np.array([100, 10, 1, 0, 0, 0, 0, 0, 0, 0])
    assert metrics.popular_share(rec, counts, top=0.1) == pytest.approx(0.5)
    assert metrics.novelty(rec, counts, n_users=100) == pytest.approx(
        np.mean([0, np.log2(10), 0, np.log2(100)]))


def test_classification_metrics():
    m = metrics.classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["auc"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(0.8)
    assert m["log_loss"] > 0


def test_factorized_top_k_accuracy_counts_seen_items():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    fn = lambda users: scores[users]  # noqa: E731
    acc = metrics.factorized_top_k_accuracy(fn, np.array([0, 0, 1]), np.array([0, 2, 0]),
                                            n_items=3, ks=(1, 2))
    assert acc["top_1_accuracy"] == pytest.approx(1 / 3)
    assert acc["top_2_accuracy"] == pytest.approx(1 / 3)


def brute_force_top_k(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> list[list[int]]:
    """The definition: finite scores of unseen items, by score descending then index."""
    masked = scores.astype(np.float32)
    masked[seen.nonzero()] = -np.inf
    lists = []
    for row in masked:
        best = sorted((j for j in range(len(row)) if np.isfinite(row[j])),
                      key=lambda j: (-row[j], j))[:k]
        lists.append(best + [-1] * (k - len(best)))
    return lists


def tied_scores(n_users: int, n_items: int, seed: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """Integer scores (ties everywhere, also at the k-th place), unmodelled -inf columns, a
    user who has seen everything and one with fewer candidates than k."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float32)
    scores[:, rng.random(n_items) < 0.3] = -np.inf
    scores[1, 5:] = -np.inf
    seen = sp.random(n_users, n_items, density=0.05, random_state=seed, format="lil")
    seen[0, :] = 1.0
    return scores, seen.tocsr()


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("n_items, group", [(6000, 16), (413, 16), (413, 5), (50, 16)])
def test_batched_top_k_matches_brute_force(monkeypatch, n_items, group, threads):
    # (6000, 16) and (413, ...) take the group-maxima bound (413: with columns past the last
    # group), (50, 16) the full selection; with 3 threads, batches are selected concurrently
    # while the next ones are scored
    monkeypatch.setattr(topk, "_GROUP", group)
    scores, seen = tied_scores(60, n_items, seed=n_items)
    out = topk.top_k(lambda users: scores[users], np.arange(60), 10, n_items, seen,
                        batch_size=7, threads=threads)
    assert out.tolist() == brute_force_top_k(scores, seen, 10)


@pytest.mark.parametrize("threads", [1, 3])
def test_top_k_product_matches_brute_force(threads):
    rng = np.random.default_rng(7)
    user_table = rng.integers(-2, 3, size=(50, 4)).astype(np.float32)
    item_table = rng.integers(-2, 3, size=(4, 700)).astype(np.float32)  # ties everywhere
    _, seen = tied_scores(50, 700, seed=8)
    users = np.array([3, 0, 49, 3, 1, 7, 8])  # any order, repeats allowed
    expected = brute_force_top_k(user_table @ item_table, seen, 10)
    out = topk.top_k_product(user_table[users], item_table, users, 10, seen, batch_size=2,
                                threads=threads)
    assert out.tolist() == [expected[u] for u in users]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("k", [0, 1, 10, 500])
def test_top_k_product_by_norm_tiers_matches_brute_force(threads, k):
    # items in tiers of 20, 40, 80, 160 and 400 by decreasing norm: long vectors for a few
    # items (as popular movies have), integer entries so that ties are everywhere, one user
    # who has seen nearly everything (fewer than k left) and one with a zero vector
    rng = np.random.default_rng(11)
    user_table = rng.integers(-2, 3, size=(50, 6)).astype(np.float32)
    user_table[5] = 0.0
    item_table = rng.integers(-2, 3, size=(6, 700)).astype(np.float32)
    item_table[:, rng.choice(700, 60, replace=False)] *= 4
    _, seen = tied_scores(50, 700, seed=12)
    seen = seen.tolil()
    seen[8, :695] = 1
    seen = seen.tocsr()
    users = np.array([3, 0, 49, 3, 1, 7, 8, 5])
    expected = brute_force_top_k(user_table @ item_table, seen, k)
    out = topk.top_k_product(user_table[users], item_table, users, k, seen, batch_size=3,
                             threads=threads, head=20)
    assert out.tolist() == [expected[u] for u in users]
    assert out.shape == (len(users), k)


def test_norm_tiers_skip_users_they_cannot_reach():
    # one item far longer than the rest: every user's best is among the first tier and no
    # later tier can reach it, so the later tiers are never scored
    item_table = np.ones((2, 400), np.float32)
    item_table[:, 123] = 100.0
    tiers = topk._norm_tiers(item_table, 10, skewed=True)
    assert tiers.bounds == [0, 10, 30, 70, 150, 400] and 123 in tiers.order[:10]
    tiers.table = np.ascontiguousarray(item_table[:, tiers.order])
    rows = np.ones((4, 2), np.float32)
    buffer = np.full((4, 400), np.nan, np.float32)
    out = topk._top_k_tiered(rows, tiers, 1, buffer, None)
    assert out.ravel().tolist() == [123] * 4
    assert np.isnan(buffer.reshape(-1)[4 * 10:]).all()  # nothing past the first tier
    assert topk._norm_tiers(np.ones((2, 400), np.float32), 10, skewed=True) is None


def test_top_k_never_writes_into_a_borrowed_score_array():
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    seen = sp.csr_matrix(np.eye(3, 4))
    topk.top_k(lambda users: table, np.arange(3), 2, 4, seen)  # hands out its own table
    assert table.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()


def test_top_k_shared_matches_brute_force():
    rng = np.random.default_rng(5)
    item_scores = rng.integers(0, 8, size=300).astype(np.float32)
    item_scores[rng.random(300) < 0.2] = -np.inf
    _, seen = tied_scores(80, 300, seed=6)
    seen = seen + sp.csr_matrix(([1.0], ([2], [3])), shape=seen.shape)  # a duplicate entry
    everyone = np.broadcast_to(item_scores, (80, 300))
    users = np.array([5, 0, 79, 5, 1])  # any order, repeats allowed
    expected = [brute_force_top_k(everyone, seen, 12)[u] for u in users]
    assert topk.top_k_shared(item_scores, users, 12, seen, chunk=2).tolist() == expected
    assert topk.top_k_shared(item_scores, users, 12).tolist() == \
        [brute_force_top_k(everyone[:1], sp.csr_matrix((1, 300)), 12)[0]] * len(users)
    assert (topk.top_k_shared(np.full(4, -np.inf), users, 3) == -1).all()

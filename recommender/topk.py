"""Batched top-K: the K best items per user without a users x items matrix in memory.

Every model ranks through here (:meth:`recommender.models.Recommender.top_k`): scores are
made and selected a batch of users at a time, as one matrix product per batch for factor
models (:func:`top_k_product`), or from one sort of the catalogue when every user gets the
same scores (:func:`top_k_shared`). Ties go to the lower item index (ascending movieId).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp

__all__ = ["top_k", "top_k_product", "top_k_shared", "iter_batches", "ScoreFn"]

ScoreFn = Callable[[np.ndarray], np.ndarray]

_BATCH_CELLS = 2**25  # scores held at once: 32M float32 = 128 MB (matrix products
# of a few hundred users at a time run near the BLAS peak; 142 users did not)
_GROUP = 16  # columns per group whose maxima bound a row's k-th best score (_top_k_rows)
_CHUNK_ROWS = 32  # rows whose group maxima are taken at once (a few hundred KB: stays in L2)
_HEAD = 4096  # items of largest norm every user is scored on first (top_k_product on big
# catalogues; later tiers double in size and are scored only for users they could reach)


def iter_batches(n: int, n_items: int, batch_size: int | None = None) -> Iterator[slice]:
    """Slices over ``n`` users sized so that one batch of scores stays about 128 MB."""
    size = batch_size or max(1, _BATCH_CELLS // max(n_items, 1))
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _top_k_exact(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`_top_k_rows` by a full ``argpartition`` of every row (``0 < k <= columns``).

    Columns no row can get (``-inf`` throughout, as EASE's unmodelled movies) are dropped
    first, since ``argpartition`` crawls through long runs of equal values. Only rows where
    the k-th score is tied with columns left outside the partition's top-k set take the
    slower tie path.
    """
    live = np.flatnonzero(np.isfinite(scores).any(axis=0))
    if k <= len(live) < scores.shape[1]:  # ``live`` is ascending: the index tie-break holds
        return live[_top_k_exact(scores[:, live], k)]
    n = scores.shape[1]
    cols = np.argpartition(scores, n - k, axis=1)[:, n - k:] if k < n else \
        np.broadcast_to(np.arange(n), scores.shape).copy()
    picked = np.take_along_axis(scores, cols, axis=1)
    kth = picked.min(axis=1, keepdims=True)
    tied_rows = np.flatnonzero((scores >= kth).sum(axis=1) > k)
    if len(tied_rows):
        sub = scores[tied_rows]
        above, tied = sub > kth[tied_rows], sub == kth[tied_rows]
        need = k - above.sum(axis=1, keepdims=True)
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))  # lowest tied indices
        cols[tied_rows] = np.nonzero(chosen)[1].reshape(-1, k)
        picked[tied_rows] = np.take_along_axis(sub, cols[tied_rows], axis=1)
    order = np.lexsort((cols, -picked), axis=1)  # score descending, then index ascending
    return np.take_along_axis(cols, order, axis=1)


def _row_then_descending(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint64 keys that sort by row, then by float32 value descending (an integer sort is
    several times faster than ``lexsort`` on two keys)."""
    bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32)  # -0.0 becomes 0.0
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))  # IEEE order as uint
    return (rows.astype(np.uint64) << np.uint64(32)) | (~ascending).astype(np.uint64)


def _top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` column indices per row, by descending score then ascending column index.

    A full selection per row (``argpartition``) was most of top-K's time on big catalogues,
    so rows are cut by a bound first. The first ``g * _GROUP`` columns fall in ``g`` groups
    of ``_GROUP`` (group ``j``: columns ``j, j + g, j + 2g, ...``), whose maxima take one
    pass over the scores (elementwise maxima of contiguous slices, a few rows at a time so
    they stay in cache). The k-th best group maximum is at most the row's k-th best score
    (it and the k - 1 maxima above it are k distinct scores), so the row's top k, ties
    included, lie in the groups whose maximum reaches it (about k groups) or past the last
    group. Only those candidates at or above the bound are sorted, in one sort for the whole
    batch: 1/16 of the scores go through the selection, the rest is one streaming pass.
    Tiny catalogues, long lists and rows with fewer than ``k`` finite group maxima take the
    full selection (:func:`_top_k_exact`). Either way the result is exact.
    """
    n_rows, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.empty((n_rows, 0), np.int64)
    g = n // _GROUP
    if g < 2 * k:
        return _top_k_exact(scores, k)
    maxima = np.empty((n_rows, g), scores.dtype)
    for lo in range(0, n_rows, _CHUNK_ROWS):
        groups = scores[lo: lo + _CHUNK_ROWS, : g * _GROUP].reshape(-1, _GROUP, g)
        np.max(groups, axis=1, out=maxima[lo: lo + _CHUNK_ROWS])
    bound = np.partition(maxima, g - k, axis=1)[:, g - k]
    hard = ~np.isfinite(bound)
    out = np.empty((n_rows, k), np.int64)
    if hard.any():
        out[hard] = _top_k_exact(scores[hard], k)
        bound[hard] = np.nan  # compares False: no candidate from these rows below
    rows, group = np.divmod(np.flatnonzero(maxima >= bound[:, None]), g)
    rows = np.repeat(rows, _GROUP)
    cols = (group[:, None] + g * np.arange(_GROUP)).ravel()
    if g * _GROUP < n:  # the columns past the last group are candidates of every row
        easy, tail = np.flatnonzero(~hard), np.arange(g * _GROUP, n)
        rows = np.concatenate([rows, np.repeat(easy, len(tail))])
        cols = np.concatenate([cols, np.tile(tail, len(easy))])
    values = scores[rows, cols]
    above = values >= bound[rows]
    rows, cols, values = rows[above], cols[above], values[above]
    order = np.lexsort((cols, _row_then_descending(rows, values)))
    rows, cols = rows[order], cols[order]  # by row, score descending, column ascending
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # position within its row
    out[~hard] = cols[rank < k].reshape(-1, k)  # every such row has >= k candidates
    return out


def _select(out: np.ndarray, batch: slice, users: np.ndarray, scores: np.ndarray, k: int,
            exclude: sp.csr_matrix | None) -> None:
    """Write the top ``k`` of one batch of ``scores`` (overwritten: excluded items become
    ``-inf``) into ``out[batch]``, ``-1`` where fewer than ``k`` are finite."""
    if exclude is not None:
        sub = exclude[users[batch]].tocoo()
        scores[sub.row, sub.col] = -np.inf
    picked = _top_k_rows(scores, k)
    valid = np.isfinite(np.take_along_axis(scores, picked, axis=1))
    out[batch, : picked.shape[1]] = np.where(valid, picked, -1)


def top_k(score_fn: ScoreFn, users: np.ndarray, k: int, n_items: int,
          exclude: sp.csr_matrix | None = None, batch_size: int | None = None,
          progress: bool = False, threads: int | None = None) -> np.ndarray:
    """The ``k`` best items for each user, batched over users.

    Batches are scored one after the other on the calling thread (a model's scoring may
    hold state or call TensorFlow), and selected on ``threads`` worker threads meanwhile:
    selection is numpy work that releases the GIL, so it runs on the cores that scoring
    leaves idle. Scores that are one matrix product go faster through :func:`top_k_product`.

    Memory: up to ``threads + 1`` batches of scores (``batch_size`` users x ``n_items``
    float32, about 128 MB each by default), each with its selection (group maxima, 1/16 of
    the batch, and the candidates), whatever the number of users.

    Args:
        score_fn: maps a batch of user indices to a ``(batch, n_items)`` score array. A new
            array it returns may be overwritten (seen items set to ``-inf``); a read-only or
            borrowed one (a broadcast view, a model's own table) is copied first.
        users: user indices to rank for.
        k: list length.
        n_items: catalogue size (to size batches).
        exclude: users x items matrix whose non-zeros are removed from the candidates
            (the movies each user rated in train).
        batch_size: users per batch (default: about 128 MB of scores).
        progress: show a tqdm bar.
        threads: selection threads (default: one per core, at most one per batch).

    Returns:
        ``(len(users), k)`` item indices, best first; ties go to the lower index (ascending
        movieId). Slots left when a user has fewer than ``k`` candidates hold ``-1``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from recommender.core.progress import progress_bar

    users = np.asarray(users, np.int64)
    out = np.full((len(users), k), -1, np.int64)
    batches = list(iter_batches(len(users), n_items, batch_size))
    threads = threads or max(1, min(os.cpu_count() or 1, len(batches)))
    pending: list = []
    with ThreadPoolExecutor(threads) as pool:
        for sl in progress_bar(batches, progress, desc="top-k", leave=False):
            scores = np.asarray(score_fn(users[sl]), dtype=np.float32)
            if exclude is not None and not (scores.flags.owndata and scores.flags.writeable):
                scores = scores.copy()
            pending.append(pool.submit(_select, out, sl, users, scores, k, exclude))
            while len(pending) > threads:  # bounded memory: wait for the oldest
                pending.pop(0).result()
        for future in pending:
            future.result()
    return out


def top_k_product(user_rows: np.ndarray, item_table: np.ndarray, users: np.ndarray, k: int,
                  exclude: sp.csr_matrix | None = None, batch_size: int | None = None,
                  progress: bool = False, threads: int | None = None,
                  head: int | None = None) -> np.ndarray:
    """:func:`top_k` for scores that are one matrix product, ``user_rows @ item_table``
    (factor models, and every model whose scores are a user vector times item vectors:
    every user of MovieLens 25M is a 162,541 x d x 59,047 product).

    Each of ``threads`` workers scores its own batches with BLAS on one thread, into one
    buffer it reuses, and selects them, so the product and the selection share the cores
    without BLAS's own threads competing with the selection. A fresh 128 MB array per batch
    cost the product 77% more CPU in page faults; at 25M, 64 factors, :func:`top_k` (fresh
    arrays, product on BLAS's threads, selection beside it) took 34 CPU s where this took
    22. Same result as :func:`top_k`.

    On a big catalogue whose item vectors differ much in length (low-rank EASE, factor
    models: rarely rated movies have short vectors) most of the product is skipped, still
    exactly: items are put in tiers by decreasing norm (:func:`_norm_tiers`), every user is
    scored on the first (``head`` items), and a later tier only for the users whose k-th
    best score so far it could reach, ``|u| * (largest norm left) >= k-th score`` (Cauchy-
    Schwarz, with a margin for float32 rounding). At 25M with EASE of rank 320 most users
    stop after the first tier or two.

    Memory: per thread, one batch of scores (``batch_size`` users x ``n_items`` float32,
    about 128 MB by default) and its selection, whatever the number of users.

    Args:
        user_rows: ``(len(users), d)`` float32, row ``j`` the vector of ``users[j]``.
        item_table: ``(d, n_items)`` float32 columns.
        users, k, exclude, batch_size, progress: as for :func:`top_k`.
        threads: worker threads (default: one per core, at most one per batch).
        head: items in the first tier (default :data:`_HEAD` where the catalogue has at
            least four times as many and the norms are skewed; 0: score every item).
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from recommender.core.progress import progress_bar

    users = np.asarray(users, np.int64)
    n_items = item_table.shape[1]
    out = np.full((len(users), k), -1, np.int64)
    batches = list(iter_batches(len(users), n_items, batch_size))
    threads = threads or max(1, min(os.cpu_count() or 1, len(batches)))
    todo, lock = iter(progress_bar(batches, progress, desc="top-k", leave=False)), \
        threading.Lock()
    tiers = _norm_tiers(item_table, _HEAD if head is None else head, skewed=head is None)
    if tiers is not None:
        tiers.table = np.ascontiguousarray(item_table[:, tiers.order])
        if exclude is not None:  # the excluded items' columns in tier order
            exclude = sp.csr_matrix((exclude.data, tiers.position[exclude.indices],
                                     exclude.indptr), shape=exclude.shape)

    def work() -> None:
        buffer = np.empty((batches[0].stop - batches[0].start if batches else 0, n_items),
                          np.float32)
        while True:
            with lock:
                sl = next(todo, None)
            if sl is None:
                return
            if tiers is not None:
                out[sl] = _top_k_tiered(user_rows[sl], tiers, k, buffer,
                                        None if exclude is None else exclude[users[sl]])
                continue
            scores = buffer[: sl.stop - sl.start]
            np.matmul(user_rows[sl], item_table, out=scores)
            _select(out, sl, users, scores, k, exclude)

    with threadpool_limits(limits=1 if threads > 1 else None, user_api="blas"), \
            ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return out


class _Tiers:
    """Items in tiers of decreasing norm: ``order`` (tier after tier, each tier ascending by
    index, so that ties inside a tier still go to the lower index), ``position`` (an item's
    place in ``order``), ``bounds`` (tier ``t`` is ``order[bounds[t]:bounds[t + 1]]``),
    ``reach[t]`` (the largest norm from tier ``t`` on), ``table`` (the item table's columns
    in ``order``, set by the caller)."""

    def __init__(self, order: np.ndarray, bounds: list[int], reach: np.ndarray):
        self.order, self.bounds, self.reach = order, bounds, reach
        self.position = np.empty_like(order)
        self.position[order] = np.arange(len(order))
        self.table: np.ndarray | None = None


def _norm_tiers(item_table: np.ndarray, head: int, skewed: bool) -> _Tiers | None:
    """Tiers of ``head``, ``2 head``, ``4 head``, ... items by decreasing norm (the last
    takes the rest), or ``None`` where tiers would not pay: ``head`` 0, a catalogue under
    ``4 head`` items, or (``skewed``) norms past the first tier over half the largest, where
    no user could skip a tier."""
    n = item_table.shape[1]
    if head <= 0 or n < 4 * head:
        return None
    norms = np.sqrt(np.einsum("dj,dj->j", item_table, item_table, dtype=np.float64))
    by_norm = np.argsort(-norms, kind="stable")
    if skewed and norms[by_norm[head]] > 0.5 * norms[by_norm[0]]:
        return None
    bounds, size = [0], head
    while n - bounds[-1] >= 2 * size:  # the last tier is at least as wide as the one before
        bounds.append(bounds[-1] + size)
        size *= 2
    bounds.append(n)
    order = np.concatenate([np.sort(by_norm[lo:hi]) for lo, hi in zip(bounds, bounds[1:])])
    return _Tiers(order, bounds, norms[by_norm[bounds[:-1]]])


def _top_k_tiered(rows: np.ndarray, tiers: _Tiers, k: int, buffer: np.ndarray,
                  exclude: sp.csr_matrix | None) -> np.ndarray:
    """Top ``k`` item indices of ``rows @ item_table`` per row (``-1`` padding), tier by
    tier (:func:`top_k_product`): after a tier, a row goes on only if the largest norm
    left times its own norm, plus float32 rounding's bound on both sides, reaches its k-th
    best score so far. ``exclude``: the rows' excluded items, in tier order. Same result as
    scoring every item."""
    n_rows, d = rows.shape
    if k == 0:
        return np.empty((n_rows, 0), np.int64)
    row_norm = np.sqrt(np.einsum("ud,ud->u", rows, rows, dtype=np.float64))
    # |fl(x . y) - x . y| <= d eps |x| |y| for float32 dot products of length d
    rounding = 2 * d * float(np.finfo(np.float32).eps) * row_norm * tiers.reach[0]
    seen = None if exclude is None else exclude.tocoo()
    values = np.full((n_rows, k), -np.inf, np.float32)
    items = np.full((n_rows, k), -1, np.int64)
    live = np.arange(n_rows)
    for t, (lo, hi) in enumerate(zip(tiers.bounds, tiers.bounds[1:])):
        if t:
            reach = row_norm[live] * tiers.reach[t] + 2 * rounding[live]
            live = live[reach >= values[live, k - 1]]  # a -inf k-th score: always on
            if not len(live):
                break
        scores = buffer.reshape(-1)[: len(live) * (hi - lo)].reshape(len(live), hi - lo)
        np.matmul(rows[live], tiers.table[:, lo:hi], out=scores)
        if seen is not None:
            local = np.full(n_rows, -1, np.int64)
            local[live] = np.arange(len(live))
            at = (seen.col >= lo) & (seen.col < hi) & (local[seen.row] >= 0)
            scores[local[seen.row[at]], seen.col[at] - lo] = -np.inf
        picked = _top_k_rows(scores, k)
        both_values = np.concatenate([values[live], np.take_along_axis(scores, picked, 1)], 1)
        both_items = np.concatenate([items[live], tiers.order[lo + picked]], 1)
        best = np.lexsort((both_items, -both_values), axis=1)[:, :k]
        values[live] = np.take_along_axis(both_values, best, 1)
        items[live] = np.take_along_axis(both_items, best, 1)
    return np.where(np.isfinite(values), items, -1)


def top_k_shared(item_scores: np.ndarray, users: np.ndarray, k: int,
                 exclude: sp.csr_matrix | None = None, chunk: int = 1 << 14) -> np.ndarray:
    """:func:`top_k` for a model whose scores are the same for every user (popularity).

    One sort of the catalogue, then each user's first ``k`` items of that order outside
    their ``exclude`` row. Most users find them within a short prefix of the order, so
    users are resolved on a prefix of ``4 k`` items first (a users x prefix grid of their
    excluded items), and only those with fewer than ``k`` free items there look at a 4x
    longer prefix, up to the whole catalogue. Same result as :func:`top_k` (ties by
    ascending index, ``-inf`` never recommended, ``-1`` padding), without scoring the
    catalogue once per user; memory is about 16 bytes per excluded entry of ``chunk`` users.

    Args:
        item_scores: ``(n_items,)`` scores shared by every user.
        users, k, exclude: as for :func:`top_k`.
        chunk: users handled at once.
    """
    item_scores = np.asarray(item_scores, np.float32)
    n_items = len(item_scores)
    ranked = np.lexsort((np.arange(n_items), -item_scores))
    ranked = ranked[np.isfinite(item_scores[ranked])]
    position = np.full(n_items, len(ranked), np.int64)  # unranked items: past the end
    position[ranked] = np.arange(len(ranked))
    users = np.asarray(users, np.int64)
    out = np.full((len(users), k), -1, np.int64)
    for lo in range(0, len(users), chunk):
        batch = users[lo: lo + chunk]
        rows = sp.csr_matrix((len(batch), n_items)) if exclude is None else \
            exclude[batch].tocsr()
        row = np.repeat(np.arange(len(batch)), np.diff(rows.indptr))
        spot, todo, width = position[rows.indices], np.arange(len(batch)), 4 * k
        while len(todo):  # ``row``, ``spot``: the excluded entries of the ``todo`` users
            width = min(width, len(ranked))
            local = np.empty(len(batch), np.int64)
            local[todo] = np.arange(len(todo))
            at, near = local[row], spot < width
            taken = np.zeros((len(todo), width), bool)
            taken[at[near], spot[near]] = True
            first = np.argsort(taken, axis=1, kind="stable")[:, :k]  # free spots, in order
            free = ~np.take_along_axis(taken, first, axis=1)
            done = free.all(axis=1) | (width == len(ranked))
            out[lo + todo[done], : first.shape[1]] = np.where(free[done],
                                                             ranked[first[done]], -1)
            still = ~done[at]
            row, spot, todo, width = row[still], spot[still], todo[~done], 4 * width
    return out

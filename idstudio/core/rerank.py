"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), on cosine features.

It works on the full (query + gallery)^2 distance matrix, so its memory grows with the square
of the number of images: ``estimate_bytes`` says how much, and ``rerank`` refuses with a
``UserError`` when that would not fit in the memory available, instead of swapping the
machine to a halt. Only the top ``k1 + 1`` neighbours of each image are sorted
(argpartition), not the full rows.
"""

from __future__ import annotations

import os

import numpy as np

from idstudio.core.errors import UserError

BYTES_PER_CELL = 16  # distance + V + V_qe (float32) + the jaccard/temporaries, measured upper bound


def available_memory() -> int:
    """Bytes of physical memory available now (Linux/macOS), or 4 GiB when unknown."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def estimate_bytes(n_query: int, n_gallery: int) -> int:
    n = n_query + n_gallery
    return BYTES_PER_CELL * n * n


def check_fits(n_query: int, n_gallery: int, budget: int | None = None) -> None:
    need = estimate_bytes(n_query, n_gallery)
    budget = available_memory() // 2 if budget is None else budget
    if need > budget:
        raise UserError(
            f"Re-ranking {n_query + n_gallery:,} images needs about {need / 2**30:.1f} GiB of memory but only "
            f"{budget / 2**30:.1f} GiB can be used; evaluate without --rerank or on a smaller dataset."
        )


def rerank(qf: np.ndarray, gf: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
           budget: int | None = None) -> np.ndarray:
    """Re-ranked distances (n_query, n_gallery); lower is closer. Features are L2-normalised here."""
    from idstudio.core.evaluate import normalize

    nq, ng = len(qf), len(gf)
    check_fits(nq, ng, budget)
    feats = normalize(np.concatenate([qf, gf], axis=0))
    n = len(feats)
    # Squared Euclidean distance of unit vectors = 2 - 2 cos; scaled per column as in the paper's code.
    dist = feats @ feats.T
    np.multiply(dist, -2.0, out=dist)
    dist += 2.0
    np.maximum(dist, 0.0, out=dist)
    dist /= np.maximum(dist.max(axis=0, keepdims=True), 1e-12)
    dist = np.ascontiguousarray(dist.T)
    kk = min(k1 + 1, n)
    part = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
    rows = np.arange(n)[:, None]
    initial_rank = part[rows, np.argsort(dist[rows, part], axis=1, kind="stable")].astype(np.int32)
    half = int(np.around(k1 / 2.0)) + 1
    V = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        k_recip = forward[np.where(backward == i)[0]]
        expansion = k_recip
        for candidate in k_recip:
            c_forward = initial_rank[candidate, :half]
            c_backward = initial_rank[c_forward, :half]
            c_recip = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_recip, k_recip)) > 2.0 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        weight = np.exp(-dist[i, expansion])
        V[i, expansion] = weight / weight.sum()
    query_dist = dist[:nq].copy()
    del dist
    if k2 != 1:
        V_qe = np.empty_like(V)
        for i in range(n):
            V_qe[i] = V[initial_rank[i, :k2]].mean(axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    inv_index = [np.where(V[:, j] != 0)[0] for j in range(n)]
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        temp_min = np.zeros(n, dtype=np.float32)
        nonzero = np.where(V[i] != 0)[0]
        for j in nonzero:
            images = inv_index[j]
            temp_min[images] += np.minimum(V[i, j], V[images, j])
        jaccard[i] = 1 - temp_min / (2.0 - temp_min)
    final = jaccard * (1 - lambda_value) + query_dist * lambda_value
    return final[:, nq:]

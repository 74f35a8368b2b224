"""Feature centralization (Pose2ID, CVPR 2025: *From Poses to Identity: Training-Free Person
Re-Identification via Feature Centralization*), the neighbour part (NFC), without pose
generation.

A feature is noisy around its identity's centre; adding features that are probably the same
person pulls it towards that centre, with no training. Each query and gallery feature
(L2-normalised) gets the features of

* its own **tracklet**, where the caller gives a grouping (instances of one video that a
  tracker or a mining round linked): those are the same person for certain; else
* its **mutual k nearest neighbours** among query + gallery together: ``j`` is among the
  ``k`` nearest of ``i`` *and* ``i`` among the ``k`` nearest of ``j`` (self excluded). A
  one-sided neighbour is more often another person: on the demo world's cross-camera set,
  adding all k nearest gave 0.195 and 0.174 mAP at k = 5 where the mutual ones gave 0.216
  and 0.200 (untrained and ImageNet starts; README).

Weighting: ``f_i' = normalise(f_i + mean_j f_j)``: the sample keeps half the weight
whatever the number of neighbours. Pose2ID's NFC adds the *sum* instead (each neighbour
weighs as much as the sample). We measured both on every labelled set of the demo and of
bench/real.py (README, *Feature centralization*): at k = 2 and 5 within 0.01 mAP of each
other everywhere; at k = 5 the mean was ahead on 5 of the 7 (set, model) pairs, and ahead on every cross-camera
set (the demo world, cuhk03-val, market-sample), where a wrong mutual neighbour is likeliest
and a sum lets k of them outvote the sample. A sample without mutual neighbours (or
tracklet mates) keeps its feature.

Cost: the kNN is inner-product search through faiss (exact up to ``core.index.EXACT_MAX``
rows, blocked inside faiss; above it ``core.index``'s IVF, tuned to its recall target), so
memory is ``n * k`` indices plus the features, never ``n^2``; the mutual test and the means
are sparse products. Measured: 40,000 x 256 random features, k = 5, exact, 47 s on two busy
cores with a peak of 272 MB (the features alone: 39 MB).
"""

from __future__ import annotations

import numpy as np

from idstudio.core.errors import UserError


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def neighbours(feats: np.ndarray, k: int, exact_max: int | None = None) -> np.ndarray:
    """(n, k) rows of each row's ``k`` nearest other rows by cosine (self excluded, -1 where
    there are fewer than ``k`` others or an approximate search found fewer).

    Up to ``exact_max`` rows (``core.index.EXACT_MAX``) the search is exact; above it, an IVF
    index built and tuned by ``core.index.build_index`` (its recall measured, exact search
    kept where IVF cannot reach it), so a million-image gallery is not n^2 work."""
    from idstudio.core.index import EXACT_MAX, build_index, exact_search

    n = len(feats)
    if n < 2 or k < 1:
        return np.full((n, max(k, 0)), -1, dtype=np.int64)
    want = min(k + 1, n)
    if n <= (EXACT_MAX if exact_max is None else exact_max):
        _, rows = exact_search(feats, feats, want)
    else:
        index = build_index(feats, np.arange(n), key="centralize", dataset="query+gallery", kind="auto",
                            exact_max=EXACT_MAX if exact_max is None else exact_max)
        _, rows = index.search(feats, want)
    rows = rows.astype(np.int64)
    # Drop each row itself; with exact duplicates (or an approximate search) it may not come
    # first, so remove it by value and otherwise drop the farthest of the k + 1.
    is_self = rows == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    out = rows[~is_self].reshape(n, rows.shape[1] - 1)
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


def mutual_neighbours(feats: np.ndarray, k: int):
    """Sparse (n, n) 0/1 matrix: 1 where ``j`` is among ``i``'s ``k`` nearest and ``i`` among ``j``'s."""
    from scipy.sparse import csr_matrix

    n = len(feats)
    nn = neighbours(feats, k)
    rows = np.repeat(np.arange(n), nn.shape[1])
    cols = nn.reshape(-1)
    keep = cols >= 0
    a = csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=(n, n))
    return a.multiply(a.T).tocsr()


def group_matrix(groups: np.ndarray):
    """Sparse (n, n) 0/1 matrix linking rows of the same group (``groups[i] < 0``: none), self excluded."""
    from scipy.sparse import csr_matrix

    groups = np.asarray(groups, dtype=np.int64)
    n = len(groups)
    rows = np.flatnonzero(groups >= 0)
    labels, inv = np.unique(groups[rows], return_inverse=True)
    member = csr_matrix((np.ones(len(rows), np.float32), (rows, inv)), shape=(n, len(labels)))
    same = (member @ member.T).tolil()
    same.setdiag(0)
    return same.tocsr()


def centralize(feats: np.ndarray, k: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Centralized, L2-normalised features (n, d) float32 (see the module docstring).

    ``groups``: a tracklet id per row (-1 for none). A row whose tracklet has other rows is
    centralized with them; any other row with its mutual ``k`` nearest neighbours. ``k = 0``
    and no groups: the features, normalised."""
    if k < 0:
        raise UserError(f"Centralization takes k >= 0 neighbours (0 = off); it was {k}.")
    f = _unit(feats)
    n = len(f)
    if n == 0:
        return f
    links = None
    if groups is not None and (np.asarray(groups) >= 0).any():
        links = group_matrix(groups)
        in_tracklet = np.diff(links.indptr) > 0
    else:
        in_tracklet = np.zeros(n, dtype=bool)
    if k > 0 and not in_tracklet.all():
        mutual = mutual_neighbours(f, k)
        if in_tracklet.any():  # rows in a tracklet take only their tracklet
            from scipy.sparse import diags

            mutual = diags((~in_tracklet).astype(np.float32)) @ mutual
        links = mutual if links is None else links + mutual
    if links is None or links.nnz == 0:
        return f
    from scipy.sparse import diags

    count = np.asarray(links.sum(axis=1), dtype=np.float32).ravel()
    mean = diags(1.0 / np.maximum(count, 1.0)) @ links  # rows average their neighbours
    return _unit(f + np.asarray(mean @ f, dtype=np.float32))


def centralize_split(qf: np.ndarray, gf: np.ndarray, k: int, q_groups: np.ndarray | None = None,
                     g_groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centralize query and gallery together (neighbours are found among both); returns
    (query, gallery). Refuses ``k`` < 0 or larger than the gallery in one sentence."""
    nq, ng = len(qf), len(gf)
    check_k(k, ng)
    groups = None
    if q_groups is not None or g_groups is not None:
        qg = np.full(nq, -1, np.int64) if q_groups is None else np.asarray(q_groups, np.int64)
        gg = np.full(ng, -1, np.int64) if g_groups is None else np.asarray(g_groups, np.int64)
        groups = np.concatenate([qg, gg])
    out = centralize(np.concatenate([np.asarray(qf, np.float32), np.asarray(gf, np.float32)]), k, groups)
    return out[:nq], out[nq:]


def check_k(k: int, n_gallery: int) -> None:
    if k < 0:
        raise UserError(f"--centralize takes a number of neighbours k >= 0 (0 = off); it was {k}.")
    if k > n_gallery:
        raise UserError(f"--centralize {k} asks for more neighbours than the gallery's {n_gallery} images; "
                        "choose a k of a few (2 to 5 is typical).")

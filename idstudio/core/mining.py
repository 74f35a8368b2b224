"""Positive-pair mining between frames by maximum-weight bipartite matching (ISR).

For each video and each frame pair ``(t, t+δ)`` (δ from a configurable set) the cosine
similarity matrix between the two frames' instances is matched with
``scipy.optimize.linear_sum_assignment(S, maximize=True)``; matched edges with similarity
``>= min_similarity`` are candidate positives. Cost is linear in the number of frames:
each frame meets at most ``len(gaps)`` later frames, and the matrices are computed in one
batched product per gap.

Reliability — our interpretation (the paper's exact formula is not public)
-----------------------------------------------------------------------------
Raw cosine carries little information from a random start (≈0.995 everywhere), so the
default rule ``"margin"`` is *relative*: for a matched edge (i, j) with similarity s,

* margin m = s − max(runner-up in row i, runner-up in column j); where a row/column has no
  competitor, the round's mean unmatched similarity stands in (so a lone pair is judged
  against the background, not trusted blindly);
* the margin and the similarity are turned into percentiles of the round's own
  distribution (empirical CDF over all matched edges): p_m, p_s ∈ [0, 1];
* r = (0.75·p_m + 0.25·p_s) · (1 if the edge is a mutual best match else 0.5).

Rules are pluggable: ``RELIABILITY_RULES[name](edges, background) -> r``; ``"similarity"``
(percentile of s only) is the naive baseline.

Spatial gate (first round from a random start): an entry is feasible only when the box
centres are within ``gate_shift`` box heights (scaled by sqrt(δ)) and the heights differ by
less than the factor ``gate_scale``; infeasible entries are never matched and never count
as runner-ups.

Pseudo-tracklets: the pairs' connected components (union-find) over edges with
reliability ``>= component_min_reliability``, and only within time windows of
``component_window`` frames, so one wrong edge cannot snowball into a whole video. The
largest component's share of the mined instances is recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class MiningParams:
    gaps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    min_similarity: float = 0.0
    min_reliability: float = 0.0
    reliability_rule: str = "margin"
    spatial_gate: bool = False
    gate_shift: float = 0.5
    gate_scale: float = 1.5
    component_min_reliability: float = 0.2
    component_window: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Edges:
    """Matched edges of one round (parallel arrays; a/b are row indices into the table)."""

    a: np.ndarray
    b: np.ndarray
    gap: np.ndarray
    similarity: np.ndarray
    margin: np.ndarray  # NaN where there is no competitor
    mutual: np.ndarray  # bool


@dataclass
class MiningResult:
    a: np.ndarray  # instance ids, the earlier frame
    b: np.ndarray
    gap: np.ndarray
    similarity: np.ndarray
    reliability: np.ndarray
    component: np.ndarray
    stats: dict[str, Any]
    embeddings: np.ndarray | None = None  # the round's (n, d) embeddings, rows of the table

    def __len__(self) -> int:
        return len(self.a)


# ---- reliability rules ----------------------------------------------------------------------
def percentile_rank(x: np.ndarray) -> np.ndarray:
    """Empirical CDF in [0, 1] (ties share their mean rank), float32: a round has several
    edges per instance, so this stays at one sort and a few compact arrays."""
    n = len(x)
    if n == 0:
        return np.zeros(0, np.float32)
    if n == 1:
        return np.ones(1, np.float32)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    del xs
    sizes = np.diff(np.r_[starts, n])
    mean_rank = ((2 * starts + sizes - 1) / (2 * (n - 1))).astype(np.float32)  # mean 0-based rank / (n - 1)
    out = np.empty(n, np.float32)
    out[order] = np.repeat(mean_rank, sizes)
    return out


def reliability_margin(edges: Edges, background: float) -> np.ndarray:
    margin = np.where(np.isnan(edges.margin), edges.similarity - np.float32(background), edges.margin)
    r = percentile_rank(margin)
    del margin
    r *= 0.75
    r += 0.25 * percentile_rank(edges.similarity)
    r *= np.where(edges.mutual, np.float32(1.0), np.float32(0.5))
    return np.clip(r, 0.0, 1.0, out=r)


def reliability_similarity(edges: Edges, background: float) -> np.ndarray:
    return percentile_rank(edges.similarity)


RELIABILITY_RULES: dict[str, Callable[[Edges, float], np.ndarray]] = {
    "margin": reliability_margin,
    "similarity": reliability_similarity,
}


def runner_up_margin(S: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each chosen entry (rows[i], cols[i]) of a similarity matrix: its similarity minus
    the best other entry in its row or column (NaN where there is no competitor)."""
    row_vals = S[rows].copy()
    row_vals[np.arange(len(rows)), cols] = -np.inf
    col_vals = S[:, cols].T.copy()
    col_vals[np.arange(len(rows)), rows] = -np.inf
    runner = np.maximum(row_vals.max(axis=1, initial=-np.inf), col_vals.max(axis=1, initial=-np.inf))
    return np.where(np.isfinite(runner), S[rows, cols] - runner, np.nan)


# ---- matching ---------------------------------------------------------------------------------
def _frame_groups(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by frame; the distinct frames, and each frame's [start, stop) in the order."""
    order = np.argsort(frames, kind="stable")
    f = frames[order]
    uniq, start, counts = np.unique(f, return_index=True, return_counts=True)
    return order, uniq, np.stack([start, start + counts], axis=1)


def _gate(boxes_a: np.ndarray, boxes_b: np.ndarray, gap: int, shift: float, scale: float) -> np.ndarray:
    """(..., na, nb) feasibility from boxes (..., na, 4), (..., nb, 4) in xywh."""
    ca = boxes_a[..., :2] + boxes_a[..., 2:] / 2
    cb = boxes_b[..., :2] + boxes_b[..., 2:] / 2
    ha = np.maximum(boxes_a[..., 3], 1e-3)
    hb = np.maximum(boxes_b[..., 3], 1e-3)
    dist = np.linalg.norm(ca[..., :, None, :] - cb[..., None, :, :], axis=-1)
    href = np.maximum(ha[..., :, None], hb[..., None, :])
    ratio = np.maximum(ha[..., :, None], hb[..., None, :]) / np.minimum(ha[..., :, None], hb[..., None, :])
    return (dist <= shift * np.sqrt(gap) * href) & (ratio <= scale)


def match_video(frames: np.ndarray, emb: np.ndarray, boxes: np.ndarray, params: MiningParams) -> tuple[Edges, float, float]:
    """Match one video's instances. Returns the edges (row indices into the inputs), the sum
    of unmatched feasible similarities and their count (for the round's background)."""
    order, uniq, spans = _frame_groups(frames)
    counts = spans[:, 1] - spans[:, 0]
    kmax = int(counts.max()) if len(counts) else 0
    nf = len(uniq)
    # Padded per-frame tensors: (nf, kmax, d), one batched product per gap.
    d = emb.shape[1]
    padded = np.zeros((nf, kmax, d), dtype=np.float32)
    pboxes = np.zeros((nf, kmax, 4), dtype=np.float32)
    prow = np.full((nf, kmax), -1, dtype=np.int64)
    slot = np.arange(len(order)) - np.repeat(spans[:, 0], counts)
    fidx = np.repeat(np.arange(nf), counts)
    padded[fidx, slot] = emb[order]
    pboxes[fidx, slot] = boxes[order]
    prow[fidx, slot] = order
    out_a, out_b, out_g, out_s, out_m, out_mu = [], [], [], [], [], []
    bg_sum, bg_n = 0.0, 0
    frame_pos = {int(f): i for i, f in enumerate(uniq)}
    for gap in params.gaps:
        src = np.array([i for i, f in enumerate(uniq) if int(f) + gap in frame_pos], dtype=np.int64)
        if not len(src):
            continue
        dst = np.array([frame_pos[int(uniq[i]) + gap] for i in src], dtype=np.int64)
        sims = np.einsum("fid,fjd->fij", padded[src], padded[dst])  # (m, kmax, kmax)
        valid = (prow[src][:, :, None] >= 0) & (prow[dst][:, None, :] >= 0)
        if params.spatial_gate:
            valid &= _gate(pboxes[src], pboxes[dst], gap, params.gate_shift, params.gate_scale)
        masked = np.where(valid, sims, -np.inf)
        for k in range(len(src)):
            na, nb = counts[src[k]], counts[dst[k]]
            S = masked[k, :na, :nb]
            V = valid[k, :na, :nb]
            if not V.any():
                continue
            rows, cols = linear_sum_assignment(np.where(V, S, -1e6), maximize=True)
            keep = V[rows, cols]
            rows, cols = rows[keep], cols[keep]
            if not len(rows):
                continue
            s = S[rows, cols]
            margin = runner_up_margin(S, rows, cols)
            mutual = (S[rows].argmax(axis=1) == cols) & (S[:, cols].argmax(axis=0) == rows)
            out_a.append(prow[src[k], rows])
            out_b.append(prow[dst[k], cols])
            out_g.append(np.full(len(rows), gap))
            out_s.append(s)
            out_m.append(margin)
            out_mu.append(mutual)
        total = float(sims[valid].sum()) if valid.any() else 0.0
        bg_sum += total
        bg_n += int(valid.sum())
    # compact columns (a round holds several edges per instance): rows int32, similarities float32
    if out_a:
        edges = Edges(np.concatenate(out_a).astype(np.int32), np.concatenate(out_b).astype(np.int32),
                      np.concatenate(out_g).astype(np.int32), np.concatenate(out_s).astype(np.float32),
                      np.concatenate(out_m).astype(np.float32), np.concatenate(out_mu))
    else:
        e = np.zeros(0, dtype=np.int32)
        edges = Edges(e, e, e, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, dtype=bool))
    matched_sum = float(edges.similarity.sum(dtype=np.float64))
    return edges, bg_sum - matched_sum, bg_n - len(edges.a)


def _concat_edges(parts: list[Edges]) -> Edges:
    """One Edges from many, column by column, each part's column freed once copied (peak: the
    edges plus one column, not twice the edges)."""
    cols = []
    for name in ("a", "b", "gap", "similarity", "margin", "mutual"):
        cols.append(np.concatenate([getattr(p, name) for p in parts]))
        for p in parts:
            setattr(p, name, None)
    return Edges(*cols)


# ---- components -------------------------------------------------------------------------------
def components(n_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph (labels 0..k-1 per node)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def pair_components(a: np.ndarray, b: np.ndarray, frame_a: np.ndarray, video: np.ndarray,
                    reliability: np.ndarray, params: MiningParams) -> tuple[np.ndarray, float, int]:
    """Component id per pair (-1 for pairs below the cut) over time-windowed nodes.

    Nodes are (instance, window of the pair's earlier frame): a tracklet may not span more
    than one window. Returns (component per pair, largest component's share of the
    instances in pairs, number of components)."""
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0.0, 0
    w = max(int(params.component_window), 1)
    window = frame_a // w
    keep = reliability >= params.component_min_reliability
    # Node (row, window) -> row * k + window % k: a row only meets the windows of the k - 1
    # frames gaps before its own, so they differ mod k; linear, no sort of node keys.
    k = max(int(max(params.gaps, default=1)) // w + 2, 2)
    n_rows = int(max(a.max(), b.max())) + 1
    itype = np.int32 if n_rows * k < 2 ** 31 else np.int64  # compact node ids: several pairs per instance
    na = a.astype(itype) * itype(k) + (window % k).astype(itype)
    nb = b.astype(itype) * itype(k) + (window % k).astype(itype)
    labels = components(n_rows * k, na[keep], nb[keep])
    comp = np.where(keep, labels[na], -1)
    # share of instances (distinct instance rows) in the largest component
    n_inst = len(np.unique(np.concatenate([a, b])))
    if keep.any():
        used = np.unique(np.concatenate([na[keep], nb[keep]]))
        label_row = np.unique(labels[used].astype(np.int64) * n_rows + used // k)  # distinct (component, row)
        del used
        sizes = np.bincount(label_row // n_rows)
        share = float(sizes.max() / max(n_inst, 1))
        n_comp = int((sizes > 0).sum())
    else:
        share, n_comp = 0.0, 0
    # renumber to 0..k-1 over kept pairs
    if keep.any():
        _, comp_kept = np.unique(comp[keep], return_inverse=True)
        comp = comp.copy()
        comp[keep] = comp_kept
    return comp.astype(np.int64), share, n_comp


# ---- the round ----------------------------------------------------------------------------------
def mine(ids: np.ndarray, video: np.ndarray, frame: np.ndarray, boxes: np.ndarray, emb: np.ndarray,
         params: MiningParams, identity: np.ndarray | None = None, tracklet: np.ndarray | None = None) -> MiningResult:
    """Mine one round over all videos. ``emb`` rows are L2-normalised and aligned with ids.
    Rows of imported tracklets (``tracklet`` >= 0) are not matched: a tracker already joined
    them, so their pairs are given (``given_pairs``), each tracklet a component of its own."""
    if params.reliability_rule not in RELIABILITY_RULES:
        raise ValueError(f"unknown reliability rule {params.reliability_rule!r}")
    # Video by video: ``emb`` may be a float16 memory map; only one video's rows are read
    # (as float32) at a time.
    parts, bg_sum, bg_n = [], 0.0, 0
    order = np.argsort(video, kind="stable")
    bounds = np.flatnonzero(np.r_[True, video[order][1:] != video[order][:-1], True])
    imported = np.zeros(len(ids), bool) if tracklet is None else np.asarray(tracklet) >= 0
    for g in range(len(bounds) - 1):
        rows = order[bounds[g]:bounds[g + 1]]
        rows = rows[~imported[rows]]
        if len(rows) == 0:
            continue
        if rows[-1] - rows[0] + 1 == len(rows):  # contiguous (the usual case): a slice reads sequentially
            vemb = np.asarray(emb[rows[0]:rows[-1] + 1], dtype=np.float32)
        else:
            vemb = np.asarray(emb[np.sort(rows)], dtype=np.float32)[np.argsort(np.argsort(rows))]
        edges, s, nbg = match_video(frame[rows], vemb, boxes[rows], params)
        del vemb
        edges.a, edges.b = rows[edges.a].astype(np.int32), rows[edges.b].astype(np.int32)
        parts.append(edges)
        bg_sum += s
        bg_n += nbg
    edges = _concat_edges(parts) if parts else Edges(np.zeros(0, np.int32), np.zeros(0, np.int32), *(np.zeros(0),) * 4)
    del parts
    background = bg_sum / bg_n if bg_n else (float(edges.similarity.mean()) if len(edges.a) else 0.0)
    rel = RELIABILITY_RULES[params.reliability_rule](edges, background) if len(edges.a) else np.zeros(0)
    keep = (edges.similarity >= params.min_similarity) & (rel >= params.min_reliability)
    # The kept pairs' columns, then the candidates go: the components and the gt figures
    # below hold the peak, and they need only the kept pairs (rows stay int32).
    ra, rb, gap, similarity = edges.a[keep], edges.b[keep], edges.gap[keep], edges.similarity[keep]
    stats: dict[str, Any] = {
        "n_instances": int(len(ids)),
        "n_candidates": int(len(edges.a)),
        "n_pairs": int(keep.sum()),
        "background_similarity": float(background),
        "mean_similarity": float(similarity.mean()) if keep.any() else None,
        "mutual_share": float(edges.mutual[keep].mean()) if keep.any() else None,
    }
    rel = rel[keep]
    del edges, keep
    comp, share, n_comp = pair_components(ra, rb, frame[ra], video[ra], rel, params)
    stats.update({"n_components": n_comp, "largest_component_share": share})
    if identity is not None:
        stats.update(ground_truth_stats(ra, rb, gap, video, frame, identity, params.gaps))
    if imported.any():
        ga, gb, gcomp = given_pairs(video, np.asarray(tracklet), frame)
        gsim = np.einsum("ij,ij->i", np.asarray(emb[ga], np.float32), np.asarray(emb[gb], np.float32)) if len(ga) else np.zeros(0)
        base = int(np.max(comp, initial=-1)) + 1
        ra, rb = np.concatenate([ra, ga]).astype(np.int64), np.concatenate([rb, gb]).astype(np.int64)
        gap = np.concatenate([gap, np.ones(len(ga), gap.dtype)])
        similarity = np.concatenate([similarity, gsim.astype(similarity.dtype)])
        rel = np.concatenate([rel, np.ones(len(ga), rel.dtype)])
        comp = np.concatenate([comp, base + gcomp])
        stats.update({"n_tracklet_pairs": int(len(ga)), "n_imported_tracklets": int(gcomp.max(initial=-1)) + 1})
    return MiningResult(ids[ra], ids[rb], gap.astype(np.int64), similarity, rel, comp, stats)


def given_pairs(video: np.ndarray, tracklet: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of imported tracklets: each member with the next in time, and a dense
    component number per (video, tracklet). Rows with ``tracklet`` < 0 take no part."""
    rows = np.flatnonzero(tracklet >= 0)
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = rows[np.lexsort((frame[rows], tracklet[rows], video[rows]))]
    key = np.stack([video[rows], tracklet[rows]], 1)
    _, unit = np.unique(key, axis=0, return_inverse=True)
    unit = unit.reshape(-1)
    same = unit[1:] == unit[:-1]
    return rows[:-1][same], rows[1:][same], unit[:-1][same].astype(np.int64)


def ground_truth_stats(ra: np.ndarray, rb: np.ndarray, gap: np.ndarray, video: np.ndarray, frame: np.ndarray,
                       identity: np.ndarray, gaps: list[int]) -> dict[str, Any]:
    """Precision: share of mined pairs (both ends with a known id) that are the same person.
    Recall: share of true same-person pairs over the same frame gaps that were mined."""
    known = identity > 0
    both = known[ra] & known[rb]
    if not known.any():
        return {"precision": None, "recall": None, "n_labelled_pairs": 0}
    correct = both & (identity[ra] == identity[rb])
    precision = float(correct.sum() / both.sum()) if both.any() else None
    # True pairs: (video, id, t) and (video, id, t+δ) both present; count unique per (key, δ).
    # Sorted keys and binary search: no set operation's copies of a million keys.
    keys = np.unique((video[known].astype(np.int64) * (1 << 20) + identity[known]) * (1 << 24) + frame[known])
    n_true = 0
    for g in gaps:
        pos = np.searchsorted(keys, keys + g)
        n_true += int((keys[np.minimum(pos, len(keys) - 1)] == keys + g).sum())
        del pos
    # Mined true pairs, counted once per (key, δ) to match.
    rc = ra[correct]
    ck = (video[rc].astype(np.int64) * (1 << 20) + identity[rc]) * (1 << 24) + frame[rc]
    gap_c = gap[correct]
    n_hit = sum(len(np.unique(ck[gap_c == g])) for g in np.unique(gap_c))
    recall = float(n_hit / n_true) if n_true else None
    return {"precision": precision, "recall": recall, "n_labelled_pairs": int(both.sum()), "n_true_pairs": int(n_true)}

"""Re-identification metrics under the Market-1501 protocol, computed exactly and vectorised.

Protocol (the one of Zheng et al. 2015, torchreid and fast-reid):

- similarity is the cosine of L2-normalised features (ties keep gallery order);
- for each query, gallery items of the *same identity and the same camera* are removed,
  and junk items (identity ``-1``) are ignored; distractors (identity ``0``) are kept and
  always count as wrong;
- a query with no remaining correct match (or whose own identity is junk/distractor) is
  skipped and counted in ``n_skipped``;
- CMC at rank k: share of the used queries whose first correct match is within the top k of
  the remaining list; AP per query as in the standard code (mean precision at each correct
  match); mINP: mean of ``n_correct / rank_of_the_last_correct`` (Ye et al. 2021).

Everything runs on chunks of queries, the gallery read in blocks, so a large gallery never
needs the full query x gallery matrix (nor a float32 copy of itself) in memory. No row is
sorted whole: per query only the items at least as similar as its worst correct match are
ordered (that gives every correct match's rank, hence CMC, AP and INP) and the top k are
found by partition; the result is exactly that of a stable sort of the whole row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from idstudio.core.errors import UserError

RANKS = (1, 5, 10, 20)
# Status of an item in a ranked list.
RIGHT, WRONG, IGNORED = 1, 0, -1
STATUS_NAMES = {RIGHT: "right", WRONG: "wrong", IGNORED: "ignored"}
JUNK, DISTRACTOR = -1, 0


@dataclass
class EvalResult:
    """Figures of one evaluation plus what is needed to browse it."""

    cmc: np.ndarray  # (max_rank,) CMC curve over the used queries
    mAP: float
    mINP: float
    n_queries: int  # queries used
    n_skipped: int  # queries without any remaining correct match
    ap: np.ndarray  # (n_query,) per-query AP, NaN for skipped queries
    inp: np.ndarray  # (n_query,) per-query INP, NaN for skipped queries
    first_hit: np.ndarray  # (n_query,) 1-based rank of the first correct match, 0 if skipped
    ranked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # (n_query, k) gallery rows
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (n_query, k)
    status: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8))  # RIGHT/WRONG/IGNORED

    def rank(self, k: int) -> float:
        return float(self.cmc[min(k, len(self.cmc)) - 1]) if self.n_queries else 0.0

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"rank{k}": self.rank(k) for k in RANKS}
        out.update(mAP=float(self.mAP), mINP=float(self.mINP), n_queries=int(self.n_queries),
                   n_skipped=int(self.n_skipped))
        return out


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def camera_codes(*camera_lists: Sequence[object]) -> list[np.ndarray]:
    """Cameras (strings, ints or None) as shared integer codes; None is a camera like any other."""
    keys = [np.asarray(["" if c is None else str(c) for c in cams], dtype=object) for cams in camera_lists]
    allkeys = np.concatenate(keys) if keys else np.zeros(0, object)
    uniq = {k: i for i, k in enumerate(sorted(set(allkeys.tolist())))}
    return [np.fromiter((uniq[k] for k in ks), dtype=np.int64, count=len(ks)) for ks in keys]


def _chunk_rows(n_gallery: int, budget: int = 1 << 25) -> int:
    return int(max(1, min(4096, budget // max(n_gallery, 1))))


GALLERY_BLOCK = 65536  # gallery rows normalised (as float32) at a time


def iter_cosine_chunks(qf: np.ndarray, gf: np.ndarray, normalise: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """(start, similarity chunk) over query chunks: cosine on L2-normalised features.

    The gallery (e.g. a float16 memory map) is read in blocks; a small one is normalised once,
    a large one block by block for each query chunk, so memory stays at a chunk of rows."""
    q = normalize(qf) if normalise else np.asarray(qf, np.float32)
    n = len(gf)
    step = _chunk_rows(n)

    def block(s: int) -> np.ndarray:
        g = np.asarray(gf[s:s + GALLERY_BLOCK], dtype=np.float32)
        return normalize(g) if normalise else g

    small = n <= 4 * GALLERY_BLOCK
    whole = block(0) if n <= GALLERY_BLOCK else (np.concatenate([block(s) for s in range(0, n, GALLERY_BLOCK)])
                                                   if small else None)
    for start in range(0, len(q), step):
        qc = q[start:start + step]
        if whole is not None:
            yield start, qc @ whole.T
            continue
        sim = np.empty((len(qc), n), dtype=np.float32)
        for s in range(0, n, GALLERY_BLOCK):
            sim[:, s:s + GALLERY_BLOCK] = qc @ block(s).T
        yield start, sim


def evaluate_features(qf: np.ndarray, gf: np.ndarray, q_ids, q_cams, g_ids, g_cams,
                      max_rank: int = 20, keep_top: int = 0) -> EvalResult:
    """Market-1501 metrics for query/gallery features (any scale: they are L2-normalised here)."""
    qf = np.asarray(qf)
    gf = np.asarray(gf)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(f"feature shapes do not match: {qf.shape} vs {gf.shape}")
    return evaluate_chunks(iter_cosine_chunks(qf, gf), len(qf), q_ids, q_cams, g_ids, g_cams, max_rank, keep_top)


def evaluate_similarity(sim: np.ndarray, q_ids, q_cams, g_ids, g_cams, max_rank: int = 20,
                        keep_top: int = 0) -> EvalResult:
    """Metrics from a full (n_query, n_gallery) similarity matrix (higher = closer)."""
    sim = np.asarray(sim, dtype=np.float32)
    step = _chunk_rows(sim.shape[1])
    chunks = ((s, sim[s:s + step]) for s in range(0, sim.shape[0], step))
    return evaluate_chunks(chunks, sim.shape[0], q_ids, q_cams, g_ids, g_cams, max_rank, keep_top)


def check_split(n_query: int, n_gallery: int, what: str = "The dataset") -> None:
    if n_query == 0:
        raise UserError(f"{what} has no query images; import a dataset with a query/ folder or choose another dataset.")
    if n_gallery == 0:
        raise UserError(f"{what} has no gallery images; import a dataset with a bounding_box_test/ folder or choose another dataset.")


def evaluate_chunks(chunks, n_query: int, q_ids, q_cams, g_ids, g_cams, max_rank: int = 20,
                    keep_top: int = 0) -> EvalResult:
    """The protocol over an iterator of (start_row, similarity chunk)."""
    q_ids = np.asarray(q_ids, dtype=np.int64)
    g_ids = np.asarray(g_ids, dtype=np.int64)
    q_cams, g_cams = _as_codes(q_cams, g_cams)
    n_gallery = len(g_ids)
    check_split(n_query, n_gallery)
    if len(q_ids) != n_query or len(q_cams) != n_query or len(g_cams) != n_gallery:
        raise ValueError("identity/camera arrays do not match the features")
    ap = np.full(n_query, np.nan)
    inp = np.full(n_query, np.nan)
    first_hit = np.zeros(n_query, dtype=np.int64)
    k = min(keep_top, n_gallery)
    ranked = np.zeros((n_query, k), dtype=np.int64)
    scores = np.zeros((n_query, k), dtype=np.float32)
    status = np.zeros((n_query, k), dtype=np.int8)
    # Per query only what the metrics need is ranked: the items at least as similar as its
    # worst correct match (the ranks of its correct matches) and its top k. Exact (ties keep
    # gallery order, as a stable sort of the whole row would), without sorting whole rows.
    g_keep = g_ids != JUNK
    by_id = np.argsort(g_ids, kind="stable")
    sorted_ids = g_ids[by_id]
    for start, sim in chunks:
        sim = np.asarray(sim, dtype=np.float32)
        if k:
            top_all = _top_k(sim, k)
        for r in range(sim.shape[0]):
            q = start + r
            row = sim[r]
            qi, qc = int(q_ids[q]), q_cams[q]
            lo, hi = np.searchsorted(sorted_ids, qi), np.searchsorted(sorted_ids, qi, side="right")
            same = by_id[lo:hi]  # gallery rows of the query's identity
            if k:
                top = top_all[r]
                ranked[q], scores[q] = top, row[top]
                st = np.where(g_ids[top] == qi, RIGHT, WRONG).astype(np.int8)
                st[((g_ids[top] == qi) & (g_cams[top] == qc)) | ~g_keep[top]] = IGNORED
                status[q] = st
            if qi <= 0 or qi == JUNK:
                continue
            matches = same[g_cams[same] != qc]
            if not len(matches):
                continue
            worst = row[matches].min()
            cand = np.flatnonzero(row >= worst)  # every item ranked before some correct match
            cand = cand[np.lexsort((cand, -row[cand]))]
            kept = g_keep[cand]
            kept &= ~((g_ids[cand] == qi) & (g_cams[cand] == qc))
            is_match = kept & (g_ids[cand] == qi)
            position = np.cumsum(kept)[is_match]  # 1-based ranks of the correct matches among kept items
            n_rel = len(position)
            ap[q] = float(np.mean(np.arange(1, n_rel + 1) / position))
            inp[q] = n_rel / float(position[-1])
            first_hit[q] = int(position[0])
    used = first_hit > 0
    n_used = int(used.sum())
    cmc = np.zeros(max_rank)
    if n_used:
        fh = first_hit[used]
        cmc = np.array([(fh <= r).mean() for r in range(1, max_rank + 1)])
    return EvalResult(
        cmc=cmc,
        mAP=float(np.nanmean(ap)) if n_used else 0.0,
        mINP=float(np.nanmean(inp)) if n_used else 0.0,
        n_queries=n_used,
        n_skipped=int(n_query - n_used),
        ap=ap,
        inp=inp,
        first_hit=first_hit,
        ranked=ranked,
        scores=scores,
        status=status,
    )


def _top_k(sim: np.ndarray, k: int) -> np.ndarray:
    """(rows, k) column indices of each row's k largest values, ties in column order."""
    n = sim.shape[1]
    if k >= n:
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]
    kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1]
    out = np.empty((sim.shape[0], k), dtype=np.int64)
    for r in range(sim.shape[0]):
        cand = np.flatnonzero(sim[r] >= kth[r])
        out[r] = cand[np.lexsort((cand, -sim[r, cand]))][:k]
    return out


def _as_codes(q_cams, g_cams) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(q_cams) if not isinstance(q_cams, list) else None
    g = np.asarray(g_cams) if not isinstance(g_cams, list) else None
    if q is not None and g is not None and q.dtype.kind in "iu" and g.dtype.kind in "iu":
        return q.astype(np.int64), g.astype(np.int64)
    qc, gc = camera_codes(list(q_cams), list(g_cams))
    return qc, gc


def hit_status(q_id: int, q_cam: object, g_ids: np.ndarray, g_cams: Sequence[object]) -> np.ndarray:
    """Status of gallery items for one query (RIGHT/WRONG/IGNORED), as the protocol sees them.

    When the query's identity is unknown (-1) nothing can be judged: every item is IGNORED.
    """
    g_ids = np.asarray(g_ids, dtype=np.int64)
    if q_id is None or q_id < 0:
        return np.full(len(g_ids), IGNORED, dtype=np.int8)
    same_cam = np.array([(c if c is None else str(c)) == (q_cam if q_cam is None else str(q_cam)) for c in g_cams], bool)
    same_id = g_ids == q_id
    ignored = (same_id & same_cam) | (g_ids == JUNK)
    out = np.where(same_id, RIGHT, WRONG).astype(np.int8)
    out[ignored] = IGNORED
    if q_id == DISTRACTOR:
        out[~ignored] = WRONG
    return out

"""Human review of mined pairs: append-only decisions, undo/redo, and the review queue.

Decisions are about instance pairs ``(a, b)`` with ``a < b`` (so they survive re-mining)
and live in the append-only ``reviews`` table. Nothing is ever updated or deleted:

- ``decide`` appends one ``do`` row per pair, all sharing one new action id;
- ``undo(action)`` appends, for each pair of that action, an ``undo`` row restoring the
  state the pair had just before the action (``none`` when it had no decision);
- ``redo(action)`` appends ``redo`` rows re-applying the action's decisions;
- ``relink(a, wrong_b, right_b)`` rejects ``(a, wrong_b)`` and accepts ``(a, right_b)``
  in one action, so one undo reverts both.

The current decision of a pair is its latest row; ``none`` means cleared. Every call is its
own transaction, committed (with ``synchronous=FULL``) before it returns, so a decision
survives a kill of the process the moment ``decide`` returns. The trainer reads
:func:`current_decisions`: accepted pairs get reliability 1, rejected pairs become explicit
negatives and are never positives.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from idstudio.core.errors import UserError
from idstudio.core.store import Project

DECISIONS = ("accept", "reject", "none")
ORDERS = ("reliability", "random", "video")
FILTERS = ("all", "undecided", "decided", "accept", "reject")


def _key(a: int, b: int) -> tuple[int, int]:
    a, b = int(a), int(b)
    if a == b:
        raise UserError(f"A pair needs two different instances (got {a} twice).")
    return (a, b) if a < b else (b, a)


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on some systems
        return "unknown"


def _append(project: Project, rows: Sequence[tuple[int, int, str, str, int | None]], reviewer: str | None) -> int:
    """Append rows (a, b, decision, kind, pair_id) as one new action; committed durably."""
    reviewer = reviewer or _default_reviewer()
    now = time.time()
    with project.lock:
        project.conn.execute("PRAGMA synchronous=FULL")
        try:
            with project.transaction() as conn:
                action = int(conn.execute("SELECT COALESCE(MAX(action), 0) + 1 FROM reviews").fetchone()[0])
                conn.executemany(
                    "INSERT INTO reviews (a, b, decision, action, kind, pair_id, reviewer, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(a, b, d, action, kind, pid, reviewer, now) for a, b, d, kind, pid in rows],
                )
        finally:
            project.conn.execute("PRAGMA synchronous=NORMAL")
    return action


def decide(project: Project, pairs: Iterable[Sequence[int]], decision: str, reviewer: str | None = None,
           pair_ids: Sequence[int | None] | None = None) -> int:
    """Record ``decision`` for every pair (one user action); returns its action id."""
    if decision not in DECISIONS:
        raise UserError(f"A decision is one of {', '.join(DECISIONS)}, not {decision!r}.")
    keys = [_key(p[0], p[1]) for p in pairs]
    if not keys:
        raise UserError("Select at least one pair to decide.")
    ids = list(pair_ids) if pair_ids is not None else [None] * len(keys)
    if len(ids) != len(keys):
        raise ValueError("one pair id per pair")
    return _append(project, [(a, b, decision, "do", pid) for (a, b), pid in zip(keys, ids)], reviewer)


def relink(project: Project, a: int, wrong_b: int, right_b: int, reviewer: str | None = None) -> int:
    """``a`` is not ``wrong_b`` but ``right_b``: reject one, accept the other, in one action."""
    wrong, right = _key(a, wrong_b), _key(a, right_b)
    if wrong == right:
        raise UserError("Relink needs a partner other than the current one.")
    return _append(project, [(*wrong, "reject", "do", None), (*right, "accept", "do", None)], reviewer)


def _action_rows(project: Project, action_id: int) -> list[Any]:
    rows = project.query("SELECT id, a, b, decision, pair_id FROM reviews WHERE action = ? ORDER BY id", (int(action_id),))
    if not rows:
        raise UserError(f"There is no review action {action_id} in this project.")
    return rows


def undo(project: Project, action_id: int, reviewer: str | None = None) -> int:
    """Append rows restoring each pair of ``action_id`` to its state just before it."""
    rows = _action_rows(project, action_id)
    first = min(r["id"] for r in rows)
    out = []
    for r in rows:
        before = project.scalar(
            "SELECT decision FROM reviews WHERE a = ? AND b = ? AND id < ? ORDER BY id DESC LIMIT 1", (r["a"], r["b"], first)
        )
        out.append((r["a"], r["b"], before or "none", "undo", r["pair_id"]))
    return _append(project, out, reviewer)


def redo(project: Project, action_id: int, reviewer: str | None = None) -> int:
    """Append rows re-applying the decisions of ``action_id``."""
    rows = _action_rows(project, action_id)
    return _append(project, [(r["a"], r["b"], r["decision"], "redo", r["pair_id"]) for r in rows], reviewer)


def current_decisions(project: Project) -> dict[tuple[int, int], str]:
    """The latest decision per pair, leaving out cleared ones (``none``)."""
    rows = project.query(
        "SELECT r.a, r.b, r.decision FROM reviews r"
        " JOIN (SELECT MAX(id) AS id FROM reviews GROUP BY a, b) m ON m.id = r.id"
    )
    return {(int(r[0]), int(r[1])): r[2] for r in rows if r[2] != "none"}


def history(project: Project, a: int, b: int) -> list[dict[str, Any]]:
    """Every row ever written about one pair, oldest first."""
    a, b = _key(a, b)
    return [dict(r) for r in project.query("SELECT * FROM reviews WHERE a = ? AND b = ? ORDER BY id", (a, b))]


# ---- the review queue ------------------------------------------------------------------------
@dataclass
class ReviewQueue:
    """Pairs of one mining round, filtered and ordered, as column arrays."""

    round_id: int | None
    pair_id: np.ndarray
    a: np.ndarray
    b: np.ndarray
    gap: np.ndarray
    similarity: np.ndarray
    reliability: np.ndarray
    video_id: np.ndarray
    frame_a: np.ndarray
    frame_b: np.ndarray
    decision: list[str]  # accept | reject | none
    counts: dict[str, int] = field(default_factory=dict)  # over the whole round, before filters

    def __len__(self) -> int:
        return len(self.pair_id)

    def row(self, i: int) -> dict[str, Any]:
        return {
            "pair_id": int(self.pair_id[i]), "a": int(self.a[i]), "b": int(self.b[i]), "gap": int(self.gap[i]),
            "similarity": float(self.similarity[i]), "reliability": float(self.reliability[i]),
            "video_id": int(self.video_id[i]), "frame_a": int(self.frame_a[i]), "frame_b": int(self.frame_b[i]),
            "decision": self.decision[i],
        }


def latest_round(project: Project) -> int | None:
    value = project.scalar("SELECT MAX(id) FROM mining_rounds")
    return int(value) if value is not None else None


def _within(values: np.ndarray, bounds: tuple[float, float], ends: tuple[float, float]) -> np.ndarray:
    """Inclusive range test; a bound at the scale's end is no bound (a cosine stored as
    1.0000001 must not fall out of the full range)."""
    lo = -np.inf if bounds[0] <= ends[0] else bounds[0] - 1e-6
    hi = np.inf if bounds[1] >= ends[1] else bounds[1] + 1e-6
    return (values >= lo) & (values <= hi)


def review_queue(
    project: Project,
    round_id: int | None = None,
    order: str = "reliability",
    decision: str = "all",
    reliability: tuple[float, float] = (0.0, 1.0),
    similarity: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
) -> ReviewQueue:
    """The pairs of a round (default: the latest) joined with the current decisions.

    ``order``: ``reliability`` (least reliable first), ``random`` (seeded) or ``video``
    (by video, then frame). ``decision`` filters: all | undecided | decided | accept | reject.
    Ranges are inclusive. ``counts`` has total/accept/reject/undecided for the whole round.
    """
    if order not in ORDERS:
        raise UserError(f"Order the review queue by one of {', '.join(ORDERS)}, not {order!r}.")
    if decision not in FILTERS:
        raise UserError(f"Filter the review queue by one of {', '.join(FILTERS)}, not {decision!r}.")
    if round_id is None:
        round_id = latest_round(project)
    # Columns straight into numpy (chunks of rows, never one Python object per pair kept):
    # a round of a million-instance project holds millions of pairs.
    parts = []
    if round_id is not None:
        with project.lock:
            cursor = project.conn.execute(
                "SELECT p.id, p.a, p.b, p.gap, p.similarity, p.reliability, ia.video_id, ia.frame, ib.frame"
                " FROM pairs p JOIN instances ia ON ia.id = p.a JOIN instances ib ON ib.id = p.b"
                " WHERE p.round_id = ? ORDER BY p.id", (round_id,))
            while chunk := cursor.fetchmany(65536):
                parts.append(np.array(chunk, dtype=np.float64).reshape(len(chunk), 9))
    cols = np.concatenate(parts) if parts else np.zeros((0, 9))
    n = len(cols)
    pid, a, b, gap = (cols[:, i].astype(np.int64) for i in range(4))
    sim, rel = cols[:, 4].astype(np.float32), cols[:, 5].astype(np.float32)
    vid, fa, fb = (cols[:, i].astype(np.int64) for i in (6, 7, 8))
    del cols, parts
    current = current_decisions(project)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    dec = np.full(n, "none", dtype=object)
    if current:  # decisions are few next to pairs: look the pairs up by packed key, vectorised
        keys = np.array(list(current), dtype=np.int64).reshape(-1, 2)
        packed = keys[:, 0] * (1 << 32) + keys[:, 1]
        by_key = np.argsort(packed)
        wanted = lo * (1 << 32) + hi
        pos = np.clip(np.searchsorted(packed[by_key], wanted), 0, len(by_key) - 1)
        hit = packed[by_key][pos] == wanted
        values = np.array(list(current.values()), dtype=object)[by_key]
        dec[hit] = values[pos[hit]]
    counts = {
        "total": n,
        "accept": int(np.sum(dec == "accept")),
        "reject": int(np.sum(dec == "reject")),
    }
    counts["undecided"] = n - counts["accept"] - counts["reject"]

    keep = _within(rel, reliability, (0.0, 1.0)) & _within(sim, similarity, (-1.0, 1.0))
    if decision == "undecided":
        keep &= dec == "none"
    elif decision == "decided":
        keep &= dec != "none"
    elif decision in ("accept", "reject"):
        keep &= dec == decision
    idx = np.flatnonzero(keep)
    if order == "reliability":
        idx = idx[np.lexsort((pid[idx], rel[idx]))]
    elif order == "random":
        idx = idx[np.random.default_rng(seed).permutation(len(idx))]
    else:
        idx = idx[np.lexsort((pid[idx], fa[idx], vid[idx]))]
    return ReviewQueue(
        round_id=round_id, pair_id=pid[idx], a=a[idx], b=b[idx], gap=gap[idx], similarity=sim[idx],
        reliability=rel[idx], video_id=vid[idx], frame_a=fa[idx], frame_b=fb[idx],
        decision=[str(d) for d in dec[idx]], counts=counts,
    )


def round_pair_columns(project: Project, round_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of every pair of a round, as numpy columns read in chunks."""
    parts = []
    with project.lock:
        cursor = project.conn.execute("SELECT a, b FROM pairs WHERE round_id = ?", (round_id,))
        while chunk := cursor.fetchmany(65536):
            parts.append(np.array(chunk, dtype=np.int64).reshape(len(chunk), 2))
    cols = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    return cols[:, 0].copy(), cols[:, 1].copy()


def review_counts(project: Project, round_id: int | None = None) -> dict[str, int]:
    """total / accept / reject / undecided over a round's pairs (default: the latest)."""
    return review_queue(project, round_id=round_id).counts


def frame_instances(project: Project, video_id: int, frame: int) -> list[dict[str, Any]]:
    """The instances of one frame (the candidates for a relink), left to right."""
    rows = project.query(
        "SELECT id, x, y, w, h, identity FROM instances WHERE video_id = ? AND frame = ? ORDER BY x, id", (video_id, frame)
    )
    return [dict(r) for r in rows]

"""A stored mining round read back: ``round_pairs`` (its pairs' columns) and ``apply_reviews``
(the human decisions laid over them).

Below the jobs that read rounds (the trainer, link rounds) and the one that writes them
(``services.mining``), so that reading a round never brings in what mining needs to embed.
"""

from __future__ import annotations

import numpy as np

from idstudio.core.store import Project


def round_pairs(project: Project, round_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stored round's (a, b, reliability, component) columns, read in chunks into numpy."""
    parts = []
    with project.lock:
        cursor = project.conn.execute("SELECT a, b, reliability, IFNULL(component, -1) FROM pairs WHERE round_id = ? "
                                      "ORDER BY id", (round_id,))
        while rows := cursor.fetchmany(65536):
            parts.append(np.array(rows, dtype=np.float64).reshape(len(rows), 4))
    cols = np.concatenate(parts) if parts else np.zeros((0, 4))
    return (cols[:, 0].astype(np.int64), cols[:, 1].astype(np.int64), cols[:, 2].astype(np.float32),
            cols[:, 3].astype(np.int64))


def apply_reviews(a: np.ndarray, b: np.ndarray, rel: np.ndarray, comp: np.ndarray,
                  decisions: dict[tuple[int, int], str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Human decisions override mining: accepted -> reliability 1 (added if not mined),
    rejected -> never a positive, kept as an explicit negative row. Returns a, b, weight,
    component, positive."""
    positive = np.ones(len(a), dtype=bool)
    rel = rel.astype(np.float32).copy()
    if not decisions:
        return a, b, rel, comp, positive
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    index = {(int(x), int(y)): i for i, (x, y) in enumerate(zip(lo, hi))}
    extra_a, extra_b, extra_pos = [], [], []
    for (x, y), decision in decisions.items():
        i = index.get((x, y))
        if i is not None:
            if decision == "accept":
                rel[i] = 1.0
            elif decision == "reject":
                positive[i] = False
                rel[i] = 1.0
                comp[i] = -1
        else:
            extra_a.append(x)
            extra_b.append(y)
            extra_pos.append(decision == "accept")
    if extra_a:
        k = len(extra_a)
        a = np.concatenate([a, extra_a]).astype(np.int64)
        b = np.concatenate([b, extra_b]).astype(np.int64)
        rel = np.concatenate([rel, np.ones(k, np.float32)])
        comp = np.concatenate([comp, np.full(k, -1)])
        positive = np.concatenate([positive, np.array(extra_pos, dtype=bool)])
    return a, b, rel, comp, positive

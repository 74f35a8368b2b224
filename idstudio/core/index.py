"""Nearest-neighbour indexes over L2-normalised embeddings (faiss, inner product = cosine).

- ``exact`` (IndexFlatIP): BLAS-fast and always right.
- ``ivf`` (IndexIVFFlat, inner product): k-means cells, ``nprobe`` of them searched.
  When built, its recall@k against exact search is measured on a sample of the stored vectors
  and ``nprobe`` is raised until the recall reaches ``target_recall``, so the speed/recall
  trade-off is chosen from measurement, not guessed. Chosen automatically, an IVF that would
  need more than 1/8 of its cells falls back to exact search (structureless data).
  HNSW (M=32) was measured too: 48 s to build 200k x 256 on 2 shared cores (~5 min for 1M)
  and only ~4x faster than exact at recall 0.93; IVF builds 1M in ~2 min and reaches 0.97
  at > 40x (bench/search.py).

``kind="auto"`` chooses from measured times, not a fixed size: exact search is timed on sample
queries; while it takes under ``EXACT_BUDGET_S`` a query it is kept (always right). Otherwise an
IVF is built and tuned, both are timed on the same queries, and the IVF is kept only when it
reaches the target recall at least ``MIN_SPEEDUP`` times faster. The figures are recorded in
the index's params. Pass ``kind`` to override. Vectors can be added
later without a rebuild (IVF assigns them to the existing cells). Each index records the
checkpoint key and dataset it was built for; ``VectorIndex.load(path, expected_key)``
refuses an index built with another checkpoint with a ``UserError``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idstudio.core.errors import UserError

EXACT_MAX = 10_000  # below this exact search is always chosen: IVF cannot pay for its training
EXACT_BUDGET_S = 1e-3  # exact search faster than this per query is kept without trying IVF
MIN_SPEEDUP = 2.0  # an automatic IVF must be at least this much faster than exact search
KINDS = ("auto", "exact", "ivf")


def _faiss():
    import faiss

    return faiss


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def exact_search(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product (scores, rows) without building an index (no copy of the data)."""
    faiss = _faiss()
    k = min(k, len(database))
    return faiss.knn(_as_f32(queries), _as_f32(database), k, metric=faiss.METRIC_INNER_PRODUCT)


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k (rows of ids; -1 entries never count)."""
    k = truth.shape[1]
    hits = 0
    for t, f in zip(truth, found):
        hits += len(np.intersect1d(t[t >= 0], f[f >= 0], assume_unique=False))
    return hits / (k * len(truth)) if len(truth) else 1.0


@dataclass
class VectorIndex:
    index: Any
    ids: np.ndarray  # row -> instance id
    key: str  # checkpoint key the vectors come from
    dataset: str
    kind: str  # exact | ivf
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, instance ids), each (n_queries, k'); k' = min(k, size); missing hits are id -1."""
        queries = _as_f32(np.atleast_2d(queries))
        if queries.shape[1] != self.dim:
            raise UserError(f"Query vectors have {queries.shape[1]} dimensions but the index has {self.dim}; "
                            "embed the queries with the index's checkpoint.")
        k = max(1, min(int(k), len(self)))
        scores, rows = self.index.search(queries, k)
        ids = np.where(rows >= 0, self.ids[np.clip(rows, 0, None)], -1)
        return scores, ids

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append vectors (no rebuild; an IVF index assigns them to its existing cells)."""
        vectors = _as_f32(vectors)
        if len(vectors) != len(ids):
            raise ValueError("one id per vector")
        if vectors.shape[1] != self.dim:
            raise UserError(f"New vectors have {vectors.shape[1]} dimensions but the index has {self.dim}; "
                            "rebuild the index for this checkpoint.")
        self.index.add(vectors)
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])

    def measure_recall(self, database: np.ndarray, k: int = 100, n_sample: int = 500, seed: int = 0) -> float:
        """Recall@k of this index against exact search, on a sample of ``database`` rows as queries."""
        database = _as_f32(database)
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(database), size=min(n_sample, len(database)), replace=False)
        k = min(k, len(database))
        _, truth_rows = exact_search(database, database[sample], k)
        _, found = self.search(database[sample], k)
        return recall_at_k(self.ids[truth_rows], found)

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write ``path`` (faiss), ``path.ids.npy`` and ``path.json`` atomically (temp + rename)."""
        faiss = _faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self.index, str(tmp))
        np.save(str(tmp) + ".ids.npy", self.ids)
        meta = {"key": self.key, "dataset": self.dataset, "kind": self.kind, "params": self.params,
                "n": len(self), "dim": self.dim, "format": "idstudio-index-1"}
        Path(str(tmp) + ".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(str(tmp) + ".ids.npy", str(path) + ".ids.npy")
        os.replace(tmp, path)
        os.replace(str(tmp) + ".json", str(path) + ".json")  # last: the meta marks the index complete
        return path

    @classmethod
    def read_meta(cls, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @classmethod
    def load(cls, path: Path, expected_key: str | None = None) -> "VectorIndex":
        faiss = _faiss()
        path = Path(path)
        meta = cls.read_meta(path)
        if meta is None or meta.get("format") != "idstudio-index-1" or not path.is_file():
            raise UserError(f"{path} is not a complete idstudio index; rebuild it with `idstudio embed --index`.")
        if expected_key is not None and meta["key"] != expected_key:
            raise UserError(f"The index {path.name} was built with checkpoint {meta['key']}, not {expected_key}; "
                            "rebuild it for this checkpoint (idstudio embed --index --rebuild).")
        try:
            index = faiss.read_index(str(path))
            ids = np.load(str(path) + ".ids.npy")
        except (RuntimeError, OSError, ValueError) as exc:
            raise UserError(f"The index {path} cannot be read ({exc.__class__.__name__}); rebuild it with "
                            "`idstudio embed --index --rebuild`.") from None
        if len(ids) != index.ntotal:
            raise UserError(f"The index {path} is inconsistent (ids and vectors differ); rebuild it with "
                            "`idstudio embed --index --rebuild`.")
        out = cls(index, ids, meta["key"], meta["dataset"], meta["kind"], meta.get("params", {}))
        if out.kind == "ivf":
            out.index.nprobe = int(out.params.get("nprobe", 16))
        return out


def choose_kind(n: int, kind: str = "auto", exact_max: int = EXACT_MAX) -> str:
    if kind not in KINDS:
        raise UserError(f"Unknown index kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if kind != "auto":
        return kind
    return "exact" if n <= exact_max else "ivf"


def build_index(vectors: np.ndarray, ids: np.ndarray, key: str, dataset: str, kind: str = "auto",
                exact_max: int = EXACT_MAX, nlist: int | None = None, target_recall: float = 0.95,
                recall_k: int = 100, n_sample: int = 200, seed: int = 0,
                log=None) -> VectorIndex:
    """Build an index over ``vectors`` (rows = ``ids``). For ``ivf``, ``params['recall']`` is
    the measured recall@``recall_k`` on a sample and ``params['nprobe']`` the smallest power
    of two reaching ``target_recall`` (or the largest tried)."""
    faiss = _faiss()
    vectors = _as_f32(vectors)
    ids = np.asarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError("vectors must be (n, dim) with one id per row")
    if len(vectors) == 0:
        raise UserError("There are no vectors to index; embed a dataset with images first.")
    n, dim = vectors.shape
    asked = kind
    kind = choose_kind(n, kind, exact_max)
    rng = np.random.default_rng(seed)
    timing: dict[str, float] = {}
    if kind == "ivf" and asked == "auto":
        # Time exact search on sample queries first: fast enough, it is kept (always right).
        sample = vectors[rng.choice(n, size=min(n_sample, n), replace=False)]
        t0 = time.perf_counter()
        exact_search(vectors, sample, min(recall_k, n))
        timing["exact_s_per_query"] = (time.perf_counter() - t0) / len(sample)
        if timing["exact_s_per_query"] < EXACT_BUDGET_S:
            kind = "exact"
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return VectorIndex(index, ids.copy(), key, dataset, "exact", {"recall": 1.0, **timing})
    nlist = int(nlist or max(1, min(n // 39, int(np.sqrt(n)))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    max_train = 40 * nlist  # faiss wants >= 39 points per cell; more only slows k-means
    train = vectors if n <= max_train else vectors[np.sort(rng.choice(n, max_train, replace=False))]
    index.cp.seed = seed
    index.train(train)
    index.add(vectors)
    out = VectorIndex(index, ids.copy(), key, dataset, "ivf", {"nlist": nlist})
    # Tune nprobe on a sample of stored vectors perturbed like fresh queries would be.
    sample = rng.choice(n, size=min(n_sample, n), replace=False)
    queries = vectors[sample] + rng.standard_normal((len(sample), dim)).astype(np.float32) * 0.5 / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(recall_k, n)
    t0 = time.perf_counter()
    _, truth_rows = exact_search(vectors, queries, k)
    timing["exact_s_per_query"] = (time.perf_counter() - t0) / len(queries)
    truth = ids[truth_rows]
    # Chosen automatically, an IVF that must scan more than 1/8 of its cells is no faster than
    # exact search (data without low-dimensional structure, e.g. isotropic random vectors):
    # fall back to exact rather than serve a slow, inaccurate index.
    cap = nlist if asked == "ivf" else max(1, nlist // 8)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = out.search(queries, k)
        recall = recall_at_k(truth, found)
        if log:
            log(f"ivf nlist={nlist} nprobe={nprobe}: recall@{k} {recall:.3f}")
        if recall >= target_recall or nprobe >= cap:
            break
        nprobe = min(cap, nprobe * 2)
    t0 = time.perf_counter()
    out.search(queries, k)
    timing["ivf_s_per_query"] = (time.perf_counter() - t0) / len(queries)
    fallback = None
    if recall < target_recall:
        fallback = f"ivf recall {recall:.3f} < {target_recall}"
        if log:
            log(f"ivf reaches only recall@{k} {recall:.3f} at nprobe={nprobe} of {nlist}: using exact search instead")
    elif timing["ivf_s_per_query"] * MIN_SPEEDUP > timing["exact_s_per_query"]:
        fallback = (f"ivf {timing['ivf_s_per_query'] * 1e3:.2f} ms a query, exact "
                    f"{timing['exact_s_per_query'] * 1e3:.2f} ms: less than {MIN_SPEEDUP:g}x faster")
        if log:
            log(f"{fallback}: using exact search instead")
    if fallback is not None and asked != "ivf":
        del out, index
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        return VectorIndex(flat, ids.copy(), key, dataset, "exact", {"recall": 1.0, "fallback": fallback, **timing})
    out.params.update(nprobe=nprobe, recall=float(recall), recall_k=k, n_sample=len(sample),
                      target_recall=target_recall, **timing)
    return out

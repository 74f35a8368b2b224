"""Search bench: 1,000,000 x 256 unit vectors, 1,000 queries, top-100.

Prints the recall of the approximate (IVF) index against exact search and the speed-up of its
query time over exact search (faiss.knn, BLAS), for two kinds of random unit vectors:

- ``structured``: embedding-like vectors with a low intrinsic dimension (a Gaussian mixture in
  16 dimensions mapped into 256 by a random matrix, plus isotropic noise), as real CNN
  embeddings have. This is the headline figure.
- ``uniform`` (with --uniform): isotropic vectors, the worst case for any approximate index:
  the 100th and the 10,000th neighbour are nearly equally far, so no partition finds the top
  100 without scanning most of the data.

Last line: one JSON object. Needs ~3 GB RAM; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idstudio.core import index as vindex  # noqa: E402


def unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(kind: str, n: int, nq: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = np.empty((n + nq, dim), dtype=np.float32)
    if kind == "uniform":
        for s in range(0, n + nq, 100_000):
            e = min(s + 100_000, n + nq)
            out[s:e] = rng.standard_normal((e - s, dim), dtype=np.float32)
    else:
        latent, n_modes = 16, 256
        proj = rng.standard_normal((latent, dim)).astype(np.float32)
        modes = rng.standard_normal((n_modes, latent)).astype(np.float32) * 2.0
        for s in range(0, n + nq, 100_000):
            e = min(s + 100_000, n + nq)
            z = modes[rng.integers(0, n_modes, e - s)] + rng.standard_normal((e - s, latent), dtype=np.float32)
            out[s:e] = z @ proj + rng.standard_normal((e - s, dim), dtype=np.float32) * 0.5
    unit_rows(out)
    return out[:n], out[n:]


def run(kind: str, n: int, nq: int, dim: int, k: int) -> dict:
    t0 = time.perf_counter()
    base, queries = make_data(kind, n, nq, dim)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, exact = vindex.exact_search(base, queries, k)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx = vindex.build_index(base, np.arange(n), key="bench", dataset=kind, kind="ivf",
                             log=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, found = idx.search(queries, k)
    t_approx = time.perf_counter() - t0
    recall = vindex.recall_at_k(exact, found)
    out = {"data": kind, "n": n, "queries": nq, "k": k, "recall": round(recall, 4),
           "speedup": round(t_exact / t_approx, 2), "exact_s": round(t_exact, 3), "approx_s": round(t_approx, 3),
           "build_s": round(t_build, 1), "data_s": round(t_data, 1), "nlist": idx.params["nlist"],
           "nprobe": idx.params["nprobe"], "build_recall_estimate": round(idx.params["recall"], 4)}
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--uniform", action="store_true", help="also measure isotropic vectors (worst case)")
    args = ap.parse_args()
    result = run("structured", args.n, args.queries, args.dim, args.k)
    if args.uniform:
        result["uniform"] = run("uniform", args.n, args.queries, args.dim, args.k)
    import resource

    result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

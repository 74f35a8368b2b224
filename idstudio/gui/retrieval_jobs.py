"""What the Retrieval view browses, and the jobs that build it in worker threads.

``BrowseResult`` (one checkpoint's ranked lists, per-query AP, features and their 2-D PCA on
one dataset), ``browse_job`` (evaluate and gather it), ``search_job`` (an image file against
the gallery), ``add_model_job`` (register a model file) and ``prepare_overlays_job``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

@dataclass
class BrowseResult:
    checkpoint: str  # checkpoint key
    dataset_id: int
    dataset_name: str
    q_ids: np.ndarray  # instance ids of the queries
    g_ids: np.ndarray  # instance ids of the gallery
    q_identity: np.ndarray
    g_identity: np.ndarray
    q_camera: list
    g_camera: list
    ap: np.ndarray  # per query, NaN when skipped by the protocol
    first_hit: np.ndarray  # 1-based rank of the first right match, 0 when skipped
    ranked: np.ndarray  # (n_query, k) gallery rows
    scores: np.ndarray
    status: np.ndarray  # RIGHT / WRONG / IGNORED
    cmc: np.ndarray
    summary: dict[str, Any]
    q_feat: np.ndarray | None = None
    g_feat: np.ndarray | None = None
    pca_q: np.ndarray | None = None  # (n_query, 2)
    pca_g: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _pca2(*blocks: np.ndarray) -> list[np.ndarray]:
    """A shared 2-D PCA of the stacked blocks (centred SVD)."""
    x = np.concatenate(blocks).astype(np.float64)
    if len(x) < 2:
        return [np.zeros((len(b), 2), np.float32) for b in blocks]
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    y = (x @ vt[:2].T).astype(np.float32)
    if y.shape[1] < 2:
        y = np.pad(y, ((0, 0), (0, 2 - y.shape[1])))
    out, start = [], 0
    for b in blocks:
        out.append(y[start:start + len(b)])
        start += len(b)
    return out


def browse_job(root: Path, checkpoint: str | None, dataset: str | int | None, top_k: int, ctx,
               centralize: int = 0) -> BrowseResult:
    """Evaluate a checkpoint on a dataset (stored in ``evaluations``, embeddings cached) and
    gather what the view browses: ranked lists, per-query AP, features and their PCA (worker).
    ``centralize`` k > 0: with feature centralization (the PCA stays on the plain features)."""
    from idstudio.core.store import Project
    from idstudio.services import evaluation

    with Project.open(root) as project:
        figures = evaluation.evaluate(project, checkpoint, dataset, ctx=ctx, centralize=centralize)
        ctx.check_cancelled()
        split, res, loaded = evaluation.evaluation_details(project, checkpoint, dataset, k=top_k, ctx=ctx,
                                                           centralize=centralize)
        qf, gf = evaluation.dataset_features(project, loaded, split, ctx=ctx)
        qf, gf = np.asarray(qf, np.float32), np.asarray(gf, np.float32)
    ctx.check_cancelled()
    pca_q, pca_g = _pca2(qf, gf)
    summary = res.summary()
    summary["evaluation_id"] = figures.get("evaluation_id")
    return BrowseResult(
        checkpoint=str(checkpoint), dataset_id=int(split.dataset["id"]), dataset_name=split.dataset["name"],
        q_ids=split.query.id, g_ids=split.gallery.id, q_identity=split.query.identity,
        g_identity=split.gallery.identity, q_camera=list(split.query.camera), g_camera=list(split.gallery.camera),
        ap=res.ap, first_hit=res.first_hit, ranked=res.ranked, scores=res.scores, status=res.status,
        cmc=np.asarray(res.cmc), summary=summary, q_feat=qf, g_feat=gf, pca_q=pca_q, pca_g=pca_g,
        extra={"checkpoint_key": loaded.ref_key, "centralize": int(centralize)})


def add_model_job(root: Path, kwargs: dict[str, Any], ctx) -> dict[str, Any]:
    """Register a model file (runs it once: a worker's job)."""
    from idstudio.core.store import Project
    from idstudio.services import model_registry

    with Project.open(root) as project:
        return model_registry.add(project, **kwargs)


def prepare_overlays_job(overlays, ctx):
    """Load the model behind activation overlays and check it has a feature map (worker)."""
    overlays.model()
    return overlays


def search_job(root: Path, checkpoint: str | None, dataset: str | int | None, image_path: Path, top_k: int, ctx):
    """Embed an image file with a checkpoint and search the dataset's gallery (worker)."""
    from idstudio.core.store import Project
    from idstudio.services import evaluation

    with Project.open(root) as project:
        return evaluation.search(project, checkpoint, image=Path(image_path), k=top_k, dataset=dataset, ctx=ctx)[0]

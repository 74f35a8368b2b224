"""Evaluation and retrieval use cases shared by the GUI, the CLI and the trainer.

- ``evaluate_model(project, model, dataset)``: the trainer's per-epoch figures (no caching);
  ``dataset_evaluator``/``eval_summary``: those over the chosen labelled datasets, and their mean.
- ``evaluate(project, checkpoint, dataset, rerank, centralize=k)``: embeddings cached per
  (checkpoint, dataset), figures stored in the ``evaluations`` table (``centralize``: feature
  centralization with k neighbours first, ``core.centralize``).
- ``search(...)``: top-k by instance id(s) or by an image file, with each hit marked right /
  wrong / ignored where identities are known.
- ``colorhist``: an HSV colour-histogram "model" (no learning) as an honest floor.

Checkpoint references are those of ``services.models.resolve_checkpoint`` (runs, files,
``init``, registered models) plus ``colorhist``. Cache keys add the checkpoint file's size
and modification time, so a ``best.pt`` rewritten by training is never served from a stale
cache; a registered model's key is its name and file hash.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from idstudio.core import embed as core_embed
from idstudio.core import evaluate as ev
from idstudio.core import index as vindex
from idstudio.core.colour import colour_histogram
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.model import ModelSpec
from idstudio.core.store import InstanceTable, Project, to_json
from idstudio.services import model_registry
from idstudio.services import models as model_refs

COLORHIST = "colorhist"


# ---- the colour-histogram floor ------------------------------------------------------------

class ColorHistogram(nn.Module):
    """HSV histograms per horizontal stripe (8 stripes x (16 H + 8 S + 8 V) = 256 bins),
    square-rooted (Hellinger) and L2-normalised. Takes float RGB in [0, 1] like the models."""

    def __init__(self, stripes: int = 8, bins: tuple[int, int, int] = (16, 8, 8), height: int = 128, width: int = 64):
        super().__init__()
        self.stripes = stripes
        self.bins = bins
        self.spec = ModelSpec(dim=stripes * sum(bins), height=height, width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return colour_histogram(x, self.stripes, self.bins)


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    ref_key: str  # what the evaluations table records ('init', 'runs/x/best.pt', 'colorhist')
    cache_key: str  # ref_key + a fingerprint of the file


def cache_key_for(ref: model_refs.CheckpointRef, model: nn.Module, project: Project | None = None) -> str:
    if ref.model is not None and project is not None:  # a registered model: its name and file hash
        row = model_registry.get(project, ref.model)
        if row is not None:
            return model_registry.cache_key(row)
    if ref.path is None:
        return f"{ref.key}:{json.dumps(model.spec.to_dict(), sort_keys=True)}"
    st = Path(ref.path).stat()
    return f"{ref.key}@{st.st_size}-{st.st_mtime_ns}"


def load(project: Project, checkpoint: str | Path | None = None) -> LoadedModel:
    """The model for a checkpoint reference (run id, file, 'init', 'colorhist', None = latest)."""
    if checkpoint is not None and str(checkpoint) == COLORHIST:
        model = ColorHistogram().eval()
        return LoadedModel(model, COLORHIST, COLORHIST)
    model, ref = model_refs.load_model(project, checkpoint)
    return LoadedModel(model, ref.key, cache_key_for(ref, model, project))


def describe_model(project: Project, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """What a reference's model expects and gives, without running it (the Retrieval view's
    model card panel): ``kind``, ``input``, ``colour``, ``normalisation``, ``output`` (short
    texts), ``assumed`` (card fields a registered model took from defaults) and ``note``."""
    if checkpoint is not None and str(checkpoint) == COLORHIST:
        spec = ColorHistogram().spec
        return {"kind": "colour histogram (no learning)", "input": f"{spec.height}x{spec.width} (squash)",
                "colour": "HSV", "normalisation": "none", "output": f"{spec.dim}-d, L2-normalised", "assumed": [],
                "note": "8 stripes x (16 H + 8 S + 8 V) bins, square-rooted"}
    ref = model_refs.resolve_checkpoint(project, checkpoint)
    if ref.model is not None:
        info = model_registry.info(project, ref.model)
        return {**info["describe"], "assumed": info["assumed"], "note": info["card"].get("note") or info["path"]}
    if ref.path is None:
        spec, kind, note = model_refs.default_spec(project), "idstudio {arch}, random init", "seed 0, untrained"
    else:
        try:
            payload = torch.load(ref.path, map_location="cpu", weights_only=True, mmap=True)
            spec = ModelSpec.from_dict(payload["spec"])
        except Exception:  # noqa: BLE001 - a damaged file is reported when it is evaluated
            return {"kind": "idstudio checkpoint", "input": "?", "colour": "RGB", "normalisation": "?", "output": "?",
                    "assumed": [], "note": f"{ref.key} (unreadable)"}
        kind, note = "idstudio {arch}", ref.key
    return {"kind": kind.format(arch=spec.arch), "input": f"{spec.height}x{spec.width} (squash)", "colour": "RGB",
            "normalisation": "ImageNet mean/std (inside the model)", "output": f"{spec.dim}-d, L2-normalised",
            "assumed": [], "note": note}


# ---- where the model looks ------------------------------------------------------------------

class ActivationOverlays:
    """Crops with a checkpoint's activation map blended over them (``core.activation``), as
    JPEG bytes by instance id: a thumbnail fetch for the Retrieval view and the HTML report.
    The model is loaded once, on first use, and used under a lock (any thread)."""

    def __init__(self, project: Project, checkpoint: str | Path | None, loaded: LoadedModel | None = None):
        import threading

        self.project = project
        self.checkpoint = checkpoint
        self._loaded = loaded
        self._lock = threading.Lock()

    def model(self) -> nn.Module:
        from idstudio.core import activation

        with self._lock:
            if self.checkpoint is not None and str(self.checkpoint) == COLORHIST:
                raise UserError("The colour histogram has no feature map to look at; choose a network.")
            if self._loaded is None:
                loaded = load(self.project, self.checkpoint)
                spec = loaded.model.spec
                activation.feature_map(loaded.model, torch.zeros(1, 3, spec.height, spec.width))  # refused early
                self._loaded = loaded
            return self._loaded.model

    def __call__(self, instance_ids: Sequence[int]) -> list[bytes]:
        from idstudio.core import activation

        model = self.model()
        jpegs = self.project.crop_jpegs([int(i) for i in instance_ids])
        with self._lock:
            return activation.overlay_jpegs(model, jpegs)


# ---- datasets ------------------------------------------------------------------------------

@dataclass
class Split:
    dataset: dict[str, Any]
    query: InstanceTable
    gallery: InstanceTable


def split_of(project: Project, dataset: str | int | None = None) -> Split:
    d = project.dataset(dataset)
    parts = project.dataset_split(d["id"])
    ev.check_split(len(parts["query"]), len(parts["gallery"]), f"Dataset {d['name']!r}")
    return Split(d, parts["query"], parts["gallery"])


def tracklet_groups(project: Project, split: Split) -> tuple[np.ndarray, np.ndarray] | None:
    """A tracklet id per query and gallery row for centralization, or None when no row is a
    video instance. Tracklets are the pseudo-tracklets (components) of the latest mining
    round: label-free, and the same person for certain enough to be averaged. An instance in
    several components (time windows) takes the first; rows outside any stay -1."""
    ids = np.concatenate([split.query.id, split.gallery.id])
    from_video = np.concatenate([split.query.video_id, split.gallery.video_id]) >= 0
    if not from_video.any():
        return None
    latest = project.scalar("SELECT MAX(id) FROM mining_rounds")
    if latest is None:
        return None
    wanted = ids[from_video]
    found: dict[int, int] = {}
    for start in range(0, len(wanted), 500):  # SQLite's parameter limit
        chunk = [int(i) for i in wanted[start:start + 500]]
        marks = ",".join("?" * len(chunk))
        for side in ("a", "b"):
            for inst, comp in project.query(
                    f"SELECT {side}, MIN(component) FROM pairs WHERE round_id = ? AND component >= 0 "
                    f"AND {side} IN ({marks}) GROUP BY {side}", (latest, *chunk)):
                found[int(inst)] = min(int(comp), found.get(int(inst), int(comp)))
    groups = np.fromiter((found.get(int(i), -1) for i in ids), dtype=np.int64, count=len(ids))
    nq = len(split.query)
    return groups[:nq], groups[nq:]


def _metrics(split: Split, qf: np.ndarray, gf: np.ndarray, rerank: bool = False, keep_top: int = 0,
             centralize: int = 0, groups: tuple[np.ndarray, np.ndarray] | None = None) -> ev.EvalResult:
    """The protocol's figures; with ``centralize`` k > 0 the features are centralized first
    (``core.centralize``: tracklets where ``groups`` has them, else mutual k-NN), then re-ranked
    if asked."""
    args = (split.query.identity, split.query.camera, split.gallery.identity, split.gallery.camera)
    if centralize:
        from idstudio.core.centralize import centralize_split

        qf, gf = centralize_split(qf, gf, centralize, *(groups or (None, None)))
    if rerank:
        from idstudio.core.rerank import rerank as rerank_fn

        dist = rerank_fn(np.asarray(qf, np.float32), np.asarray(gf, np.float32))
        return ev.evaluate_similarity(-dist, *args, keep_top=keep_top)
    return ev.evaluate_features(qf, gf, *args, keep_top=keep_top)


def evaluate_model(project: Project, model: nn.Module, dataset: str | int | None = None,
                   ctx: JobContext | None = None, flip: bool = False) -> dict[str, Any]:
    """Rank-1/5/10/20, mAP, mINP, n_queries, n_skipped of ``model`` on a dataset's split.

    The trainer calls this every epoch: nothing is cached or stored, the model's train/eval
    mode is restored afterwards."""
    split = split_of(project, dataset)
    ids = np.concatenate([split.query.id, split.gallery.id])
    feats = core_embed.embed_instances(project, model, ids, flip=flip, ctx=ctx)
    nq = len(split.query)
    return _metrics(split, feats[:nq], feats[nq:]).summary()


EVAL_KEYS = ("mAP", "rank1", "rank5", "mINP")


def dataset_evaluator(project: Project, datasets: str):
    """A function model -> {dataset name: metrics} over the chosen labelled datasets
    (comma-separated names; empty: all of them), and their names; (None, []) when the
    project has none. The trainer's per-epoch figures and the recipe's colour judgement."""
    if not project.datasets():
        return None, []
    chosen = [project.dataset(name.strip()) for name in datasets.split(",") if name.strip()] or project.datasets()

    def run(model) -> dict[str, dict[str, float]]:
        return {d["name"]: {k: float(v) for k, v in evaluate_model(project, model, d["name"]).items() if k in EVAL_KEYS}
                for d in chosen}
    return run, [d["name"] for d in chosen]


def eval_summary(per_dataset: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The figures an epoch reports: the mean over datasets of each metric (which picks
    best.pt) and, with several datasets, each one's figures under ``datasets``."""
    if not per_dataset:
        return {}
    out: dict[str, Any] = {k: float(np.mean([m[k] for m in per_dataset.values()])) for k in EVAL_KEYS
                           if all(k in m for m in per_dataset.values())}
    if len(per_dataset) > 1:
        out["datasets"] = per_dataset
    return out


def dataset_features(project: Project, loaded: LoadedModel, split: Split, flip: bool = False,
                     ctx: JobContext | None = None, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(query, gallery) float16 memmaps from the (checkpoint, dataset) cache."""
    name = f"dataset-{split.dataset['id']}-{split.dataset['name']}"
    ids = np.concatenate([split.query.id, split.gallery.id])
    feats = core_embed.cached_embeddings(project, loaded.model, loaded.cache_key, name, ids, batch_size=batch_size,
                                         flip=flip, ctx=ctx)
    nq = len(split.query)
    return feats[:nq], feats[nq:]


def evaluate(project: Project, checkpoint_ref: str | Path | None = None, dataset: str | int | None = None,
             rerank: bool = False, flip: bool = False, ctx: JobContext | None = None, keep_top: int = 0,
             store: bool = True, centralize: int = 0) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset (embeddings cached); the result row goes to ``evaluations``.

    ``centralize`` k > 0: feature centralization with k mutual neighbours (or tracklets) before
    ranking (and before re-ranking); the row records it, so the two are compared as any two
    evaluations are."""
    ctx = ctx or JobContext()
    loaded = load(project, checkpoint_ref)
    split = split_of(project, dataset)
    centralize = int(centralize or 0)
    groups = None
    if centralize:
        from idstudio.core.centralize import check_k

        check_k(centralize, len(split.gallery))  # refuse before spending time embedding
        groups = tracklet_groups(project, split)
    if rerank:
        from idstudio.core.rerank import check_fits

        check_fits(len(split.query), len(split.gallery))  # refuse before spending time embedding
    qf, gf = dataset_features(project, loaded, split, flip=flip, ctx=ctx)
    res = _metrics(split, qf, gf, rerank=rerank, keep_top=keep_top, centralize=centralize, groups=groups)
    figures: dict[str, Any] = res.summary()
    figures.update(checkpoint=loaded.ref_key, dataset=split.dataset["name"], rerank=bool(rerank), flip=bool(flip),
                   centralize=centralize)
    if store:
        with project.transaction():
            cursor = project.conn.execute(
                "INSERT INTO evaluations (checkpoint, dataset_id, metrics, created_at) VALUES (?, ?, ?, ?)",
                (loaded.ref_key, split.dataset["id"], to_json({**figures, "cache_key": loaded.cache_key}), time.time()))
        figures["evaluation_id"] = int(cursor.lastrowid)
    ctx.log(f"{split.dataset['name']}{f' (centralized, k={centralize})' if centralize else ''}: "
            f"rank1 {figures['rank1']:.3f} mAP {figures['mAP']:.3f} "
            f"({figures['n_queries']} queries, {figures['n_skipped']} skipped)")
    return figures


def evaluation_details(project: Project, checkpoint_ref: str | Path | None = None, dataset: str | int | None = None,
                       k: int = 10, rerank: bool = False, flip: bool = False,
                       ctx: JobContext | None = None, centralize: int = 0) -> tuple[Split, ev.EvalResult, LoadedModel]:
    """The full result with per-query ranked lists (top ``k`` gallery rows and their status)."""
    loaded = load(project, checkpoint_ref)
    split = split_of(project, dataset)
    groups = None
    if centralize:
        from idstudio.core.centralize import check_k

        check_k(int(centralize), len(split.gallery))
        groups = tracklet_groups(project, split)
    qf, gf = dataset_features(project, loaded, split, flip=flip, ctx=ctx)
    return split, _metrics(split, qf, gf, rerank=rerank, keep_top=k, centralize=int(centralize or 0),
                           groups=groups), loaded


def evaluations(project: Project, dataset: str | int | None = None) -> list[dict[str, Any]]:
    rows = project.query("SELECT e.*, d.name AS dataset FROM evaluations e JOIN datasets d ON d.id = e.dataset_id "
                         "ORDER BY e.id")
    out = [dict(r, metrics=json.loads(r["metrics"])) for r in rows]
    if dataset is not None:
        out = [r for r in out if str(dataset) in (r["dataset"], str(r["dataset_id"]))]
    return out


# ---- indexes and search ----------------------------------------------------------------------

def _gallery_scope(project: Project, dataset: str | int | None) -> tuple[str, InstanceTable, Split | None]:
    """The searched set: a dataset's gallery, or every video instance when the project has no dataset."""
    if dataset is None and not project.datasets():
        table = project.instance_table()
        if not len(table):
            raise UserError("This project has no instances to search; import a video or a dataset first.")
        return "videos", table, None
    split = split_of(project, dataset)
    return f"gallery-{split.dataset['id']}-{split.dataset['name']}", split.gallery, split


def get_index(project: Project, loaded: LoadedModel, dataset: str | int | None = None, kind: str = "auto",
              rebuild: bool = False, ctx: JobContext | None = None) -> tuple[vindex.VectorIndex, InstanceTable, Split | None]:
    """The saved index for (checkpoint, dataset), built (or extended with new instances) as needed.

    An index on disk built with another checkpoint is rebuilt, with a log line saying so."""
    ctx = ctx or JobContext()
    name, table, split = _gallery_scope(project, dataset)
    path = core_embed.cache_folder(project, loaded.cache_key) / f"{name}.{kind}.faiss"
    feats = core_embed.cached_embeddings(project, loaded.model, loaded.cache_key, name, table.id, ctx=ctx)
    index = None
    if path.exists() and not rebuild:
        try:
            index = vindex.VectorIndex.load(path, expected_key=loaded.cache_key)
        except UserError as exc:
            ctx.log(f"{exc} Rebuilding it.")
            index = None
    if index is not None:
        new = np.nonzero(~np.isin(table.id, index.ids))[0]
        if len(index) + len(new) != len(table) or not np.isin(index.ids, table.id).all():
            ctx.log("Instances were removed since the index was built; rebuilding it.")
            index = None
        elif len(new):
            index.add(np.asarray(feats[new], np.float32), table.id[new])
            index.save(path)
    if index is None:
        index = vindex.build_index(np.asarray(feats, np.float32), table.id, loaded.cache_key, name, kind=kind,
                                   log=ctx.log)
        index.save(path)
    return index, table, split


def _read_image(path: Path) -> np.ndarray:
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"The image {path} does not exist; give the path of a JPEG or PNG file.")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise UserError(f"{path} is not an image OpenCV can read; give a JPEG or PNG crop of a person.")
    return img


def embed_image_files(model: nn.Module, paths: Sequence[Path], flip: bool = False) -> np.ndarray:
    """Embed image files on the fly (not stored in the project)."""
    import cv2

    from idstudio.core.data import decode_crops_uint8

    jpegs = [cv2.imencode(".png", _read_image(p))[1].tobytes() for p in paths]
    images = decode_crops_uint8(jpegs, model.spec)
    with torch.inference_mode():
        x = images.float().div(255.0)
        out = model(x)
        if flip:
            out = nn.functional.normalize(out + model(x.flip(3)), dim=1)
    return out.float().numpy()


def search(project: Project, checkpoint: str | Path | None = None, instances: Sequence[int] | None = None,
           image: Path | Sequence[Path] | None = None, k: int = 10, dataset: str | int | None = None,
           kind: str = "auto", ctx: JobContext | None = None) -> list[dict[str, Any]]:
    """Top-k gallery hits for each query instance or image file.

    Each result: ``{"query": {...}, "hits": [{"rank", "instance_id", "score", "identity", "camera",
    "status"}]}``; ``status`` is right / wrong / ignored under the Market protocol where the
    query's identity is known, else None. A query instance never matches itself."""
    if (instances is None or not len(instances)) and image is None:
        raise UserError("Give a query: an instance id (--instance) or an image file (--image).")
    loaded = load(project, checkpoint)
    index, table, _ = get_index(project, loaded, dataset, kind=kind, ctx=ctx)
    queries: list[dict[str, Any]] = []
    vectors = []
    if instances is not None and len(instances):
        qtable = project.instance_table(instance_ids=list(instances))
        vectors.append(core_embed.embed_instances(project, loaded.model, qtable.id))
        for i in range(len(qtable)):
            ident = int(qtable.identity[i])
            queries.append({"instance_id": int(qtable.id[i]), "identity": ident if ident >= 0 else None,
                            "camera": qtable.camera[i]})
    if image is not None:
        paths = [Path(image)] if isinstance(image, (str, Path)) else [Path(p) for p in image]
        vectors.append(embed_image_files(loaded.model, paths))
        queries.extend({"image": str(p), "identity": None, "camera": None} for p in paths)
    qf = np.concatenate(vectors).astype(np.float32)
    scores, ids = index.search(qf, k + 1)
    row_of = {int(v): r for r, v in enumerate(table.id.tolist())}
    out = []
    for q, srow, irow in zip(queries, scores, ids):
        keep = [(s, i) for s, i in zip(srow.tolist(), irow.tolist()) if i >= 0 and i != q.get("instance_id")][:k]
        rows = np.array([row_of[i] for _, i in keep], dtype=np.int64)
        status = None
        if q["identity"] is not None and len(rows):
            status = ev.hit_status(q["identity"], q["camera"], table.identity[rows], [table.camera[r] for r in rows])
        hits = []
        for rank, ((s, i), r) in enumerate(zip(keep, rows), start=1):
            ident = int(table.identity[r])
            hits.append({"rank": rank, "instance_id": int(i), "score": float(s),
                         "identity": ident if ident >= 0 or table.video_id[r] < 0 else None,
                         "camera": table.camera[r],
                         "status": None if status is None else ev.STATUS_NAMES[int(status[rank - 1])]})
        out.append({"query": q, "hits": hits})
    return out


def embed(project: Project, checkpoint: str | Path | None = None, dataset: str | int | None = None,
          flip: bool = False, index: bool = False, kind: str = "auto", rebuild: bool = False,
          ctx: JobContext | None = None) -> dict[str, Any]:
    """Embed a dataset's query+gallery (or every video instance) into the cache; optionally index it."""
    ctx = ctx or JobContext()
    loaded = load(project, checkpoint)
    t0 = time.perf_counter()
    if dataset is None and not project.datasets():
        name, table = "videos", project.instance_table()
        ids = table.id
    else:
        split = split_of(project, dataset)
        name = f"dataset-{split.dataset['id']}-{split.dataset['name']}"
        ids = np.concatenate([split.query.id, split.gallery.id])
    feats = core_embed.cached_embeddings(project, loaded.model, loaded.cache_key, name, ids, flip=flip, ctx=ctx,
                                         refresh=rebuild)
    out: dict[str, Any] = {"checkpoint": loaded.ref_key, "scope": name, "n": int(len(ids)), "dim": int(feats.shape[1]),
                           "seconds": round(time.perf_counter() - t0, 2),
                           "path": str(core_embed.cache_paths(project, loaded.cache_key, name, flip)[0])}
    if index:
        idx, _, _ = get_index(project, loaded, dataset, kind=kind, rebuild=rebuild, ctx=ctx)
        out.update(index_kind=idx.kind, index_size=len(idx), index_recall=idx.params.get("recall"))
    return out

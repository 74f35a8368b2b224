"""The mining job (ISR): ``mine(project_root, config, ctx)``, one round of pairs with a model,
and the rounds the trainer mines.

A round is embedded (``services.embedding``; shards by rank under ``torchrun``), matched by
``core.mining`` and stored with its parameters and checkpoint (``store_round``, rank 0 only);
``services.rounds`` reads a stored round back and lays the human decisions over it, and
``export_pairs`` writes it as CSV. Mining from ``init`` embeds with the start training would
use on the project (``services.recipe.mine_start``), so its pairs are the first round's.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from idstudio.core.config import field
from idstudio.core import crop_cache
from idstudio.core.data import CropStore
from idstudio.core.errors import UserError
from idstudio.core.failures import user_error
from idstudio.core.jobs import JobContext
from idstudio.core.mining import MiningParams, MiningResult, mine as mine_pairs
from idstudio.core.model import EmbeddingModel, archs, build_model
from idstudio.core.store import Project, to_json
from idstudio.services.embedding import embed_sharded, pick_device, rank_and_world
from idstudio.services.instances import training_instances
from idstudio.services.recipe import mine_start
from idstudio.services.train_config import MiningFields


# ---- config -----------------------------------------------------------------------------------
@dataclass
class MineConfig(MiningFields):
    GROUPS: ClassVar[tuple[str, ...]] = ("Model", "Mining", "Hardware")

    checkpoint: str = field("", help="model to embed with: a run id, a .pt file, 'init', or empty for the latest run", group="Model",
                            special=("", "latest run"))
    # The init model is the start `idstudio train` would use on this project (services.recipe.mine_start):
    # fields left on auto take the training's resolved start, so mining from init embeds as training's first round.
    arch: str = field("auto", help="architecture of the init model (auto: the one training would start from)",
                      choices=["auto", *archs()], group="Model")
    height: int = field(0, help="crop height of the init model (0: auto, as training)", group="Model", special=(0, "auto"))
    width: int = field(0, help="crop width of the init model (0: auto, as training)", group="Model", special=(0, "auto"))
    dim: int = field(0, help="embedding size of the init model's learned part (0: auto, as training)", group="Model",
                     special=(0, "auto"))
    weights: str = field("auto", help="start of the init model: auto (as training: offline ImageNet weights, else random), "
                         "imagenet, none or a .pth file", group="Model")
    batch_size: int = field(128, help="images per embedding batch", group="Hardware")
    device: str = field("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps", group="Hardware")


def mining_params(cfg: MiningFields, gate: bool) -> MiningParams:
    return MiningParams(gaps=[int(g) for g in cfg.gaps], min_similarity=cfg.min_similarity,
                        min_reliability=cfg.min_reliability, reliability_rule=cfg.reliability_rule,
                        spatial_gate=gate, gate_shift=cfg.gate_shift, gate_scale=cfg.gate_scale,
                        component_min_reliability=cfg.component_min_reliability,
                        component_window=cfg.component_window)


# ---- rounds -------------------------------------------------------------------------------------
def _open(project_root: Path | Project) -> Project:
    return project_root if isinstance(project_root, Project) else Project.open(project_root)


def store_round(project: Project, result: MiningResult, params: dict[str, Any], checkpoint: str,
                run_id: str | None = None) -> int:
    """One mining round and its pairs, in one transaction."""
    stats = result.stats
    with project.transaction():
        cursor = project.conn.execute(
            "INSERT INTO mining_rounds (run_id, checkpoint, params, n_pairs, precision, recall, largest_component_share, stats, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, checkpoint, to_json(params), len(result), stats.get("precision"), stats.get("recall"),
             stats.get("largest_component_share"), to_json(stats), time.time()))
        round_id = int(cursor.lastrowid)
        for s0 in range(0, len(result), 65536):  # chunks: never a Python object per pair for a whole round
            sl = slice(s0, s0 + 65536)
            project.conn.executemany(
                "INSERT INTO pairs (round_id, a, b, gap, similarity, reliability, component) VALUES (?, ?, ?, ?, ?, ?, ?)",
                zip([round_id] * len(result.a[sl]), result.a[sl].tolist(), result.b[sl].tolist(), result.gap[sl].tolist(),
                    result.similarity[sl].astype(float).tolist(), result.reliability[sl].astype(float).tolist(),
                    result.component[sl].tolist()))
    return round_id


def review_decisions(project: Project) -> dict[tuple[int, int], str]:
    try:
        from idstudio.services.review import current_decisions
    except ImportError:
        return {}
    try:
        return current_decisions(project)
    except Exception:  # noqa: BLE001 - a review store problem must not stop mining
        return {}


# ---- mining job ---------------------------------------------------------------------------------
def gate_on(setting: str, trained: bool) -> bool:
    return setting == "on" or (setting == "auto" and not trained)


def run_mining(project: Project, model: EmbeddingModel, crops: CropStore, table, cfg: Any, gate: bool,
               checkpoint: str, device: torch.device, run_id: str | None = None, ctx: JobContext | None = None,
               batch_size: int = 128, store: bool = True,
               keep_embeddings: bool = False) -> tuple[int | None, MiningResult, dict[str, float]]:
    """One round; ``keep_embeddings``: the result carries them (float16) for a link round."""
    t0 = time.perf_counter()
    timer: dict[str, float] = {}
    # The round's embeddings go to a float16 file, read back video by video by the matcher:
    # memory holds a batch and one video, never the round.
    from idstudio.core.embed import RowFile

    folder = project.cache_dir / "rounds"
    folder.mkdir(exist_ok=True)
    path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"
    try:
        emb = RowFile(path, len(crops.ids), model.spec.dim)
    except OSError as exc:  # a full or read-only disk: one sentence, nothing stored yet
        path.unlink(missing_ok=True)
        raise (user_error(exc, project.root) or exc) from None
    try:
        emb, fwd = embed_sharded(model, crops, device, batch_size, ctx, timer, out=emb)
        t1 = time.perf_counter()
        params = mining_params(cfg, gate)
        result = mine_pairs(table.id, table.video_id, table.frame, table.boxes, emb, params, identity=table.identity,
                            tracklet=table.tracklet)
        if keep_embeddings:
            result.embeddings = emb[np.arange(len(emb))]
    finally:
        emb.close()
        path.unlink(missing_ok=True)
    t2 = time.perf_counter()
    result.stats.update({"gate": gate, "seconds_embed": t1 - t0, "seconds_forward": fwd, "seconds_match": t2 - t1})
    round_id = None
    if store and rank_and_world()[0] == 0:
        round_id = store_round(project, result, params.to_dict(), checkpoint, run_id)
    timing = {"embed": t1 - t0, "forward": fwd, "match": t2 - t1, "store": time.perf_counter() - t2,
              "forward_cpu": timer.get("forward_cpu", 0.0)}
    return round_id, result, timing


def mine(project_root: Path | Project, config: MineConfig | None = None, ctx: JobContext | None = None) -> dict[str, Any]:
    """One mining round with the given model; stored with its parameters and checkpoint."""
    from idstudio.services.models import load_model, resolve_checkpoint

    cfg = config or MineConfig()
    ctx = ctx or JobContext()
    project = _open(project_root)
    table = training_instances(project)
    device = pick_device(cfg.device)
    ref = resolve_checkpoint(project, cfg.checkpoint or None)
    if ref.path is None:  # the start training would use (services.recipe): its first round mines the same pairs
        spec, weights, start = mine_start(project, cfg)
        model, message = build_model(spec, weights=weights, seed=start.config.seed)
        if start.log:
            ctx.log(start.log)
        trained = False  # ImageNet features are not identity features: the gate stays on (auto)
        imagenet = message.startswith("Start: ImageNet")
        key = f"init:{weights}" if weights not in ("auto", "none") else ("init:imagenet" if imagenet else "init")
    else:
        model, _ = load_model(project, ref)
        message, trained, key = f"Model: {ref.key}.", True, ref.key
    ctx.log(message)
    model.to(device).eval()
    t0 = time.perf_counter()
    ctx.progress(0, len(table), "decoding crops")
    crops = crop_cache.crop_store(project, table.id, model.spec)
    decode_s = time.perf_counter() - t0
    gate = gate_on(cfg.spatial_gate, trained)
    round_id, result, timing = run_mining(project, model, crops, table, cfg, gate, key, device, ctx=ctx,
                                          batch_size=cfg.batch_size)
    if len(result) == 0:
        ctx.log("No pairs were mined.")
    s = result.stats
    out = {"round_id": round_id, "n_pairs": len(result), "precision": s.get("precision"), "recall": s.get("recall"),
           "largest_component_share": s.get("largest_component_share"), "n_components": s.get("n_components"),
           "gate": gate, "checkpoint": key, "instances": len(table),
           "seconds": round(decode_s + timing["embed"] + timing["match"] + timing["store"], 2), "seconds_decode": round(decode_s, 3),
           "seconds_forward": round(timing["forward"], 3), "seconds_match": round(timing["match"], 3),
           "seconds_store": round(timing["store"], 3)}
    for name in ("precision", "recall", "largest_component_share"):
        if out[name] is not None:
            ctx.metric(f"mine/{name}", round_id or 0, out[name])
    return out


def export_pairs(project_root: Path | Project, out: Path, round_id: int | None = None) -> dict[str, Any]:
    """CSV of the latest (or given) round: both instances' video, frame and box, similarity,
    reliability, component and the current review decision."""
    import csv

    project = _open(project_root)
    if round_id is None:
        round_id = project.scalar("SELECT MAX(id) FROM mining_rounds")
    if round_id is None:
        raise UserError("This project has no mining round yet; run `idstudio mine PROJECT` first.")
    rows = project.query(
        """SELECT p.id, p.a, p.b, p.gap, p.similarity, p.reliability, p.component,
                  va.name AS video, ia.frame AS frame_a, ia.x AS xa, ia.y AS ya, ia.w AS wa, ia.h AS ha,
                  ib.frame AS frame_b, ib.x AS xb, ib.y AS yb, ib.w AS wb, ib.h AS hb
           FROM pairs p JOIN instances ia ON ia.id = p.a JOIN instances ib ON ib.id = p.b
           LEFT JOIN videos va ON va.id = ia.video_id WHERE p.round_id = ? ORDER BY p.id""", (round_id,))
    decisions = review_decisions(project)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["pair_id", "round_id", "video", "a", "frame_a", "x_a", "y_a", "w_a", "h_a",
                    "b", "frame_b", "x_b", "y_b", "w_b", "h_b", "gap", "similarity", "reliability", "component", "review"])
        for r in rows:
            key = (min(r["a"], r["b"]), max(r["a"], r["b"]))
            w.writerow([r["id"], round_id, r["video"], r["a"], r["frame_a"], r["xa"], r["ya"], r["wa"], r["ha"],
                        r["b"], r["frame_b"], r["xb"], r["yb"], r["wb"], r["hb"], r["gap"],
                        f"{r['similarity']:.6f}", f"{r['reliability']:.6f}", r["component"], decisions.get(key, "")])
    os.replace(tmp, out)
    return {"round_id": int(round_id), "pairs": len(rows), "out": str(out)}

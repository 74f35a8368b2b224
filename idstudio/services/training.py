"""The training job (ISR): ``train(project_root, config, ctx)`` and ``resume``, and the
``Trainer`` with its hooks. The ``auto`` settings and the recipe are resolved by
``services.recipe`` (the one resolution the Train view and ``train --dry-run`` show).

A plain job function shared by the GUI (worker thread) and the CLI; it also runs unchanged
under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU). Under DDP every rank embeds its shard of
the instances, the shards are gathered, every rank mines the same pairs (matching is cheap
and deterministic; ``services.mining``) and trains on its share of the batches; rank 0 alone
writes to the project (rounds, pairs, checkpoints, metrics, evaluation).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idstudio.core import config as cfgmod
from idstudio.core import runs as runbook
from idstudio.core import crop_cache
from idstudio.core.data import (CropPairs, EpochBatches, background_donors, background_mix,
                                train_transform)
from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.jobs import JobContext
from idstudio.core import embed as core_embed
from idstudio.core.colour import DIM as COLOUR_DIM
from idstudio.core.links import LINKS_PER_DIRECTION, LinkResult, camera_directions, link_tracklets
from idstudio.core.mining import MiningResult
from idstudio.core.model import EmbeddingModel, build_model, load_checkpoint, save_checkpoint
from idstudio.core.sampling import linked_per_batch, make_sampler
from idstudio.core.store import Project, to_json
from idstudio.services.embedding import pick_device, rank_and_world, world_size
from idstudio.services.evaluation import dataset_evaluator, eval_summary
from idstudio.services.instances import training_instances
from idstudio.services.mining import gate_on, review_decisions, run_mining
from idstudio.services.recipe import (augmentation, colour_cast_on, links_on, links_reason, other_video_negatives,
                                     resolve_train)
from idstudio.services.rounds import apply_reviews, round_pairs
from idstudio.services.train_config import TrainConfig


def _open(project_root: Path | Project) -> Project:
    return project_root if isinstance(project_root, Project) else Project.open(project_root)


# ---- training ---------------------------------------------------------------------------------
def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return f


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.random.get_rng_state(), "numpy": json.dumps(_np_state()),
            "python": json.dumps(_py_state())}


def _np_state():
    st = np.random.get_state()
    return [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]


def _py_state():
    v, state, g = random.getstate()
    return [v, list(state), g]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    st = json.loads(state["numpy"])
    np.random.set_state((st[0], np.array(st[1], dtype=np.uint32), st[2], st[3], st[4]))
    v, s, g = json.loads(state["python"])
    random.setstate((v, tuple(s), g))


def log_eval(ctx: JobContext, step: int, figures: dict[str, Any]) -> None:
    for k, v in figures.items():
        if k != "datasets":
            ctx.metric(f"eval/{k}", step, v)
    for name, m in figures.get("datasets", {}).items():
        for k in ("mAP", "rank1"):
            ctx.metric(f"eval/{name}/{k}", step, m[k])


def link_after_mining(project: Project, table, result: MiningResult, mining_round: int, cfg: TrainConfig,
                      run_id: str, epoch: int, history: dict[str, Any], ctx: JobContext) -> tuple[int, LinkResult]:
    """A link round over the tracklets of the round just mined, with its embeddings; the
    kept share grows with each round of the run (``link_keep_step``). Returns the round's
    id and result."""
    from idstudio.services.links import link_round

    params = cfg.link_params(len(history["link_rounds"]), colour_part=cfg.colour == "on")
    rid, links = link_round(project, table, result.embeddings, mining_round, params, f"runs/{run_id}@epoch{epoch}", run_id)
    s = links.stats
    entry = {"epoch": epoch, "round_id": rid, "n_links": s["n_links"], "keep": params.keep,
             "precision": s.get("precision"), "recall": s.get("recall")}
    history["link_rounds"].append(entry)
    for name in ("precision", "recall", "n_links"):
        if entry[name] is not None:
            ctx.metric(f"link/{name}", epoch, float(entry[name]))
    quality = "".join(f", {name} {entry[name]:.3f}" for name in ("precision", "recall") if entry[name] is not None)
    ctx.log(f"Link round {rid} (epoch {epoch}): kept {s['n_links']} of {s['n_candidates']} candidate links "
            f"(share {params.keep:.2f}){quality}.")
    return rid, links


def link_camera_directions(project: Project, table, model, links: LinkResult, link_round_id: int,
                           k: int) -> tuple[np.ndarray, int] | None:
    """(the embedding's camera directions, how many links gave them) from the links that
    training takes from round ``link_round_id`` (its kept links less those a person
    rejected, and every accepted pair), each side the whole tracklet of that round that
    holds it (``core.links.camera_directions``). Embedded by ``model`` with no directions
    taken out, since each round's directions replace the last (the model is left without
    any: the caller sets the new ones). None where too few links."""
    from idstudio.services.links import training_links

    tracklet_of = {int(r): t for t, rows in enumerate(links.members) for r in rows}

    def side(row: int) -> np.ndarray:
        return links.members[tracklet_of[row]] if row in tracklet_of else np.array([row], np.int64)

    pairs = [(side(int(ra)), side(int(rb))) for ra, rb, _ in training_links(project, table, link_round_id)]
    if len(pairs) < LINKS_PER_DIRECTION:
        return None
    rows = np.unique(np.concatenate([np.concatenate(p) for p in pairs]))
    model.set_camera_directions(np.zeros((0, model.spec.dim), np.float32))
    emb = core_embed.embed_instances(project, model, table.id[rows])
    local = [(np.searchsorted(rows, a), np.searchsorted(rows, b)) for a, b in pairs]
    parts = (model.spec.dim - COLOUR_DIM, COLOUR_DIM) if model.spec.colour > 0 else (model.spec.dim,)
    directions = camera_directions(emb, local, parts, k)
    return (directions, len(pairs)) if len(directions) else None


def _saved_resolution(run_dir: Path) -> dict[str, Any]:
    """The recipe and auto values a run recorded at its start (kept across resumes)."""
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: saved[k] for k in ("recipe", "auto") if k in saved}


def saved_start(run_dir: Path) -> str:
    """The start a run recorded in its config.json (kept across resumes)."""
    try:
        return str(json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("start", ""))
    except (OSError, ValueError):
        return ""


def _describe_map(figures: dict[str, Any]) -> str:
    text = f"{figures['mAP']:.3f}"
    if "datasets" in figures:
        text += " (mean; " + ", ".join(f"{n} {m['mAP']:.3f}" for n, m in figures["datasets"].items()) + ")"
    return text


def _per_dataset_summary(start: dict[str, Any], end: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """{dataset: {mAP_start, mAP_end, rank1_start, rank1_end}} for ``train --json``."""
    def figures(m: dict[str, Any], name: str) -> dict[str, Any]:
        return m.get("datasets", {}).get(name) or (m if len(names) == 1 else {})
    return {name: {"mAP_start": figures(start, name).get("mAP"), "mAP_end": figures(end, name).get("mAP"),
                   "rank1_start": figures(start, name).get("rank1"), "rank1_end": figures(end, name).get("rank1")}
            for name in names}


CAST_CROPS_PER_CAMERA = 1000


def site_colour_casts(project: Project, table, crops, seed: int) -> tuple[np.ndarray, int] | None:
    """(the cast directions, how many cameras gave them) from up to ``CAST_CROPS_PER_CAMERA``
    crops of each camera at a site of two or more, or None where there is none."""
    from idstudio.core.colour import cast_directions, colour_descriptor
    from idstudio.services.instances import row_sites

    site = row_sites(project, table)
    rng = np.random.default_rng([seed, 11])
    rows = []
    for s in np.unique(site[site >= 0]):
        if len(np.unique(table.video_id[site == s])) < 2:
            continue
        for v in np.unique(table.video_id[site == s]):
            mine = np.flatnonzero((site == s) & (table.video_id == v))
            rows.append(np.sort(rng.permutation(mine)[:CAST_CROPS_PER_CAMERA]))
    if not rows:
        return None
    rows = np.concatenate(rows)
    descriptors = np.concatenate([colour_descriptor(crops.get(rows[i:i + 512]).float() / 255).numpy()
                                  for i in range(0, len(rows), 512)])
    directions = cast_directions(descriptors, table.video_id[rows], site[rows])
    return (directions, len(np.unique(table.video_id[rows]))) if len(directions) else None


class _Run:
    """The run's folder, DB row and checkpoints (rank 0 writes)."""

    def __init__(self, project: Project, run_id: str, writer: bool):
        self.project = project
        self.id = run_id
        self.dir = project.runs_dir / run_id
        self.writer = writer

    def set(self, **fields: Any) -> None:
        if not self.writer:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.project.transaction():
            self.project.conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), self.id))

    def checkpoint(self, name: str, model, epoch: int, metrics: dict[str, Any], **extra: Any) -> None:
        if not self.writer:
            return
        if name == "last":  # a resume from here drops the events written after it
            extra["metrics_bytes"] = _file_size(self.dir / "metrics.jsonl")
        path = save_checkpoint(self.dir / f"{name}.pt", model, epoch=epoch, metrics=metrics, **extra)
        rel = str(path.relative_to(self.project.root))
        with self.project.transaction():
            self.project.conn.execute(
                "INSERT INTO checkpoints (run_id, name, path, epoch, metrics, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(run_id, name) DO UPDATE SET path=excluded.path, epoch=excluded.epoch,"
                " metrics=excluded.metrics, created_at=excluded.created_at",
                (self.id, name, rel, epoch, to_json(metrics), time.time()))


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _broadcast(value: Any) -> Any:
    rank, world = rank_and_world()
    if world == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _init_distributed(device: torch.device) -> bool:
    if world_size() <= 1 or torch.distributed.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend)
    return True


def train(project_root: Path | Project, config: TrainConfig | None = None, ctx: JobContext | None = None,
          resume: str | None = None, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train an embedding from the project's videos (ISR). See the module docstring.

    ``resume``: continue that run with its saved settings; ``changes`` (field -> value) are
    the only ones that change, each logged. Without ``changes``, the fields of ``config``
    that differ from the defaults count as given."""
    ctx = ctx or JobContext()
    project = _open(project_root)
    change_lines: list[str] = []
    if resume:
        given = changes if changes is not None else (runbook.given_fields(config) if config is not None else {})
        cfg, change_lines = _resume_config(project, resume, given)
    else:
        cfg = config or TrainConfig()
    device = pick_device(cfg.device)
    started_dist = _init_distributed(device)
    rank, world = rank_and_world()
    locks: list[runbook.RunLock] = []  # the run's lock, held by rank 0 while it trains
    try:
        if resume and rank == 0:
            locks.append(runbook.RunLock(project.runs_dir / resume, resume).acquire())
        return _train(project, cfg, ctx, resume, device, rank, world, change_lines, locks)
    finally:
        for lock in locks:
            lock.release()
        if started_dist:
            torch.distributed.destroy_process_group()


def resume(project_root: Path | Project, run_id: str, ctx: JobContext | None = None,
           changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue a stopped, interrupted or finished run exactly as it was configured."""
    return train(project_root, None, ctx, resume=run_id, changes=changes or {})


def _resume_config(project: Project, run_id: str, given: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    run_dir = project.runs_dir / run_id
    if not (run_dir / "last.pt").is_file():
        raise UserError(f"Run {run_id} has no last.pt to resume from; start a new run instead.")
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"The config.json of run {run_id} is missing or damaged, so the run cannot be continued as it "
                        f"was configured; start a new run instead.") from None
    return runbook.resume_config(TrainConfig, saved, given, run_id)


def _train(project: Project, cfg: TrainConfig, ctx: JobContext, resume: str | None, device: torch.device,
           rank: int, world: int, change_lines: list[str] = (), locks: list | None = None) -> dict[str, Any]:
    writer = rank == 0
    table = training_instances(project)
    t_start = time.perf_counter()
    payload: dict[str, Any] | None = None
    colour_why = ""
    resolution: dict[str, Any] = {}
    if resume:
        run_dir = project.runs_dir / resume  # cfg: the saved config with the given changes (train())
        model, payload = load_checkpoint(run_dir / "last.pt", device="cpu", spec=cfg.spec())
        run_id = resume
        message = f"Resuming run {run_id} from epoch {payload['epoch']} step {payload.get('step', 0)}."
        start = saved_start(run_dir)
        resolution = _saved_resolution(run_dir)
    else:
        # services.recipe: the one resolution of the auto fields, shown by the Train view and `train --dry-run`
        if cfg.init:
            resolved = resolve_train(project, cfg, device=device)
            cfg, (model, ref) = resolved.config, resolved.start_model
            resolution = resolved.record()
            if (model.spec.arch, model.spec.dim) != (cfg.arch, cfg.spec().dim):
                raise UserError(f"Checkpoint {ref.key} is a {model.spec.arch} (dim {model.spec.dim}) but this run asks for "
                                f"{cfg.arch} (dim {cfg.dim}); set --arch/--dim to match or choose another checkpoint.")
            message = f"Start: checkpoint {ref.key}."
        else:
            if writer:
                resolved = resolve_train(project, cfg, device=device)
                cfg, colour_why, resolution = resolved.config, resolved.log, resolved.record()
            cfg = _broadcast(cfg)
            model, message = build_model(cfg.spec(), weights=cfg.weights, seed=cfg.seed)
        start = message
        runbook.seed_everything(cfg.seed + rank)  # a seeded CPU run repeats; a resume restores the state instead
        run_id = _broadcast(time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6] if writer else None)
    run = _Run(project, run_id, writer)
    if writer:
        run.dir.mkdir(parents=True, exist_ok=True)
        if not resume:  # released by train(); a resume took it there already
            (locks if locks is not None else []).append(runbook.RunLock(run.dir, run_id).acquire())
        runbook.remove_temporary_files(run.dir)
        runbook.atomic_write_text(run.dir / "config.json", json.dumps({**cfgmod.to_dict(cfg), "start": start, **resolution}, indent=2) + "\n")
        if resume:
            runbook.truncate_metrics(run.dir / "metrics.jsonl", payload.get("metrics_bytes"))
        ctx.attach_metrics_file(run.dir / "metrics.jsonl")
        if resume:
            run.set(status="running", error=None, finished_at=None, config=to_json(cfgmod.to_dict(cfg)))
            for line in change_lines:
                ctx.log(f"Resume changes {line} (saved in config.json).")
        else:
            with project.transaction():
                project.conn.execute("INSERT INTO runs (id, kind, status, config, device, created_at) VALUES (?, 'train', 'running', ?, ?, ?)",
                                     (run_id, to_json(cfgmod.to_dict(cfg)), f"{device}" + (f" x{world}" if world > 1 else ""), time.time()))
    ctx.log(message)
    ctx.log(f"Run {run_id} on {device}" + (f" ({world} processes)" if world > 1 else "") + ".")
    if colour_why:
        ctx.log(colour_why)
    # ImageNet features are not identity features: the first round keeps the spatial gate.
    trained_start = message.startswith("Start: checkpoint") or resume is not None
    try:
        # ImageNet features standardised per camera already link tracklets better than chance
        # (core.links.camera_standardised); a random start's would be noise.
        link_from_start = trained_start or message.startswith("Start: ImageNet")
        trainer = Trainer(project, cfg, ctx, run, model, payload, table, device, rank, world, trained_start, t_start,
                          link_from_start)
        return trainer.train(default_hooks())
    except JobCancelled:
        if writer:
            for name in ("last.pt", "best.pt"):
                (run.dir / name).unlink(missing_ok=True)
            with project.transaction():
                project.conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
            run.set(status="cancelled", finished_at=time.time())
        raise
    except torch.cuda.OutOfMemoryError:
        if writer:
            run.set(status="failed", error="out of GPU memory", finished_at=time.time())
        link_share = cfg.link_share if cfg.sampler == "tracklet" and links_on(project, cfg) else 0.0
        raise UserError(out_of_memory_sentence(model, cfg, device, run_id, link_share)) from None
    except BaseException as exc:
        if writer:
            run.set(status="failed", error=str(exc)[:500] or type(exc).__name__, finished_at=time.time())
        raise


def out_of_memory_sentence(model: EmbeddingModel, cfg: TrainConfig, device: torch.device, run_id: str,
                           link_share: float = 0.0) -> str:
    """What to do after a run ran out of GPU memory: the largest batch that fits, found by trying
    (with the ``link_share`` of linked pairs that each batch takes on top)."""
    from idstudio.core.fit import batch_fits, largest_fitting

    if device.type == "cuda":
        torch.cuda.empty_cache()
    use_amp = bool(cfg.amp) and device.type == "cuda"
    try:
        model.train()
        fits = batch_fits(model, cfg.height, cfg.width, device, use_amp)
        best = largest_fitting(lambda n: fits(n + linked_per_batch(link_share, n)), cfg.batch_size)
    except RuntimeError:  # the device is in no state to try: say what is known
        best = None
    if best is None:
        return (f"Out of GPU memory at batch size {cfg.batch_size}, and not even 2 pairs fit beside what else holds "
                f"this GPU; free it (other programs) or use --device cpu, then `--resume {run_id}`.")
    return (f"Out of GPU memory at batch size {cfg.batch_size}; the largest that fits is {best} (tried on this GPU): "
            f"use --batch-size {best} and `--resume {run_id}` (its last checkpoint is kept).")


class Hook:
    """One behaviour of a training run (fast-reid's hooks): the loop calls every hook at
    these points, in the order the hooks were given. ``t`` is the ``Trainer``."""

    def before_epoch(self, t: "Trainer") -> None:
        pass

    def after_step(self, t: "Trainer") -> None:
        pass

    def after_epoch(self, t: "Trainer") -> None:
        pass


class Trainer:
    """A run's state and its loop: the epoch and step, the model, optimiser and schedule, the
    sampler of the current mining round, and the history saved with each checkpoint. What
    happens around the steps (re-mining, evaluation, checkpoints, metrics, stopping) is a hook."""

    def __init__(self, project, cfg: TrainConfig, ctx: JobContext, run: _Run, model: EmbeddingModel, payload,
                 table, device: torch.device, rank: int, world: int, trained_start: bool, t_start: float,
                 link_from_start: bool = False):
        self.project, self.cfg, self.ctx, self.run = project, cfg, ctx, run
        self.table, self.device, self.rank, self.world = table, device, rank, world
        self.writer = rank == 0
        self.trained_start = trained_start
        self.link_from_start = link_from_start
        self.t_start = t_start
        self.use_amp = bool(cfg.amp) and device.type == "cuda"
        model.to(device)
        if self.use_amp:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        note = crop_cache.ensure(project, model.spec, cfg.crop_cache, ctx) if self.writer else None
        ctx.log(_broadcast(note))  # the other ranks wait here for the cache rank 0 builds
        self.crops = crop_cache.crop_store(project, table.id, model.spec, use_cache=cfg.crop_cache != "off")
        self.evaluate, self.dataset_names = dataset_evaluator(project, cfg.dataset) if self.writer else (None, [])
        self.deadline = t_start + cfg.max_minutes * 60 if cfg.max_minutes > 0 else None
        # the position: ``epoch`` and ``start_step`` say where the next step starts
        self.epoch, self.start_step, self.step = 0, 0, 0
        self.stopped = False
        self.last_metrics: dict[str, Any] = {}
        self.history: dict[str, Any] = {"mAP_start": None, "best": None, "rounds": [], "link_rounds": []}
        # this epoch's running figures (read by the hooks)
        self.loss = torch.zeros(())
        self.loss_sum = torch.zeros(())
        self.seen = 0
        self.n_steps = 0
        self.t_epoch, self.epoch_seconds = 0.0, 1e-9
        self._prepare(payload)

    # ---- set-up ----
    def _prepare(self, payload) -> None:
        cfg, ctx, writer = self.cfg, self.ctx, self.writer
        round_id = None
        if payload is not None:
            self.epoch, self.start_step = int(payload["epoch"]), int(payload.get("step", 0))
            self.history = json.loads(payload["history"])
            self.history.setdefault("link_rounds", [])
            round_id = self.history["rounds"][-1]["round_id"] if self.history["rounds"] else None
        else:
            # an --init checkpoint's camera directions are another run's: this run's link rounds give its own
            self.model.set_camera_directions(np.zeros((0, self.model.spec.dim), np.float32))
            self.take_out_colour_cast()
        if payload is None and writer:
            metrics0 = self.do_eval()
            self.history["mAP_start"] = metrics0.get("mAP")
            self.history["start"] = metrics0
            log_eval(ctx, 0, metrics0)
            if metrics0:
                ctx.log(f"Before training: mAP {_describe_map(metrics0)}")
        self.history = _broadcast(self.history)
        self.use_links = bool(_broadcast(links_on(self.project, cfg) if writer else None))
        if payload is None and writer:
            ctx.log(f"Cross-camera links: {'on (a link round after each re-mining)' if self.use_links else 'off'}; "
                    f"{links_reason(self.project, cfg)}.")

        if round_id is None and cfg.start_round:
            round_id = int(cfg.start_round)
            row = self.project.query("SELECT n_pairs, precision, recall, largest_component_share FROM mining_rounds "
                                     "WHERE id = ?", (round_id,))
            if not row:
                raise UserError(f"There is no mining round {round_id} in this project; give the id of a stored round "
                                "(`idstudio pairs export` names them) or 0 to mine one.")
            self.history["rounds"].append({"epoch": 0, "round_id": round_id, "n_pairs": row[0]["n_pairs"], "gate": None,
                                           **{k: row[0][k] for k in ("precision", "recall", "largest_component_share")}})
            ctx.log(f"Training on stored mining round {round_id} ({row[0]['n_pairs']} pairs).")
        if round_id is None:
            result = self.remine(0, gate_on(cfg.spatial_gate, self.trained_start))
            pairs = (result.a, result.b, result.reliability.astype(np.float32), result.component)
        else:
            pairs = _broadcast(round_pairs(self.project, round_id) if writer else None)

        if cfg.freeze > 0:
            ctx.log(f"Fine-tuning: the first {self.model.freeze(cfg.freeze)} of {len(self.model.backbone)} backbone "
                    "modules are frozen.")
        if self.world > 1:
            device = self.device
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        else:
            self.ddp = self.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
        else:
            self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        decisions = _broadcast(review_decisions(self.project) if writer else {})
        if self.use_links:  # cross-video decisions are about links: training_links reads them
            from idstudio.services.links import within_video

            decisions = within_video(decisions, self.table)
        self.decisions = decisions

        self.sampler = self.build_data(pairs, self.history["rounds"][-1]["epoch"])
        self.steps_per_epoch = cfg.steps_per_epoch or self.sampler.natural_steps(cfg.batch_size * self.world)
        self.global_step = self.epoch * self.steps_per_epoch + self.start_step
        total_steps = max(1, self.steps_per_epoch * cfg.epochs)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg.warmup_steps, total_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        if payload is not None:
            self.opt.load_state_dict(payload["optimizer"])
            self.sched.load_state_dict(payload["scheduler"])
            if "scaler" in payload and self.use_amp:
                self.scaler.load_state_dict(payload["scaler"])
            _set_rng_state(payload["rng"])

        strength, mix = augmentation(cfg)
        self.augment, self.background_mix = train_transform(strength), mix
        ctx.log(f"Augmentation: camera-like changes {strength:g}, backgrounds mixed into {mix:.0%} of the crops"
                + (" (auto)." if min(cfg.augment, cfg.background_mix) < 0 else "."))
        self._make_loader()

    def _make_loader(self) -> None:
        # With the crop cache a batch is a gather (core/crop_cache.py), done a few batches ahead
        # by one thread (``batches``): no loader. Without it, one loader for the run: the batches
        # change each epoch (EpochBatches), the dataset never (CropPairs), so its worker
        # processes, and the crops they have decoded and cached, live on. Workers started each
        # epoch had cold caches and cost seconds a GPU epoch does not have.
        cfg, device = self.cfg, self.device
        self.loader = None
        if self.crops.cached:
            return
        workers = cfg.workers if cfg.workers >= 0 else (min(4, (os.cpu_count() or 2) - 1) if device.type == "cuda" else 0)
        self.order = EpochBatches()
        kw: dict[str, Any] = {}
        if workers > 0:
            import multiprocessing as mp

            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            kw = {"num_workers": workers, "multiprocessing_context": method, "persistent_workers": True,
                  "prefetch_factor": 2, "pin_memory": device.type == "cuda"}
        self.loader = torch.utils.data.DataLoader(CropPairs(self.crops), batch_sampler=self.order, **kw)

    def build_data(self, pairs_now, epoch: int = 0):
        """The sampler over a mining round's pairs, with the reviews and (where on) the links applied."""
        cfg, world, ctx = self.cfg, self.world, self.ctx
        a, b, rel, comp = pairs_now
        a, b, rel, comp, pos = apply_reviews(a, b, rel, comp.copy(), self.decisions)
        if len(a) == 0:
            raise UserError("No pairs were mined; lower --min-reliability, add frame gaps (--gaps) or import more video.")
        if len(a) < cfg.batch_size * world:
            raise UserError(f"Batch size {cfg.batch_size}{' x ' + str(world) + ' processes' if world > 1 else ''} is larger "
                            f"than the {len(a)} mined pairs; use --batch-size {max(2, len(a) // world)} or less.")
        a, b = self.crops.index_of(a), self.crops.index_of(b)
        if self.use_links:
            from idstudio.services.links import training_links

            rounds = self.history["link_rounds"]
            link_round_id = rounds[-1]["round_id"] if rounds else None
            links = _broadcast(training_links(self.project, self.table, link_round_id) if self.writer else None)
            if links:
                a, b, rel, comp, pos, used = link_tracklets(a, b, rel, comp, pos, links, self.table.video_id,
                                                            self.table.frame, np.random.default_rng([cfg.seed, epoch, 7]),
                                                            cfg.link_min_reliability, cfg.link_share)
                ctx.log(f"Training with {used} cross-video links.")
        try:
            return make_sampler(cfg.sampler, self.crops, self.table.video_id, self.table.frame, a, b,
                                rel, comp, pos, tau=cfg.tau, other_video_negatives=other_video_negatives(cfg),
                                imported=self.table.tracklet >= 0, link_share=cfg.link_share if self.use_links else 0.0)
        except ValueError:
            raise UserError("The mined pairs form no pseudo-tracklet of two or more instances; use --sampler pairs, "
                            "lower --min-reliability or import more video.") from None

    def take_out_colour_cast(self) -> None:
        """Before the first evaluation: the colour casts of the sites' cameras out of the
        colour part (``core.colour.cast_directions``), saved with the model's spec."""
        found = None
        if self.cfg.colour_cast == "off" and len(self.model.cast):  # an --init checkpoint's casts: off means whole
            self.model.set_colour_cast(np.zeros((0, self.model.cast.shape[1]), np.float32))
        if self.model.spec.colour > 0 and colour_cast_on(self.project, self.cfg):
            found = _broadcast(site_colour_casts(self.project, self.table, self.crops, self.cfg.seed)
                               if self.writer else None)
        if found is None:
            if self.cfg.colour_cast == "on":  # asked for and not done: say why
                why = "there is no colour part" if self.model.spec.colour <= 0 else "no site holds two cameras"
                self.ctx.log(f"Colour part: no colour casts taken out (--colour-cast on, but {why}).")
            return
        directions, cameras = found
        self.model.set_colour_cast(directions)
        self.ctx.log(f"Colour part: the colour casts of {cameras} cameras taken out ({len(directions)} "
                     f"direction{'s' if len(directions) != 1 else ''}, from their sites; --colour-cast off keeps them).")

    # ---- what the hooks call ----
    def do_eval(self) -> dict[str, Any]:
        if self.evaluate is None:
            return {}
        self.model.eval()
        with torch.inference_mode():
            m = self.evaluate(self.model)
        self.model.train()
        return eval_summary(m)

    def remine(self, epoch: int, gate: bool) -> MiningResult:
        """A mining round with the current model (and a link round after it, where links are on)."""
        cfg, ctx, run, history = self.cfg, self.ctx, self.run, self.history
        key = "init" if epoch == 0 and not self.trained_start else f"runs/{run.id}@epoch{epoch}"
        rid, result, timing = run_mining(self.project, self.model, self.crops, self.table, cfg, gate, key, self.device,
                                         run_id=run.id, ctx=ctx, keep_embeddings=self.use_links and self.writer)
        rid = _broadcast(rid)
        s = result.stats
        entry = {"epoch": epoch, "round_id": rid, "n_pairs": len(result), "precision": s.get("precision"),
                 "recall": s.get("recall"), "largest_component_share": s.get("largest_component_share"), "gate": gate}
        history["rounds"].append(entry)
        for name in ("precision", "recall", "largest_component_share", "n_pairs"):
            if entry[name] is not None:
                ctx.metric(f"mine/{name}", epoch, float(entry[name]))
        quality = "".join(f", {name} {entry[name]:.3f}" for name in ("precision", "recall") if entry[name] is not None)
        ctx.log(f"Mining round {rid} (epoch {epoch}): {len(result)} pairs{quality}, "
                f"largest component {entry['largest_component_share']:.3f}")
        if self.use_links and (epoch > 0 or self.link_from_start):  # a random start's links would be noise
            found = None
            if self.writer:
                link_rid, links = link_after_mining(self.project, self.table, result, rid, cfg, run.id, epoch, history, ctx)
                if cfg.link_directions > 0:
                    found = link_camera_directions(self.project, self.table, self.model, links, link_rid,
                                                   cfg.link_directions)
            history["link_rounds"] = _broadcast(history["link_rounds"])
            if cfg.link_directions > 0:
                self.take_out_camera_directions(_broadcast(found))
        return result

    def take_out_camera_directions(self, found: tuple[np.ndarray, int] | None) -> None:
        """The camera directions of the latest link round out of the embedding (none where it
        had too few links), replacing the last round's."""
        directions, n_links = found if found is not None else (np.zeros((0, self.model.spec.dim), np.float32), 0)
        self.model.set_camera_directions(directions)
        if found is None:
            self.ctx.log(f"Camera directions: none taken out (fewer than {LINKS_PER_DIRECTION} links to learn them from).")
            return
        self.ctx.log(f"Camera directions: {len(directions)} taken out of the embedding, those along which the "
                     f"{n_links} links' tracklets differ most (--link-directions 0 keeps them).")

    def state_extra(self, epoch: int, step: int) -> dict[str, Any]:
        """What a checkpoint needs, besides the model, to resume exactly."""
        extra = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "rng": _rng_state(),
                 "step": step, "history": json.dumps(self.history), "run_id": self.run.id}
        if self.use_amp:
            extra["scaler"] = self.scaler.state_dict()
        return extra

    @property
    def done_epoch(self) -> int:
        """Epochs complete: a stopped epoch is not."""
        return self.epoch if self.stopped else self.epoch + 1

    # ---- the loop ----
    def batches(self):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch])
        ds, batches = self.sampler.epoch(cfg.batch_size, self.steps_per_epoch * self.world, rng)
        batches = batches[self.rank::self.world][self.start_step:]
        self.n_steps = len(batches) + self.start_step
        if self.loader is None:  # the crop cache: gathered ahead, into pinned memory on CUDA
            pin = self.device.type == "cuda"
            steps = [(ds.a_idx[b], ds.b_idx[b], ds.weights[b], b) for b in map(np.asarray, batches)]
            return crop_cache.Prefetcher(lambda step: self.crops.pairs_batch(*step, pin=pin), steps, depth=4)
        self.order.batches = [ds.rows(b) for b in batches]
        # Its own generator: a DataLoader otherwise draws a seed from the global RNG, which
        # drives augmentation, so a run stopped mid-epoch and resumed would drift from then on.
        self.loader.generator = torch.Generator().manual_seed(int(cfg.seed) * 100_003 + self.epoch)
        return ((torch.cat([va, vb]), w, idx) for va, vb, w, idx in self.loader)

    def train_step(self, batch) -> None:
        views, w, idx = batch  # uint8 (2n, 3, H, W): the n a views, then the n b views
        if self.ctx.cancelled:
            self.ctx.check_cancelled()
        x = self.augment(views.to(self.device, non_blocking=True))  # each crop its own change
        if self.background_mix > 0:
            video = torch.from_numpy(np.tile(self.sampler.video_of(idx), 2))
            mix, donor = background_donors(video, self.background_mix)
            x = background_mix(x, mix.to(x.device), donor.to(x.device))
        if self.use_amp:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            z = self.ddp(x)
        za, zb = z[:len(w)], z[len(w):]
        loss = self.sampler.loss(za, zb, w, idx)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.global_step += 1
        self.seen += len(w)
        self.loss = loss.detach()
        self.loss_sum += self.loss.float()  # summed on the device: no wait for the GPU every step

    def train(self, hooks: list[Hook]) -> dict[str, Any]:
        self.ddp.train()
        while self.epoch < self.cfg.epochs and not self.stopped:
            for hook in hooks:
                hook.before_epoch(self)
            self.t_epoch, self.seen = time.perf_counter(), 0
            self.loss_sum = torch.zeros((), device=self.device)
            for self.step, batch in enumerate(self.batches(), start=self.start_step):
                self.train_step(batch)
                for hook in hooks:
                    hook.after_step(self)
                if self.stopped:
                    break
            self.epoch_seconds = max(time.perf_counter() - self.t_epoch, 1e-9)
            for hook in hooks:
                hook.after_epoch(self)
            self.start_step = self.step + 1 if self.stopped else 0
            if not self.stopped:
                self.epoch += 1
        if self.world > 1:
            torch.distributed.barrier()
        return self.summary()

    @property
    def images_per_s(self) -> float:
        """Crops through the model per second in this epoch so far (two a pair)."""
        return 2 * self.seen / max(self.epoch_seconds, 1e-9)

    def peak_gpu_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)

    def summary(self) -> dict[str, Any]:
        last_round = self.history["rounds"][-1] if self.history["rounds"] else {}
        m = self.last_metrics
        summary = {"run_id": self.run.id, "epochs_done": min(self.epoch, self.cfg.epochs),
                   "status": "stopped" if self.stopped else "finished", "dataset": ", ".join(self.dataset_names) or None,
                   "mAP_start": self.history.get("mAP_start"), "mAP_end": m.get("mAP") if m else None,
                   "rank1_end": m.get("rank1") if m else None,
                   "datasets": _per_dataset_summary(self.history.get("start") or {}, m, self.dataset_names),
                   "precision": last_round.get("precision"), "recall": last_round.get("recall"),
                   "largest_component_share": last_round.get("largest_component_share"),
                   "rounds": self.history["rounds"], "link_rounds": self.history["link_rounds"],
                   "seconds": round(time.perf_counter() - self.t_start, 1), "device": str(self.device),
                   "world_size": self.world, "images_per_s": round(self.images_per_s, 1),
                   "peak_gpu_mb": self.peak_gpu_mb()}
        if self.writer:
            self.run.set(status=summary["status"], summary=to_json(summary), finished_at=time.time())
        return summary


# ---- the hooks of a run, in the order they run ----
class Remine(Hook):
    """Every ``remine_every`` epochs, a new mining round with the current model, and its sampler."""

    def before_epoch(self, t: Trainer) -> None:
        every = t.cfg.remine_every
        if (every and t.epoch > 0 and t.epoch % every == 0 and t.start_step == 0
                and t.history["rounds"][-1]["epoch"] != t.epoch):  # not again on a resume after it
            result = t.remine(t.epoch, t.cfg.spatial_gate == "on")
            t.sampler = t.build_data((result.a, result.b, result.reliability.astype(np.float32), result.component),
                                     t.epoch)
            t.ddp.train()


class StepMetrics(Hook):
    """The loss and learning rate every 5 steps, and the progress bar."""

    def after_step(self, t: Trainer) -> None:
        if t.writer and (t.step % 5 == 0 or t.step == t.n_steps - 1):
            t.ctx.metric("train/loss", t.global_step, float(t.loss))
            t.ctx.metric("train/lr", t.global_step, t.sched.get_last_lr()[0])
        t.ctx.progress(t.step + 1, t.n_steps, f"epoch {t.epoch + 1}/{t.cfg.epochs}")


class StopWhenAsked(Hook):
    """Stop cleanly after this step on Stop/Ctrl-C or at the time budget (every rank agrees);
    a cancel instead raises."""

    def after_step(self, t: Trainer) -> None:
        stop_now = t.ctx.should_stop or (t.deadline is not None and time.perf_counter() > t.deadline)
        if bool(_broadcast(stop_now)):
            t.ctx.check_cancelled()
            t.stopped = True


class EpochMetrics(Hook):
    def after_epoch(self, t: Trainer) -> None:
        if t.writer:
            t.ctx.metric("train/pairs_per_s", t.epoch + 1, t.seen / t.epoch_seconds)
            t.ctx.metric("train/images_per_s", t.epoch + 1, t.images_per_s)
            if t.peak_gpu_mb() is not None:
                t.ctx.metric("train/peak_gpu_mb", t.epoch + 1, t.peak_gpu_mb())
            t.ctx.metric("train/epoch_loss", t.epoch + 1, float(t.loss_sum) / max(1, t.n_steps - t.start_step))


class Evaluate(Hook):
    """Every ``eval_every`` epochs, and at the end, on the labelled datasets."""

    def after_epoch(self, t: Trainer) -> None:
        done, every = t.done_epoch, t.cfg.eval_every
        if t.writer and ((every and done % every == 0) or t.stopped or done >= t.cfg.epochs):
            t.last_metrics = t.do_eval()
            log_eval(t.ctx, done, t.last_metrics)


class Checkpoint(Hook):
    """last.pt after every epoch (mid-epoch where stopped: it resumes from the next step), best.pt
    where the mean mAP did not fall."""

    def after_epoch(self, t: Trainer) -> None:
        if not t.writer:
            return
        epoch, step = (t.epoch, t.step + 1) if t.stopped else (t.done_epoch, 0)
        t.run.checkpoint("last", t.model, epoch, t.last_metrics, **t.state_extra(epoch, step))
        score, best = t.last_metrics.get("mAP"), t.history["best"]
        if score is None or best is None or score >= best:
            t.history["best"] = score if score is not None else best
            t.run.checkpoint("best", t.model, epoch, t.last_metrics)
        t.run.set(epochs_done=t.done_epoch)


class EpochLog(Hook):
    def after_epoch(self, t: Trainer) -> None:
        if t.writer:
            steps = max(1, t.n_steps - t.start_step)
            rate = t.seen / t.epoch_seconds
            gpu = t.peak_gpu_mb()
            t.ctx.log(f"epoch {t.done_epoch}: loss {float(t.loss_sum) / steps:.4f}, {rate:.1f} pairs/s "
                      f"({t.images_per_s:.0f} images/s)" + (f", peak GPU memory {gpu:.0f} MB" if gpu is not None else "")
                      + (f", mAP {_describe_map(t.last_metrics)}" if "mAP" in t.last_metrics else ""))


def default_hooks() -> list[Hook]:
    return [Remine(), StepMetrics(), StopWhenAsked(), EpochMetrics(), Evaluate(), Checkpoint(), EpochLog()]

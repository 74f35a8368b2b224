"""Checkpoint references shared by every command: run id, .pt file, ``init``, latest, or
a registered model's name (``services.model_registry``; also written ``model:NAME``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from idstudio.core import config as cfgmod
from idstudio.core.errors import UserError
from idstudio.core.model import EmbeddingModel, ModelSpec, build_model, load_checkpoint
from idstudio.core.store import Project
from idstudio.services import model_registry
from idstudio.services.train_config import TrainConfig


@dataclass(frozen=True)
class CheckpointRef:
    """``key``: a stable name for caches ('init', 'model:NAME' for a registered model, or the
    checkpoint path relative to the project when inside it, else absolute). ``path``: None
    for the random init. ``model``: the registered model's name, else None."""

    key: str
    path: Path | None
    model: str | None = None


INIT = CheckpointRef("init", None)


def _key(project: Project, path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(project.root.resolve()))
    except ValueError:
        return str(path)


def _run_checkpoint(project: Project, run_id: str) -> Path | None:
    folder = project.runs_dir / run_id
    for name in ("best.pt", "last.pt"):
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_checkpoint(project: Project, ref: str | Path | CheckpointRef | None = None) -> CheckpointRef:
    """A run id (its best.pt, else last.pt), a registered model's name (or ``model:NAME``),
    a .pt file, 'init', or None (latest finished run's best, else init)."""
    if isinstance(ref, CheckpointRef):
        return ref
    if ref is None or str(ref) == "":
        rows = project.query(
            "SELECT id FROM runs WHERE kind = 'train' AND status IN ('finished', 'stopped') ORDER BY created_at DESC")
        for row in rows:
            path = _run_checkpoint(project, row["id"])
            if path is not None:
                return CheckpointRef(_key(project, path), path)
        return INIT
    text = str(ref)
    if text == "init":
        return INIT
    if text.startswith(model_registry.PREFIX):
        return _registered(project, text)
    if (project.runs_dir / text).is_dir() and "/" not in text:
        path = _run_checkpoint(project, text)
        if path is None:
            raise UserError(f"Run {text} has no checkpoint yet; choose a run that finished an epoch.")
        return CheckpointRef(_key(project, path), path)
    if "/" not in text and model_registry.get(project, text) is not None:
        return _registered(project, text)
    path = Path(text)
    if not path.is_absolute() and not path.exists() and (project.root / path).exists():
        path = project.root / path
    if path.is_file():
        return CheckpointRef(_key(project, path), path)
    runs = ", ".join(r["id"] for r in project.query("SELECT id FROM runs ORDER BY created_at DESC LIMIT 5")) or "none yet"
    models = ", ".join(m["name"] for m in model_registry.list_models(project)[:5])
    raise UserError(f"{text} is neither a run id nor a registered model nor a checkpoint file nor 'init'; recent runs: "
                    f"{runs}" + (f"; models: {models}." if models else "."))


def _registered(project: Project, text: str) -> CheckpointRef:
    row = model_registry.get(project, text)
    if row is None:
        raise UserError(f"No model named {text.removeprefix(model_registry.PREFIX)!r} is registered; "
                        "see `idstudio model list`.")
    return CheckpointRef(model_registry.PREFIX + row["name"], model_registry.file_of(project, row), row["name"])


def default_spec(project: Project) -> ModelSpec:
    """The spec of the project's latest training config, else the default spec."""
    row = project.query("SELECT config FROM runs WHERE kind = 'train' ORDER BY created_at DESC LIMIT 1")
    if row:
        try:
            cfg = cfgmod.from_dict(TrainConfig, json.loads(row[0]["config"]))
            return cfg.spec(colour=cfg.colour == "on")
        except (ValueError, TypeError, UserError):
            pass
    return ModelSpec()


def load_model(project: Project, ref: str | Path | CheckpointRef | None = None, device: str = "cpu",
               spec: ModelSpec | None = None) -> tuple[EmbeddingModel, CheckpointRef]:  # or an ExternalModel
    """The model for a reference, in eval mode. ``init`` builds the deterministic random
    init (seed 0) of ``spec`` (default: the project's latest training spec). A registered
    model is checked (moved? changed?) and loaded by its card: its ``spec`` is the card."""
    resolved = resolve_checkpoint(project, ref)
    if resolved.model is not None:
        model, _ = model_registry.load(project, resolved.model, device=device)
        return model, resolved
    if resolved.path is None:
        model, _ = build_model(spec or default_spec(project), weights="none", seed=0)
        return model.to(device).eval(), resolved
    model, _ = load_checkpoint(resolved.path, device=device)
    return model.eval(), resolved

from __future__ import annotations

import json
import time

import pytest
import torch

from idstudio.core.errors import UserError
from idstudio.core.model import ModelSpec, build_model, save_checkpoint
from idstudio.core.store import Project
from idstudio.services.models import CheckpointRef, load_model, resolve_checkpoint

SPEC = ModelSpec("resnet18", dim=16, height=64, width=32)


def _run(project, run_id, status, names=("best.pt",), created=None):
    model, _ = build_model(SPEC, weights="none", seed=len(run_id))
    for name in names:
        save_checkpoint(project.runs_dir / run_id / name, model)
    with project.transaction():
        project.conn.execute("INSERT INTO runs (id, kind, status, config, created_at) VALUES (?, 'train', ?, ?, ?)",
                             (run_id, status, json.dumps({"arch": "resnet18", "dim": 16, "height": 64, "width": 32}),
                              created or time.time()))
    return model


def test_resolve_references(tmp_path):
    project = Project.create(tmp_path / "p")
    assert resolve_checkpoint(project, None) == CheckpointRef("init", None)
    assert resolve_checkpoint(project, "init").path is None
    model, ref = load_model(project, "init")
    again, _ = load_model(project, "init")
    x = torch.rand(1, 3, 128, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    _run(project, "r1", "finished", ("best.pt", "last.pt"), created=1)
    _run(project, "r2", "finished", ("last.pt",), created=2)
    _run(project, "r3", "running", ("last.pt",), created=3)
    assert resolve_checkpoint(project, "r1").key == "runs/r1/best.pt"
    assert resolve_checkpoint(project, "r2").key == "runs/r2/last.pt"
    assert resolve_checkpoint(project, None).key == "runs/r2/last.pt"  # latest finished, not the running one
    ref = resolve_checkpoint(project, project.runs_dir / "r1" / "best.pt")
    assert ref.key == "runs/r1/best.pt" and ref.path.is_file()
    model, ref = load_model(project, "r1")
    assert model.spec == SPEC and not model.training
    with pytest.raises(UserError, match="neither a run id"):
        resolve_checkpoint(project, "nope")
    (project.runs_dir / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint yet"):
        resolve_checkpoint(project, "empty")

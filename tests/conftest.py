"""Shared fixtures. With IDSTUDIO_BLOCK_QT=1 any import of Qt fails: `make test` runs the
non-GUI suite that way to prove the core and services never need Qt."""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest

QT_MODULES = ("PySide6", "pyqtgraph", "shiboken6", "superqt")


class _QtBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in QT_MODULES:
            raise ImportError(f"{fullname} is blocked: core and services must not import Qt")
        return None


if os.environ.get("IDSTUDIO_BLOCK_QT") == "1":
    sys.meta_path.insert(0, _QtBlocker())

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data samples not found at {REAL} (see DESIGN.md §5)")
    return REAL


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small synthetic world, generated once per session."""
    from idstudio.core import synth

    out = tmp_path_factory.mktemp("world")
    return synth.generate(out, synth.SynthConfig.small())


@pytest.fixture(scope="session")
def small_project(tmp_path_factory, small_world):
    """A project with the small world imported (videos with noisy detections + labelled split).
    Session-scoped and shared: tests must not modify it; copy it with `copy_project` to write."""
    from idstudio.services import ingest

    root = tmp_path_factory.mktemp("project") / "proj"
    ingest.import_world(root, small_world)
    return root


@pytest.fixture
def copy_project(tmp_path, small_project):
    """A private, writable copy of the small project."""
    import shutil

    def make() -> Path:
        dest = tmp_path / "proj"
        shutil.copytree(small_project, dest)
        return dest

    return make


@pytest.fixture
def reloaded(tmp_path):
    """A function: the model saved as a run's checkpoint and loaded back, as a user would, with
    what a loaded model must equal to the one saved (its output on the same input)."""
    from idstudio.core.model import load_checkpoint, save_checkpoint

    def round_trip(model, x):
        import torch

        save_checkpoint(tmp_path / "reloaded.pt", model)
        loaded, _ = load_checkpoint(tmp_path / "reloaded.pt")
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-5)
        return loaded
    return round_trip

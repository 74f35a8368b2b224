"""A small synthetic project shared by the training benchmarks (built once, cached in /tmp)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "idstudio-bench-small"


def small_project() -> Path:
    root = CACHE / "proj"
    if (root / "idstudio.db").exists():
        return root
    from idstudio.core import synth
    from idstudio.services import ingest

    shutil.rmtree(CACHE, ignore_errors=True)
    world = synth.generate(CACHE / "world", synth.SynthConfig.small())
    ingest.import_world(root, world)
    return root

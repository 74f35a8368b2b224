"""The decoded-crop cache as a use case: what it holds, building it (a job), dropping it.

Training builds or updates the cache of its input size by itself at the start of a run
(``TrainConfig.crop_cache``); these are for a person who wants to see it, build it ahead
(e.g. before a GPU run) or get its disk back. The cache itself is ``core/crop_cache.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from idstudio.core import crop_cache
from idstudio.core.crop_cache import CropCache, human_bytes
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.store import Project

# The input size of a training run with the default settings (TrainConfig's height and width).
DEFAULT_SIZE = (128, 64)


def parse_size(text: str) -> tuple[int, int]:
    """'128x64' -> (128, 64): height then width, as the Train form's fields."""
    try:
        h, w = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise UserError(f"{text!r} is not an input size; give height x width, e.g. 128x64.") from None
    if not (8 <= h <= 1024 and 8 <= w <= 1024):
        raise UserError(f"{text!r} is outside 8x8 .. 1024x1024; give the model's input size, e.g. 128x64.")
    return h, w


def _open(project_root: Path | Project) -> Project:
    return project_root if isinstance(project_root, Project) else Project.open(project_root)


def status(project_root: Path | Project) -> list[dict[str, Any]]:
    """One entry a cache file: size, bytes, crops cached, how many of the store's are missing."""
    project = _open(project_root)
    with project.lock:
        return [cache.status(project.crops_conn) for cache in CropCache.all_of(project)]


def describe(entries: list[dict[str, Any]]) -> str:
    """One line a cache, for `idstudio info` and the Data view."""
    if not entries:
        return "Crop cache: none yet (the first training builds the one of its input size; `idstudio cache build`)."
    lines = []
    for e in entries:
        state = "up to date" if e["up_to_date"] else f"{e['missing']} of {e['instances']} crops to decode"
        lines.append(f"Crop cache {e['size']}: {human_bytes(e['bytes'])}, {e['cached']} crops, {state}.")
    return "\n".join(lines)


def build(project_root: Path | Project, size: tuple[int, int] = DEFAULT_SIZE, ctx: JobContext | None = None) -> dict[str, Any]:
    """Decode every crop the cache at ``size`` lacks (all of them the first time). Says its size
    first; one sentence where the disk is short; cancellable, keeping what it finished."""
    ctx = ctx or JobContext()
    project = _open(project_root)
    cache = CropCache.of(project, *size)
    with project.lock:
        plan = cache.plan(project.crops_conn)
    if not len(plan["todo"]):
        ctx.log(f"Crop cache {crop_cache.size_label(*size)}: already up to date ({human_bytes(cache.nbytes)}).")
        return {"size": crop_cache.size_label(*size), "decoded": 0, "bytes": cache.nbytes, "cached": len(cache.ids),
                "seconds": 0.0}
    if not plan["fits"]:
        raise UserError(cache.short_of_disk_sentence(plan))
    ctx.log(f"Crop cache {crop_cache.size_label(*size)}: {len(plan['todo'])} crops to decode, "
            f"{human_bytes(plan['grow_bytes'])} more on disk ({human_bytes(plan['free_bytes'])} free).")
    cache.update(project, ctx=ctx, plan=plan)
    with project.lock:
        result = {**CropCache.of(project, *size).status(project.crops_conn), "decoded": len(plan["todo"])}
    ctx.log(describe([result]))
    return result


def drop(project_root: Path | Project, size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Remove the cache at ``size`` (or every one); training decodes again until it rebuilds one."""
    project = _open(project_root)
    caches = CropCache.all_of(project) if size is None else [CropCache.of(project, *size)]
    caches = [c for c in caches if c.exists]
    if size is not None and not caches:
        raise UserError(f"This project has no crop cache at {crop_cache.size_label(*size)}; `idstudio info` lists them.")
    freed = sum(c.drop() for c in caches)
    return {"dropped": [crop_cache.size_label(c.height, c.width) for c in caches], "freed_bytes": freed}

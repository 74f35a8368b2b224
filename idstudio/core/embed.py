"""Embedding of stored crops: batched, decoded ahead in background threads, cached on disk.

``embed_instances`` reads the instances' JPEG crops from the project's crop store, decodes
them in a small thread pool (OpenCV releases the GIL) while the model runs the previous
batch, so the forward pass does not wait on decoding; optional flip averaging.

``cached_embeddings`` keeps the result per (checkpoint key, dataset) as a float16 ``.npy``
under ``project.cache_dir/embeddings``, written batch by batch into a memory map: a gallery
of a million never sits in RAM as float32 Python objects, and a later call with more
instances embeds only the new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from idstudio.core.data import decode_crops_gpu, decode_crops_uint8, gpu_decode_available
from idstudio.core.jobs import JobContext

CACHE_FORMAT = "idstudio-embeddings-1"


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def default_workers() -> int:
    """Decode threads: all but one core (the forward pass), at least 2, at most 8."""
    return max(2, min(8, (os.cpu_count() or 2) - 1))


def iter_decoded(project: Any, instance_ids: Sequence[int], spec: Any, batch_size: int,
                 workers: int | None = None, prefetch: int | None = None,
                 pin: bool = False, device: Any = None) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, uint8 (n, 3, H, W)) batches, fetched and decoded ahead in background threads
    (OpenCV and SQLite release the GIL), in order; ``pin`` pins them for a fast GPU copy.
    ``project`` is anything with ``crop_jpegs(ids)`` (a Project, a ``CropReader``).
    With a CUDA ``device`` the threads only fetch and the JPEGs are decoded on the GPU
    (``torchvision.io.decode_jpeg``); the batches are then already on it."""
    ids = [int(i) for i in instance_ids]
    starts = list(range(0, len(ids), batch_size))
    workers = workers or default_workers()
    prefetch = prefetch or workers + 1
    on_gpu = gpu_decode_available(device, spec)

    def load(start: int) -> tuple[int, Any]:
        jpegs = project.crop_jpegs(ids[start:start + batch_size])
        if on_gpu:
            return start, jpegs
        images = decode_crops_uint8(jpegs, spec)
        return start, images.pin_memory() if pin else images

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="idstudio-decode") as pool:
        pending: queue.SimpleQueue = queue.SimpleQueue()
        submitted = 0
        for _ in range(min(prefetch, len(starts))):
            pending.put(pool.submit(load, starts[submitted]))
            submitted += 1
        for _ in range(len(starts)):
            future = pending.get()
            if submitted < len(starts):
                pending.put(pool.submit(load, starts[submitted]))
                submitted += 1
            start, data = future.result()
            yield (start, decode_crops_gpu(data, spec, device)) if on_gpu else (start, data)


@torch.inference_mode()
def forward_batches(model: torch.nn.Module, batches: Iterator[tuple[int, torch.Tensor]], n: int,
                    write: Callable[[int, np.ndarray], None], flip: bool = False,
                    ctx: JobContext | None = None) -> None:
    device = _device(model)
    done = 0
    for start, images in batches:
        if ctx is not None:
            ctx.check_cancelled()
        x = images.to(device, non_blocking=True).float().div_(255.0)
        out = model(x)
        if flip:
            out = torch.nn.functional.normalize(out + model(x.flip(3)), dim=1)
        write(start, out.float().cpu().numpy())
        done += len(images)
        if ctx is not None:
            ctx.progress(done, n, "embedding")


def embed_instances(project: Any, model: torch.nn.Module, instance_ids: Sequence[int], batch_size: int = 128,
                    flip: bool = False, ctx: JobContext | None = None) -> np.ndarray:
    """L2-normalised embeddings (n, dim) float32 of the given instances, in the given order."""
    ids = [int(i) for i in instance_ids]
    model = getattr(model, "module", model)  # DistributedDataParallel / DataParallel: the wrapped model
    spec = model.spec
    was_training = model.training
    model.eval()
    try:
        out = np.zeros((len(ids), spec.dim), dtype=np.float32)

        def write(start: int, feats: np.ndarray) -> None:
            out[start:start + len(feats)] = feats

        pin = _device(model).type == "cuda"
        forward_batches(model, iter_decoded(project, ids, spec, batch_size, pin=pin, device=_device(model)), len(ids),
                        write, flip, ctx)
    finally:
        model.train(was_training)
    return out


# ---- the on-disk cache ----------------------------------------------------------------------

def cache_folder(project: Any, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[-60:].strip("_") or "model"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return project.cache_dir / "embeddings" / f"{slug}-{digest}"


def cache_paths(project: Any, key: str, name: str, flip: bool) -> tuple[Path, Path, Path]:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ("-flip" if flip else "")
    folder = cache_folder(project, key)
    return folder / f"{stem}.npy", folder / f"{stem}.ids.npy", folder / f"{stem}.json"


def load_cached(project: Any, key: str, name: str, flip: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, float16 memmap) of a complete cache entry for this key, else None."""
    feats_path, ids_path, meta_path = cache_paths(project, key, name, flip)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            return None
        ids = np.load(ids_path)
        feats = np.load(feats_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if feats.shape[0] != len(ids):
        return None
    return ids, feats


def cached_embeddings(project: Any, model: torch.nn.Module, key: str, name: str, instance_ids: Sequence[int],
                      batch_size: int = 128, flip: bool = False, ctx: JobContext | None = None,
                      refresh: bool = False) -> np.ndarray:
    """Embeddings of ``instance_ids`` (in that order) as a read-only float16 memmap.

    Rows already cached under (key, name) are reused; only missing instances are embedded.
    """
    ids = np.asarray([int(i) for i in instance_ids], dtype=np.int64)
    model = getattr(model, "module", model)
    spec = model.spec
    old = None if refresh else load_cached(project, key, name, flip)
    if old is not None and len(old[0]) == len(ids) and np.array_equal(old[0], ids):
        return old[1]
    feats_path, ids_path, meta_path = cache_paths(project, key, name, flip)
    feats_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = feats_path.with_name(f".{feats_path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(ids), spec.dim))
    todo = np.arange(len(ids))
    if old is not None and old[1].shape[1] == spec.dim:
        old_ids, old_feats = old
        order = np.argsort(old_ids)
        pos = np.searchsorted(old_ids[order], ids)
        pos = np.clip(pos, 0, max(len(order) - 1, 0))
        known = (len(order) > 0) & (old_ids[order][pos] == ids) if len(order) else np.zeros(len(ids), bool)
        rows = np.nonzero(known)[0]
        for s in range(0, len(rows), 65536):
            r = rows[s:s + 65536]
            out[r] = old_feats[order[pos[r]]]
        todo = np.nonzero(~known)[0]
    if len(todo):
        was_training = model.training
        model.eval()

        def write(start: int, feats: np.ndarray) -> None:
            out[todo[start:start + len(feats)]] = feats.astype(np.float16)

        try:
            pin = _device(model).type == "cuda"
            forward_batches(model, iter_decoded(project, ids[todo].tolist(), spec, batch_size, pin=pin, device=_device(model)), len(todo),
                            write, flip, ctx)
        except BaseException:
            del out
            tmp.unlink(missing_ok=True)
            raise
        finally:
            model.train(was_training)
    out.flush()
    del out
    np.save(ids_path, ids)
    os.replace(tmp, feats_path)
    meta = {"format": CACHE_FORMAT, "key": key, "name": name, "flip": flip, "n": int(len(ids)),
            "dim": int(spec.dim), "spec": spec.to_dict() if hasattr(spec, "to_dict") else None}
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return np.load(feats_path, mmap_mode="r")

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

from idstudio.core import crop_cache
from idstudio.core.data import decode_crops_gpu, decode_crops_uint8, default_workers, gpu_decode_available
from idstudio.core.jobs import JobContext

CACHE_FORMAT = "idstudio-embeddings-1"


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def iter_decoded(project: Any, instance_ids: Sequence[int], spec: Any, batch_size: int,
                 workers: int | None = None, prefetch: int | None = None,
                 pin: bool = False, device: Any = None) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, uint8 (n, 3, H, W)) batches, fetched and decoded ahead in background threads
    (OpenCV and SQLite release the GIL), in order; ``pin`` pins them for a fast GPU copy.
    ``project`` is anything with ``crop_jpegs(ids)`` (a Project, a ``CropReader``); a
    Project's up-to-date crop cache (core/crop_cache.py) is read instead where it holds them.
    With a CUDA ``device`` the threads only fetch and the JPEGs are decoded on the GPU
    (``torchvision.io.decode_jpeg``); the batches are then already on it."""
    ids = np.asarray(instance_ids, dtype=np.int64)  # not a Python int per instance: a million are 36 MB
    starts = list(range(0, len(ids), batch_size))
    workers = workers or default_workers()
    prefetch = prefetch or workers + 1
    cached = crop_cache.find_reader(project, ids, spec)
    if cached is not None:  # decoded once already: a gather, no decoding
        yield from crop_cache.Prefetcher(lambda s: (s, cached.read(np.arange(s, min(s + batch_size, len(ids))), pin=pin)),
                                         starts, depth=prefetch)
        return
    on_gpu = gpu_decode_available(device, spec)

    def load(start: int) -> tuple[int, Any]:
        jpegs = project.crop_jpegs(ids[start:start + batch_size].tolist())
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


class RowFile:
    """A (n, dim) float16 matrix in a ``.npy`` file, written and read by rows with plain file
    I/O (pwrite/pread). Unlike a memory map, the pages it touches never count in the process's
    resident memory, so a million rows cost the batch being read or written, not the file.
    ``np.load(path, mmap_mode="r")`` reads the file as usual."""

    def __init__(self, path: Path, n: int, dim: int):
        self.path = Path(path)
        self.shape = (int(n), int(dim))
        self.dtype = np.dtype(np.float16)
        header = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)
        self.offset = header.offset
        del header  # the file exists at its full size (sparse); from here on only pread/pwrite
        self._fd = os.open(self.path, os.O_RDWR)
        self._row = self.shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _runs(self, rows: np.ndarray):
        """(position in ``rows``, first row, count) of each run of consecutive rows."""
        cut = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.r_[0, cut]
        ends = np.r_[cut, len(rows)]
        return zip(starts.tolist(), rows[starts].tolist(), (ends - starts).tolist())

    def _rows(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(*key.indices(self.shape[0]))
        return np.asarray(key, dtype=np.int64).reshape(-1)

    def __setitem__(self, key, value) -> None:
        rows = self._rows(key)
        data = np.ascontiguousarray(np.asarray(value, dtype=self.dtype).reshape(len(rows), self.shape[1]))
        for pos, first, count in self._runs(rows):
            os.pwrite(self._fd, data[pos:pos + count].tobytes(), self.offset + first * self._row)

    def __getitem__(self, key) -> np.ndarray:
        rows = self._rows(key)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        for pos, first, count in self._runs(rows):
            buf = os.pread(self._fd, count * self._row, self.offset + first * self._row)
            out[pos:pos + count] = np.frombuffer(buf, dtype=self.dtype).reshape(count, self.shape[1])
        return out

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:  # not when __init__ failed before opening it
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


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
    ids = np.asarray(instance_ids, dtype=np.int64)
    model = getattr(model, "module", model)
    spec = model.spec
    old = None if refresh else load_cached(project, key, name, flip)
    if old is not None and len(old[0]) == len(ids) and np.array_equal(old[0], ids):
        return old[1]
    feats_path, ids_path, meta_path = cache_paths(project, key, name, flip)
    feats_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = feats_path.with_name(f".{feats_path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
    out = RowFile(tmp, len(ids), spec.dim)
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
            forward_batches(model, iter_decoded(project, ids[todo], spec, batch_size, pin=pin, device=_device(model)), len(todo),
                            write, flip, ctx)
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            model.train(was_training)
    out.close()
    np.save(ids_path, ids)
    os.replace(tmp, feats_path)
    meta = {"format": CACHE_FORMAT, "key": key, "name": name, "flip": flip, "n": int(len(ids)),
            "dim": int(spec.dim), "spec": spec.to_dict() if hasattr(spec, "to_dict") else None}
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return np.load(feats_path, mmap_mode="r")

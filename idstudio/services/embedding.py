"""Embedding a crop store with a model, and the process's place in a ``torchrun`` job.

``pick_device`` chooses the device, ``world_size``/``rank_and_world`` say how many processes
there are and which one this is, ``embed_store`` embeds a store's crops (streamed),
``embed_sharded`` splits that over the ranks and gathers the shards. Mining, linking and
training all embed through here.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from idstudio.core import crop_cache
from idstudio.core.data import CropReader, CropStore
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.model import EmbeddingModel


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if world_size() > 1 else 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA was asked for but no CUDA GPU is available to PyTorch; use --device cpu or auto.")
    if name == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1



def embed_store(model: EmbeddingModel, crops: CropStore, device: torch.device, batch_size: int = 128,
                ctx: JobContext | None = None, rows: np.ndarray | None = None,
                timer: dict[str, float] | None = None, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Embeddings of the store's crops (all or ``rows``), streamed: crops are read and decoded
    ahead in background threads (``core.embed.iter_decoded``) while the model runs, and written
    into ``out`` (e.g. a float16 memory map; float32 in RAM when None). Returns (emb, seconds
    in forward). ``timer`` (optional) accumulates "forward_cpu": process CPU seconds in forward."""
    from idstudio.core.embed import forward_batches, iter_decoded

    rows = np.arange(len(crops.ids)) if rows is None else rows
    if out is None:
        out = np.zeros((len(rows), model.spec.dim), dtype=np.float32)
    fwd = [0.0]

    def write(start: int, feats: np.ndarray) -> None:
        out[start:start + len(feats)] = feats

    def timed(batches):
        for item in batches:  # the forward pass runs between two items of this generator
            t0, c0 = time.perf_counter(), time.process_time()
            yield item
            if device.type == "cuda":
                torch.cuda.synchronize()
            fwd[0] += time.perf_counter() - t0
            if timer is not None:
                timer["forward_cpu"] = timer.get("forward_cpu", 0.0) + time.process_time() - c0

    source = crops.source if isinstance(crops.source, CropReader) else None
    ids = crops.ids[rows]
    was_training = model.training
    model.eval()
    try:
        if source is not None:
            batches = iter_decoded(source, ids, model.spec, batch_size, pin=device.type == "cuda", device=device)
        elif crops.cached:  # gathered from the crop cache, a few batches ahead
            pin = device.type == "cuda"
            batches = iter(crop_cache.Prefetcher(lambda s: (s, crops.get(rows[s:s + batch_size], pin=pin)),
                                                 range(0, len(rows), batch_size)))
        else:  # crops held in memory
            batches = ((s, crops.get(rows[s:s + batch_size])) for s in range(0, len(rows), batch_size))
        forward_batches(model, timed(batches), len(rows), write, ctx=ctx)
    finally:
        model.train(was_training)
    return out, fwd[0]


def embed_sharded(model: EmbeddingModel, crops: CropStore, device: torch.device, batch_size: int,
                  ctx: JobContext | None, timer: dict[str, float] | None = None,
                  out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Each rank embeds a contiguous shard; shards are all-gathered (identical result on all ranks).
    On one process the embeddings go straight into ``out`` when given."""
    rank, world = rank_and_world()
    n = len(crops.ids)
    if world == 1:
        return embed_store(model, crops, device, batch_size, ctx, timer=timer, out=out)
    bounds = np.linspace(0, n, world + 1).astype(int)
    mine_rows = np.arange(bounds[rank], bounds[rank + 1])
    emb, fwd = embed_store(model, crops, device, batch_size, ctx if rank == 0 else None, mine_rows, timer=timer,
                           out=np.zeros((len(mine_rows), model.spec.dim), np.float16))
    shards: list[Any] = [None] * world
    torch.distributed.all_gather_object(shards, emb)
    if out is None:
        return np.concatenate(shards), fwd
    start = 0
    for shard in shards:
        out[start:start + len(shard)] = shard
        start += len(shard)
    return out, fwd


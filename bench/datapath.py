"""The training data path without the model: crops per second it delivers, from one core.

What a training step asks of the host — sample the epoch's pairs, gather both views of a
batch from the decoded-crop cache (``core/crop_cache.py``), into pinned memory where CUDA is
there — measured with the model replaced by nothing, beside:

- ``memcpy``: copying the same bytes once, from one contiguous buffer into another (the
  bare limit of moving them);
- ``jpeg``: the path without the cache (``--crop-cache off``): the crops read from
  ``crops.db`` and decoded, through the reader's bounded LRU of decoded crops, in the main
  thread, as the trainer does on the CPU (no loader workers).

Projects are those of ``bench/scale.py`` (videos of 8 people, 64x32 JPEG crops, 10k
instances a video), made once under ``--root``; the cache of each input size is built in a
process of its own first, and each case then runs in its own process, so its peak RSS is
the data path's. Cases: 64x32 and 128x64 at 10k and 100k instances, and 64x32 at 1M (a 6 GB
cache; ``--small`` skips it). One core: the gather is one thread, torch has one.

Goal (issue 22): >= 50,000 crops/s at 128x64 (aim 100,000); at 1M the per-crop cost within
1.2x of 10k and the peak RSS within 1.5x.

Usage: python bench/datapath.py [--small] [--root /tmp/idstudio-datapath] [--batch 256] [--seconds 4]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = {"64x32": (64, 32), "128x64": (128, 64)}


def project_root(root: Path, n: int) -> Path:
    return root / f"p{n}"


def make_project(root: Path, n: int) -> dict:
    import scale

    path = project_root(root, n)
    if (path / "idstudio.db").exists() and (path / ".complete").exists():
        return {"instances": n, "reused": True}
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    out = scale.generate(path, n)
    (path / ".complete").write_text("ok\n")
    return out


def build_cache(root: Path, n: int, size: str) -> dict:
    from idstudio.core import crop_cache
    from idstudio.core.store import Project

    h, w = SIZES[size]
    with Project.open(project_root(root, n)) as project:
        t0 = time.perf_counter()
        note = crop_cache.ensure(project, SimpleNamespace(height=h, width=w, resize="squash"), "on")
        return {"seconds": round(time.perf_counter() - t0, 1), "note": note,
                "bytes": crop_cache.CropCache.of(project, h, w).nbytes}


def pair_sampler(crops, table):
    """ISR's adjacent pairs of the scale project: each person with itself one frame later."""
    from idstudio.core.sampling import make_sampler

    video, frame = table.video_id, table.frame
    a = np.arange(len(table) - 8)
    a = a[(video[a] == video[a + 8]) & (frame[a + 8] == frame[a] + 1)]
    b = a + 8
    component = video[a] * 100 + (a % 8)
    return make_sampler("pairs", crops, video, frame, a, b, np.ones(len(a), np.float32), component,
                        np.ones(len(a), bool), tau=0.1)


def run_case(root: Path, n: int, size: str, batch: int, seconds: float) -> dict:
    import torch

    from idstudio.core import crop_cache
    from idstudio.core.data import CropPairs, CropStore, EpochBatches
    from idstudio.core.store import Project

    torch.set_num_threads(1)
    h, w = SIZES[size]
    spec = SimpleNamespace(height=h, width=w, resize="squash")
    pin = torch.cuda.is_available()
    out: dict = {"instances": n, "size": size, "batch_pairs": batch, "pinned": pin}
    for other in root.glob("p*/cache/crops/*.u8"):  # one cache on the machine: the others' pages go
        if other.name == f"crops-{size}.u8" and other.is_relative_to(project_root(root, n)):
            continue
        fd = os.open(other, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    with Project.open(project_root(root, n)) as project:
        table = project.instance_table()
        crops = crop_cache.crop_store(project, table.id, spec)
        assert crops.cached, "the cache was not built"
        t0 = time.perf_counter()
        crop_cache.CropCache.of(project, h, w).warm().join()  # as a run starts: the file read through once
        out["warm_s"] = round(time.perf_counter() - t0, 2)
        sampler = pair_sampler(crops, table)
        n_batches = 400
        rng = np.random.default_rng(0)

        # the cache path: what Trainer.batches does
        def epoch_batches():
            ds, batches = sampler.epoch(batch, n_batches, rng)
            steps = [(ds.a_idx[b], ds.b_idx[b], ds.weights[b], b) for b in batches]
            return crop_cache.Prefetcher(lambda s: crops.pairs_batch(*s, pin=pin), steps, depth=4)

        done, t0, c0 = 0, time.perf_counter(), time.process_time()
        for _ in epoch_batches():  # warm: the page cache holds the file after this
            pass
        done, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            for views, _w, _i in epoch_batches():
                done += len(views)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["crops_per_s"] = round(done / wall)
        out["cpu_us_per_crop"] = round(cpu / done * 1e6, 3)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["cache_mb"] = round(crop_cache.CropCache.of(project, h, w).nbytes / 2 ** 20, 1)

        # memcpy of the same bytes, one contiguous buffer into another
        nbytes = 2 * batch * 3 * h * w
        src = np.random.default_rng(1).integers(0, 255, nbytes, dtype=np.uint8)
        dst = np.empty_like(src)
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            np.copyto(dst, src)
            done += 2 * batch
        out["memcpy_crops_per_s"] = round(done / (time.perf_counter() - t0))

        # today's JPEG path (no cache): a loader without workers over a reader of crops.db
        jpeg = CropStore.load(project, table.id, spec)
        order = EpochBatches()
        loader = torch.utils.data.DataLoader(CropPairs(jpeg), batch_sampler=order)
        ds, batches = sampler.epoch(batch, 40, rng)
        order.batches = [ds.rows(b) for b in batches]
        done, t0 = 0, time.perf_counter()
        for va, vb, _w, _i in loader:
            done += len(va) + len(vb)
            if time.perf_counter() - t0 > seconds:
                break
        out["jpeg_crops_per_s"] = round(done / (time.perf_counter() - t0))
    return out


def subprocess_json(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="skip the 1M case")
    ap.add_argument("--instances", default=None, help="only these project sizes, comma-separated (e.g. 10000,100000)")
    ap.add_argument("--root", type=Path, default=Path("/tmp/idstudio-datapath"))
    ap.add_argument("--batch", type=int, default=256, help="pairs per batch (two crops a pair)")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time of each path")
    ap.add_argument("--case", nargs=2, metavar=("N", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--make", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--build", nargs=2, metavar=("N", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        print(json.dumps(make_project(args.root, args.make)))
        return
    if args.build:
        print(json.dumps(build_cache(args.root, int(args.build[0]), args.build[1])))
        return
    if args.case:
        print(json.dumps(run_case(args.root, int(args.case[0]), args.case[1], args.batch, args.seconds)))
        return

    cases = [(10_000, "64x32"), (10_000, "128x64"), (100_000, "64x32"), (100_000, "128x64")]
    if not args.small:
        cases.append((1_000_000, "64x32"))
    if args.instances:
        keep = {int(v) for v in args.instances.split(",")}
        cases = [c for c in cases if c[0] in keep]
    rows = []
    for n in sorted({c[0] for c in cases}):
        made = subprocess_json(["--root", str(args.root), "--make", str(n)])
        print(f"project of {n} instances: {made}", flush=True)
    for n, size in cases:
        built = subprocess_json(["--root", str(args.root), "--build", str(n), size])
        print(f"cache {size} of {n}: {built['note']}", flush=True)
        row = subprocess_json(["--root", str(args.root), "--batch", str(args.batch), "--seconds", str(args.seconds),
                               "--case", str(n), size])
        row["build_s"] = built["seconds"]
        rows.append(row)
        print(f"{n:>9} {size:>7}: cache {row['crops_per_s']:>9,} crops/s   memcpy {row['memcpy_crops_per_s']:>10,}   "
              f"jpeg {row['jpeg_crops_per_s']:>7,}   peak RSS {row['peak_rss_mb']:>7.1f} MB   "
              f"({row['cache_mb']:.0f} MB cache, built in {row['build_s']:.0f} s)", flush=True)

    def at(n: int, size: str, key: str):
        return next((r[key] for r in rows if r["instances"] == n and r["size"] == size), None)

    result = {"crops_per_s": {s: at(100_000, s, "crops_per_s") for s in SIZES},
              "memcpy_crops_per_s": {s: at(100_000, s, "memcpy_crops_per_s") for s in SIZES},
              "jpeg_crops_per_s": {s: at(100_000, s, "jpeg_crops_per_s") for s in SIZES},
              "per_crop_1m_over_10k": None, "rss_1m_over_10k": None, "cases": rows}
    if at(1_000_000, "64x32", "crops_per_s") and at(10_000, "64x32", "crops_per_s"):
        result["per_crop_1m_over_10k"] = round(at(1_000_000, "64x32", "cpu_us_per_crop")
                                               / at(10_000, "64x32", "cpu_us_per_crop"), 3)
        result["rss_1m_over_10k"] = round(at(1_000_000, "64x32", "peak_rss_mb") / at(10_000, "64x32", "peak_rss_mb"), 3)
    result["goal_met"] = bool(result["crops_per_s"]["128x64"] and result["crops_per_s"]["128x64"] >= 50_000
                              and (result["per_crop_1m_over_10k"] is None
                                   or (result["per_crop_1m_over_10k"] <= 1.2 and result["rss_1m_over_10k"] <= 1.5)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

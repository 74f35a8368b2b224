"""JPEG crop decoding, stage by stage: where the embedding pipeline's input time goes.

On the same stored-crop JPEGs (person-like, 160-256 px high, as ``bench/embed.py`` makes
them): one CPU thread (OpenCV decode + resize), the pipeline's CPU decode threads, and on a
CUDA machine the GPU path split into nvJPEG decoding alone and decoding plus the resize to
the model's input. Last line: JSON, images per second for each stage.
Usage: ``python bench/decode.py [--n 8192] [--batch 512]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embed import make_crops  # noqa: E402

from idstudio.core.data import decode_crops_gpu, decode_crops_uint8, default_workers  # noqa: E402
from idstudio.core.embed import iter_decoded  # noqa: E402
from idstudio.core.model import ModelSpec  # noqa: E402


class _Bytes:
    """In-memory JPEGs with the ``crop_jpegs`` interface the pipeline reads."""

    def __init__(self, jpegs: list[bytes]):
        self.jpegs = jpegs

    def crop_jpegs(self, ids):
        return [self.jpegs[i] for i in ids]


def rate(n: int, fn, sync=lambda: None, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return round(n / best, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    spec = ModelSpec(arch="resnet18", height=128, width=64)
    jpegs = make_crops(args.n)
    chunks = [jpegs[s:s + args.batch] for s in range(0, args.n, args.batch)]
    out = {"n": args.n, "batch": args.batch, "input": [spec.height, spec.width], "cpu_threads": default_workers()}
    out["cpu_one_thread"] = rate(args.n, lambda: [decode_crops_uint8(c, spec) for c in chunks], repeats=1)
    out["cpu_pipeline"] = rate(args.n, lambda: list(iter_decoded(_Bytes(jpegs), range(args.n), spec, args.batch)))
    if torch.cuda.is_available():
        from torchvision.io import ImageReadMode, decode_jpeg

        dev = torch.device("cuda")
        sync = torch.cuda.synchronize
        decode_crops_gpu(chunks[0], spec, dev)  # warm-up (nvJPEG handles, kernels)
        out["gpu_decode_only"] = rate(args.n, lambda: [decode_jpeg(
            [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in c], mode=ImageReadMode.RGB, device=dev)
            for c in chunks], sync)
        out["gpu_decode_resize"] = rate(args.n, lambda: [decode_crops_gpu(c, spec, dev) for c in chunks], sync)
        out["gpu_pipeline"] = rate(args.n, lambda: list(iter_decoded(_Bytes(jpegs), range(args.n), spec, args.batch,
                                                                     device=dev)), sync)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

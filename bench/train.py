"""Trainer throughput over a bare PyTorch loop (same model, batch, input size, loss).

The real trainer runs on the small synthetic project (crops decoded once, augmentation,
pair batches, reliability-weighted loss, metrics); its pairs/s in a warm epoch is divided
by a bare loop's on in-memory tensors. Last line: JSON with "ratio" (goal >= 0.9).

Two recipes (``--recipe``, default both): ``cross-camera``, what the recipe rule picks on the
synthetic world (ResNet-18 from random at 64x32, ISR's pairs sampler), and ``real``, what
real video gets (MobileNetV2 at 128x64 with the colour part, half the backbone frozen, the
tracklet sampler, background mixing); the bare loop freezes the same modules. The trainer
reads its crops from the decoded-crop cache, as every run does by default.

Usage: ``python bench/train.py [STEPS] [--batch B] [--amp] [--recipe cross-camera|real|both]``.
``--amp`` (CUDA only) runs both loops in mixed precision with channels-last, as the trainer
does by default on a GPU. Last line: JSON with "ratio" (the lower of the recipes'; goal >= 0.9)
and each recipe's figures, images per second included (two images per pair).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import small_project  # noqa: E402

from idstudio.core import config as cfgmod  # noqa: E402
from idstudio.core.jobs import JobContext, metric_series, read_events  # noqa: E402
from idstudio.core.losses import reliability_info_nce  # noqa: E402
from idstudio.core.model import build_model  # noqa: E402
from idstudio.services.embedding import pick_device  # noqa: E402
from idstudio.services.train_config import TrainConfig  # noqa: E402
from idstudio.services.training import train  # noqa: E402


def bare(cfg: TrainConfig, steps: int, device: torch.device) -> float:
    model, _ = build_model(cfg.spec(), weights="none")
    amp = bool(cfg.amp) and device.type == "cuda"
    if cfg.freeze > 0:
        model.freeze(cfg.freeze)  # as the trainer: the frozen modules cost no backward
    model.to(device).train()
    if amp:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    b = cfg.batch_size
    xa = torch.rand(b, 3, cfg.height, cfg.width, device=device)
    xb = torch.rand(b, 3, cfg.height, cfg.width, device=device)
    w = torch.ones(b, device=device)

    def step():
        x = torch.cat([xa, xb])
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=amp) if amp else contextlib.nullcontext():
            z = model(x)
            loss = reliability_info_nce(z[:b].float(), z[b:].float(), w, tau=cfg.tau)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * b / (time.perf_counter() - t0)


RECIPES = {"cross-camera": {}, "real": {"colour": "on"}}  # colour on: the real-video defaults, no recipe rule


def measure(recipe: str, steps: int, batch: int, amp: bool, device: torch.device) -> dict:
    root = small_project()
    cfg = TrainConfig(epochs=2, steps_per_epoch=steps, batch_size=batch, remine_every=0, eval_every=0,
                      warmup_steps=1, amp=amp, **RECIPES[recipe])
    summary = train(root, cfg, JobContext())
    run_dir = root / "runs" / summary["run_id"]
    # the bare loop copies the settings the trainer resolved (its recipe may change the model and batch)
    cfg = cfgmod.from_dict(TrainConfig, json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    events = read_events(run_dir / "metrics.jsonl")
    trainer = metric_series(events)["train/pairs_per_s"][-1][1]  # the warm (second) epoch
    reference = bare(cfg, steps, device)
    print(f"{recipe}: trainer {trainer:.1f} pairs/s, bare loop {reference:.1f} pairs/s on {device} "
          f"({cfg.arch} {cfg.height}x{cfg.width}, {cfg.sampler} sampler, batch {cfg.batch_size})", flush=True)
    return {"ratio": round(trainer / reference, 3), "trainer_pairs_per_s": round(trainer, 2),
            "bare_pairs_per_s": round(reference, 2), "trainer_images_per_s": round(2 * trainer, 1),
            "bare_images_per_s": round(2 * reference, 1), "batch": cfg.batch_size, "input": [cfg.height, cfg.width],
            "arch": cfg.arch, "sampler": cfg.sampler, "peak_gpu_mb": summary.get("peak_gpu_mb")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("steps", type=int, nargs="?", default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--amp", action="store_true", help="mixed precision on CUDA (both loops)")
    ap.add_argument("--recipe", choices=[*RECIPES, "both"], default="both")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # both loops alike; steadier on a shared CPU
    device = pick_device("auto")
    recipes = list(RECIPES) if args.recipe == "both" else [args.recipe]
    results = {r: measure(r, args.steps, args.batch, args.amp, device) for r in recipes}
    print(json.dumps({"ratio": min(r["ratio"] for r in results.values()), "amp": bool(args.amp and device.type == "cuda"),
                      "device": str(device), "recipes": results}))


if __name__ == "__main__":
    main()

"""Trainer throughput over a bare PyTorch loop (same model, batch, input size, loss).

The real trainer runs on the small synthetic project (crops decoded once, augmentation,
pair batches, reliability-weighted loss, metrics); its pairs/s in a warm epoch is divided
by a bare loop's on in-memory tensors. Last line: JSON with "ratio" (goal >= 0.9).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import small_project  # noqa: E402

from idstudio.core.jobs import JobContext, metric_series, read_events  # noqa: E402
from idstudio.core.losses import reliability_info_nce  # noqa: E402
from idstudio.core.model import build_model  # noqa: E402
from idstudio.services.training import TrainConfig, pick_device, train  # noqa: E402


def bare(cfg: TrainConfig, steps: int, device: torch.device) -> float:
    model, _ = build_model(cfg.spec(), weights="none")
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    b = cfg.batch_size
    xa = torch.rand(b, 3, cfg.height, cfg.width, device=device)
    xb = torch.rand(b, 3, cfg.height, cfg.width, device=device)
    w = torch.ones(b, device=device)

    def step():
        z = model(torch.cat([xa, xb]))
        loss = reliability_info_nce(z[:b], z[b:], w, tau=cfg.tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

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


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # both loops alike; steadier on a shared CPU
    root = small_project()
    device = pick_device("auto")
    cfg = TrainConfig(epochs=2, steps_per_epoch=steps, batch_size=32, remine_every=0, eval_every=0,
                      warmup_steps=1, amp=False)
    summary = train(root, cfg, JobContext())
    events = read_events(root / "runs" / summary["run_id"] / "metrics.jsonl")
    trainer = metric_series(events)["train/pairs_per_s"][-1][1]  # the warm (second) epoch
    reference = bare(cfg, steps, device)
    print(f"trainer {trainer:.1f} pairs/s, bare loop {reference:.1f} pairs/s on {device}")
    print(json.dumps({"ratio": round(trainer / reference, 3), "trainer_pairs_per_s": round(trainer, 2),
                      "bare_pairs_per_s": round(reference, 2), "batch": cfg.batch_size,
                      "input": [cfg.height, cfg.width], "arch": cfg.arch, "device": str(device)}))


if __name__ == "__main__":
    main()

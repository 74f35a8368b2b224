"""Mining cost (process CPU seconds, robust on a shared machine; GPU runs should use wall time): linear in frames, and spent in the model.

Mines the first N frames of every video of the small synthetic project, then the first 2N
(crops decoded, embedded with the default init model, matched, stored). Last line: JSON with
"scaling" = t(2N) / t(N) (goal <= 2.1) and "overhead" = share of the 2N round's time spent
outside the model's forward passes (goal <= 0.10).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import small_project  # noqa: E402

from idstudio.core.data import CropStore  # noqa: E402
from idstudio.core.model import ModelSpec, build_model  # noqa: E402
from idstudio.core.store import Project  # noqa: E402
from idstudio.services.embedding import pick_device  # noqa: E402
from idstudio.services.mining import MineConfig, run_mining  # noqa: E402


def round_time(project, model, table, frames: int, device) -> tuple[float, float, int]:
    mid = (int(table.frame.min()) + int(table.frame.max())) // 2  # centred windows: steady density
    keep = np.flatnonzero((table.frame >= mid - frames // 2) & (table.frame < mid - frames // 2 + frames))
    sub = project.instance_table(instance_ids=table.id[keep])
    t0 = time.process_time()
    crops = CropStore.load(project, sub.id, model.spec)
    _, result, timing = run_mining(project, model, crops, sub, MineConfig(), True, "bench", device, store=False)
    total = time.process_time() - t0
    return total, timing["forward_cpu"], len(sub)


def main() -> None:
    torch.set_num_threads(1)  # one thread: CPU seconds = work (no OpenMP spin under contention)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else small_project()  # e.g. an `idstudio demo` project
    device = pick_device("auto")
    # MineConfig's init fields are auto (training's start, resolved per project); the bench keeps
    # one fixed model: the random ResNet-18 at 64x32 that the synthetic world's recipe starts from
    model, _ = build_model(ModelSpec("resnet18", 256, 64, 32, last_stride=2), weights="none")
    model.to(device).eval()
    with Project.open(root) as project:
        table = project.instance_table()
        n = int((table.frame.max() - table.frame.min() + 1) // (2 if len(sys.argv) <= 2 else int(sys.argv[2])))
        round_time(project, model, table, 8, device)  # warm-up
        t1, _, n1 = min((round_time(project, model, table, n, device) for _ in range(3)), key=lambda r: r[0])
        t2, f2, n2 = min((round_time(project, model, table, 2 * n, device) for _ in range(3)), key=lambda r: r[0])
    print(f"N={n} frames/video: {t1:.2f} CPU s; 2N: {t2:.2f} CPU s ({f2:.2f} in forward) on {device}")
    print(json.dumps({"scaling": round(t2 / t1, 3), "overhead": round(1 - f2 / t2, 3), "frames_N": n,
                      "instances_N": n1, "instances_2N": n2, "scaling_per_instance": round((t2 / t1) / (n2 / n1), 3),
                      "seconds_N": round(t1, 3), "seconds_2N": round(t2, 3), "device": str(device)}))


if __name__ == "__main__":
    main()

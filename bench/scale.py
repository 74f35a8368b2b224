"""Scale benchmark: a synthesised project of N instances, and what its size costs.

For each N (default 100k and 1M) a project is synthesised quickly — videos of 8 people
walking for 1,250 frames (10k instances a video, so N only changes the number of videos),
store rows written with ``Project.add_frames_and_instances`` and a real JPEG crop per
instance (64x32, quality 90, coloured by identity plus noise; no world is rendered) — and
then each task runs in its own subprocess, so its peak RSS is its own:

- ``mine``: one mining round (``services.mining.mine``: streamed crops, float16 round
  embeddings, matching video by video, pairs stored);
- ``embed``: every instance embedded into the cache (``services.evaluation.embed``);
- ``train``: a fixed-step training slice (``services.training.train`` on the mined round,
  ``--sampler pairs``, two epochs of ``--steps`` steps; step throughput from the warm epoch);
- ``eval``: 1,000 queries against every other instance (Market-1501 metrics and the top 10,
  ``core.evaluate.evaluate_features``) from the embeddings the ``embed`` task cached;
- ``gui``: the main window opens the project: time to the Data view's first paint, then
  the event loop's stall p99 (a 10 ms timer's lateness) while the instance grid scrolls.

The model is deliberately tiny (``bench_tiny``: three strided 3x3 convolutions, input
32x16; registered by this script) so that on a 2-core machine a million crops go through
it in minutes: the bench measures what grows with the project (reading, decoding,
matching, storing, ranking), not a CNN's arithmetic, which is the same per image at any
size. Time per instance and peak RSS are reported per task; ratios 1M / 100k at the end.
On a shared machine wall times swing with others' load, so the time ratios are taken on the
process's CPU seconds (one torch thread; wall figures are reported beside them).

Usage: python bench/scale.py [--sizes 100000,1000000] [--root /tmp/idstudio-scale] [--keep] [--reuse]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEOPLE = 8  # per frame
FRAMES = 1250  # per video: 10k instances a video
CROP_H, CROP_W = 64, 32
MODEL = dict(arch="bench_tiny", dim=64, height=32, width=16)
TASKS = ("mine", "embed", "train", "eval", "gui")


def register_tiny() -> None:
    """A tiny backbone for the bench (see the module docstring)."""
    from torch import nn

    from idstudio.core.model import register_backbone

    def build(last_stride: int):
        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        return nn.Sequential(block(3, 16), block(16, 32), block(32, 64)), 64

    register_backbone("bench_tiny", build)


def peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "children_peak_rss_mb": round(children, 1)}


# ---- the synthetic project ------------------------------------------------------------------------
def crops_for(identity: np.ndarray, frame: np.ndarray, rng: np.random.Generator) -> list[bytes]:
    """Person-like 64x32 JPEGs: head, top and bottom colours of the identity, per-crop
    brightness and noise."""
    import cv2

    palette = np.random.default_rng(12345).integers(30, 226, (100_000, 3, 3))  # identity -> 3 colours
    band = np.r_[np.zeros(12, int), np.ones(24, int), np.full(CROP_H - 36, 2)]
    imgs = palette[identity % len(palette)][:, band]  # (n, H, 3)
    imgs = np.repeat(imgs[:, :, None, :], CROP_W, axis=2).astype(np.int16)
    imgs += rng.integers(-25, 26, (len(identity), 1, 1, 1))  # lighting
    imgs += rng.integers(-12, 13, imgs.shape, dtype=np.int16)
    imgs = np.clip(imgs, 0, 255).astype(np.uint8)
    return [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for img in imgs]


def generate(root: Path, n: int, seed: int = 0) -> dict:
    from idstudio.core.store import Project

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    per_video = PEOPLE * FRAMES
    n_videos = max(1, n // per_video)
    project = Project.create(root)
    chunk = 250  # frames per write batch (2,000 instances)
    for v in range(n_videos):
        vid = project.add_video(name=f"scale-{v:04d}", path=f"synthetic://{v}", kind="video", camera=f"cam{v}",
                                fingerprint=f"scale-{seed}-{v}", width=1280, height=720, fps=25.0, n_frames=FRAMES,
                                stride=1, detector="gt")
        # two consecutive videos are two cameras that see the same 8 people
        people = (v // 2) * PEOPLE + np.arange(PEOPLE) + 1
        speed = rng.uniform(1.0, 3.0, PEOPLE)
        x0, y0 = rng.uniform(0, 1100, PEOPLE), rng.uniform(100, 500, PEOPLE)
        for f0 in range(0, FRAMES, chunk):
            frames = np.arange(f0, min(f0 + chunk, FRAMES))
            ff = np.repeat(frames, PEOPLE)
            pp = np.tile(np.arange(PEOPLE), len(frames))
            x = (x0[pp] + speed[pp] * ff) % 1200
            y = y0[pp] + 5 * np.sin(ff / 20 + pp)
            rows = [{"frame": int(f), "x": float(a), "y": float(b), "w": 40.0, "h": 100.0, "score": 1.0,
                     "source": "gt", "identity": int(people[p]), "camera": f"cam{v}"}
                    for f, a, b, p in zip(ff, x, y, pp)]
            project.add_frames_and_instances(vid, [(int(f), None) for f in frames], rows,
                                             crops_for(people[pp], ff, rng), last_frame=int(frames[-1]))
        project.update_video(vid, status="complete", n_frames=FRAMES)
    n_made = project.count("instances")
    project.close()
    size = sum(p.stat().st_size for p in root.iterdir() if p.is_file())
    return {"instances": int(n_made), "videos": n_videos, "seconds": round(time.perf_counter() - t0, 1),
            "disk_mb": round(size / 2 ** 20, 1)}


def checkpoint(root: Path) -> Path:
    """The bench model, saved once as a checkpoint file (random init, seed 0)."""
    from idstudio.core.model import ModelSpec, build_model, save_checkpoint

    path = root / "bench-model.pt"
    if not path.exists():
        model, _ = build_model(ModelSpec(**MODEL, last_stride=2), weights="none", seed=0)
        save_checkpoint(path, model)
    return path


# ---- tasks (each in its own process) ------------------------------------------------------------------
def task_mine(root: Path, args) -> dict:
    from idstudio.services.mining import MineConfig, mine

    cfg = MineConfig(checkpoint=str(checkpoint(root)), batch_size=512, spatial_gate="on", device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    out = mine(root, cfg)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "cpu_us_per_instance": round(cpu / out["instances"] * 1e6, 2),
            "instances": out["instances"], "pairs": out["n_pairs"],
            "round_id": out["round_id"], "us_per_instance": round(seconds / out["instances"] * 1e6, 2),
            "seconds_forward": out["seconds_forward"], "seconds_match": out["seconds_match"],
            "seconds_store": out["seconds_store"], "precision": out["precision"]}


def task_embed(root: Path, args) -> dict:
    from idstudio.core.store import Project
    from idstudio.services.evaluation import embed

    with Project.open(root) as project:
        t0, c0 = time.perf_counter(), time.process_time()
        out = embed(project, checkpoint=str(checkpoint(root)), rebuild=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "instances": out["n"],
            "us_per_instance": round(seconds / out["n"] * 1e6, 2), "cpu_us_per_instance": round(cpu / out["n"] * 1e6, 2)}


def task_train(root: Path, args) -> dict:
    from idstudio.core.jobs import JobContext, metric_series, read_events
    from idstudio.core.store import Project
    from idstudio.services.train_config import TrainConfig
    from idstudio.services.training import train

    with Project.open(root) as project:
        round_id = project.scalar("SELECT MAX(id) FROM mining_rounds")
    if round_id is None:
        raise SystemExit("run the mine task first")
    cfg = TrainConfig(**MODEL, weights="none", colour="off", freeze=0.0, sampler="pairs", epochs=2,
                      steps_per_epoch=args.steps, batch_size=64, remine_every=0, eval_every=0, warmup_steps=1,
                      start_round=int(round_id), device="cpu", workers=0, amp=False)
    class StepClock(JobContext):
        """Process CPU seconds at each step of the last (warm) epoch."""
        ticks: list[float] = []

        def progress(self, done, total, message=""):
            if message == f"epoch {cfg.epochs}/{cfg.epochs}":
                self.ticks.append(time.process_time())
            super().progress(done, total, message)

    ctx = StepClock()
    t0 = time.perf_counter()
    summary = train(root, cfg, ctx)
    seconds = time.perf_counter() - t0
    cpu_per_step = (ctx.ticks[-1] - ctx.ticks[0]) / max(len(ctx.ticks) - 1, 1)
    events = read_events(root / "runs" / summary["run_id"] / "metrics.jsonl")  # noqa: F841 - kept for wall figures
    pairs_per_s = metric_series(events)["train/pairs_per_s"][-1][1]  # the warm (second) epoch
    return {"seconds": round(seconds, 2), "steps": 2 * args.steps, "batch": cfg.batch_size,
            "pairs_per_s": round(pairs_per_s, 1), "steps_per_s": round(pairs_per_s / cfg.batch_size, 3),
            "cpu_s_per_step": round(cpu_per_step, 3), "steps_per_cpu_s": round(1 / max(cpu_per_step, 1e-9), 3)}


def task_eval(root: Path, args) -> dict:
    from idstudio.core import embed as core_embed
    from idstudio.core import evaluate as ev
    from idstudio.core.store import Project
    from idstudio.services.evaluation import load

    with Project.open(root) as project:
        loaded = load(project, str(checkpoint(root)))
        cached = core_embed.load_cached(project, loaded.cache_key, "videos")
        if cached is None:
            raise SystemExit("run the embed task first")
        ids, feats = cached
        table = project.instance_table()
    if not np.array_equal(table.id, ids):
        raise SystemExit("the cached embeddings are not those of the project's instances")
    nq = min(1000, len(ids) // 10)
    t0 = time.perf_counter()
    # the last 1,000 instances ask, every other one is the gallery (a slice: no copy of the memmap)
    res = ev.evaluate_features(np.asarray(feats[-nq:], np.float32), feats[:-nq], table.identity[-nq:],
                               table.camera[-nq:], table.identity[:-nq], table.camera[:-nq], keep_top=10)
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 2), "queries": nq, "gallery": int(len(ids) - nq),
            "ms_per_query": round(seconds / nq * 1e3, 2), "mAP": round(res.mAP, 4), "rank1": round(res.rank(1), 4),
            "n_queries_used": res.n_queries}


def task_gui(root: Path, args) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer

    from idstudio.gui.app import make_app

    app = make_app([])
    settings = Path(tempfile.mkdtemp(prefix="idstudio-scale-settings-"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(settings))
    from idstudio.gui.main_window import MainWindow

    def pump(seconds: float, until=None) -> bool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            if until is not None and until():
                return True
            time.sleep(0.001)
        return until() if until is not None else True

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    pump(0.5)
    view = window.views["data"]

    class PaintSpy(QObject):
        at = None

        def eventFilter(self, obj, event):  # noqa: N802
            if event.type() == QEvent.Type.Paint and self.at is None:
                self.at = time.perf_counter()
            return False

    spy = PaintSpy()
    grid = view.grid
    grid.viewport().installEventFilter(spy)
    t0 = time.perf_counter()
    window.open_project(root)
    window.show_view("data")
    grid.viewport().update()
    painted = pump(30, lambda: spy.at is not None and view.model.rowCount() > 0)
    first_paint = (spy.at - t0) if spy.at else None
    rows = view.model.rowCount()
    # scroll the grid through its rows while a 10 ms timer measures the event loop's lateness
    lateness: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lateness.append(max(0.0, (now - last[0]) * 1000 - 10))
        last[0] = now
        bar = grid.verticalScrollBar()
        bar.setValue(min(bar.maximum(), bar.value() + max(1, bar.pageStep() // 2)))

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    pump(1.0)
    last[0] = time.perf_counter()
    timer.start()
    pump(args.scroll_seconds)
    timer.stop()
    lateness.sort()
    p99 = lateness[min(len(lateness) - 1, int(round(0.99 * (len(lateness) - 1))))] if lateness else None
    window.session.runner.shutdown()
    for v in window.views.values():
        if hasattr(v, "shutdown"):
            v.shutdown()
    shutil.rmtree(settings, ignore_errors=True)
    return {"first_paint_s": round(first_paint, 3) if first_paint is not None else None, "painted": bool(painted),
            "grid_rows": int(rows), "stall_p99_ms": round(p99, 1) if p99 is not None else None,
            "stall_max_ms": round(lateness[-1], 1) if lateness else None, "ticks": len(lateness)}


def task_pipeline(root: Path, args) -> dict:
    """Generate, mine, embed and train in one process (the suite's slow test): its peak RSS,
    and ``base_rss_mb``, the RSS once the libraries and the model are loaded."""
    from idstudio.core.model import ModelSpec, build_model

    build_model(ModelSpec(**MODEL), weights="none")
    base = peak_rss_mb()["peak_rss_mb"]
    out = {"generate": generate(root, args.n)}
    for name in ("mine", "embed", "train"):
        out[name] = globals()[f"task_{name}"](root, args)
    out["base_rss_mb"] = base
    return out


def run_task(name: str, root: Path, args) -> dict:
    """One task in a fresh interpreter: its own peak RSS."""
    cmd = [sys.executable, __file__, "--task", name, "--project", str(root), "--steps", str(args.steps),
           "--scroll-seconds", str(args.scroll_seconds)]
    if name in ("generate", "pipeline"):
        cmd += ["--n", str(args.n_now)]
    if args.input:
        cmd += ["--input", args.input]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="instance counts, comma-separated")
    ap.add_argument("--root", type=Path, default=Path("/tmp/idstudio-scale"), help="where the projects are written")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--steps", type=int, default=20, help="training steps per epoch (two epochs)")
    ap.add_argument("--scroll-seconds", type=float, default=5.0)
    ap.add_argument("--keep", action="store_true", help="keep the projects")
    ap.add_argument("--reuse", action="store_true", help="reuse projects generated earlier with --keep")
    ap.add_argument("--input", default="", help="model input HxW (default 32x16)")
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.input:
        MODEL["height"], MODEL["width"] = (int(v) for v in args.input.lower().split("x"))
    if args.task:  # a child: one measurement, one JSON line
        register_tiny()
        import torch

        torch.set_num_threads(1)  # CPU seconds = work, with no OpenMP spinning under contention
        if args.task == "generate":
            out = generate(args.project, args.n)
        else:
            out = globals()[f"task_{args.task}"](args.project, args)
        out.update(peak_rss_mb())
        print(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)  # skip interpreter and Qt teardown (not measured)
    results: dict[str, dict] = {}
    tasks = [t for t in args.tasks.split(",") if t]
    for n in [int(s) for s in args.sizes.split(",")]:
        root = args.root / f"n{n}"
        args.n_now = n
        done = root / "bench-generated.json"
        if args.reuse and done.exists():  # generated earlier (--keep): only the measurements run again
            res = {"generate": json.loads(done.read_text())}
        else:
            shutil.rmtree(root, ignore_errors=True)
            root.parent.mkdir(parents=True, exist_ok=True)
            res = {"generate": run_task("generate", root, args)}
            if "error" not in res["generate"]:
                done.write_text(json.dumps(res["generate"]))
        print(f"N={n} generate: {res['generate']}", flush=True)
        for task in tasks:
            res[task] = run_task(task, root, args)
            print(f"N={n} {task}: {res[task]}", flush=True)
        results[str(n)] = res
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary: dict = {"sizes": results, "model": MODEL}
    sizes = list(results)
    if len(sizes) >= 2:
        small, large = results[sizes[0]], results[sizes[-1]]

        def ratio(task: str, key: str) -> float | None:
            a, b = small.get(task, {}).get(key), large.get(task, {}).get(key)
            return round(b / a, 3) if a and b else None

        summary["ratios"] = {f"{t}_rss": ratio(t, "peak_rss_mb") for t in ("mine", "embed", "train", "eval", "gui")}
        # time ratios on process CPU seconds (the machine is shared: wall times swing with others' load)
        summary["ratios"].update(mine_time_per_instance=ratio("mine", "cpu_us_per_instance"),
                                 embed_time_per_instance=ratio("embed", "cpu_us_per_instance"),
                                 train_step_throughput=ratio("train", "steps_per_cpu_s"),
                                 mine_wall_per_instance=ratio("mine", "us_per_instance"),
                                 embed_wall_per_instance=ratio("embed", "us_per_instance"),
                                 train_wall_step_throughput=ratio("train", "steps_per_s"),
                                 eval_ms_per_query=ratio("eval", "ms_per_query"))
        summary["largest"] = {"peak_rss_mb": max((large.get(t, {}).get("peak_rss_mb") or 0) for t in ("mine", "embed", "train")),
                              "gui_first_paint_s": large.get("gui", {}).get("first_paint_s"),
                              "gui_stall_p99_ms": large.get("gui", {}).get("stall_p99_ms")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

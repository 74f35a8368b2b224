"""Concurrent writers: two imports and a mining round into one project at once, ROUNDS times.

Each round starts a fresh project holding one imported video, then runs at the same time,
as separate processes: `import-video P a.avi --det a.txt`, `import-video P b.avi --det
b.txt` and `mine P`. The imports commit small batches (8 frames) so their writes interleave
many times per round. A round passes when every process exits 0, both databases pass
`PRAGMA integrity_check`, and every instance of a and b has exactly the boxes and the crop
(byte for byte) of a single-writer import of the same video.

    python bench/concurrency.py [--rounds 20] [--frames 120]

Last line: one JSON object with "rounds", "passed" and the failures (goal: passed == rounds).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Runs the CLI with small import batches, so two imports' commits interleave often.
CLI_SMALL_BATCHES = (
    "import sys; from idstudio.services import ingest; ingest.BATCH_FRAMES = 8; "
    "from idstudio.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


def make_walk_video(path: Path, n_frames: int = 120, size=(192, 144), people: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """A video of coloured walkers on a textured background (MJPG .avi) and its MOT det.txt."""
    w, h = size
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 160, (h, w, 3), dtype=np.uint8)
    colours = rng.integers(0, 255, (people, 3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    lines = []
    for f in range(1, n_frames + 1):
        frame = background.copy()
        for p in range(people):
            x = int(5 + (2 + p) * f + 40 * p) % (w - 24)
            y = 20 + 25 * p % (h - 70)
            cv2.rectangle(frame, (x, y), (x + 18, y + 52), tuple(int(c) for c in colours[p]), -1)
            lines.append(f"{f},-1,{x},{y},19,53,0.9")
        writer.write(frame)
    writer.release()
    det = path.with_suffix(".det.txt")
    det.write_text("\n".join(lines) + "\n")
    return path, det


def crops_by_box(project_dir: Path) -> dict[tuple, bytes]:
    """(video name, frame, x, y, w, h) -> crop JPEG bytes, for every video instance."""
    meta = sqlite3.connect(project_dir / "idstudio.db")
    crops = sqlite3.connect(project_dir / "crops.db")
    try:
        jpeg = dict(crops.execute("SELECT instance_id, jpeg FROM crops").fetchall())
        out = {}
        for iid, name, frame, x, y, w, h in meta.execute(
                "SELECT i.id, v.name, i.frame, i.x, i.y, i.w, i.h FROM instances i JOIN videos v ON v.id = i.video_id"):
            out[(name, frame, x, y, w, h)] = jpeg.get(iid)
        return out
    finally:
        meta.close()
        crops.close()


def integrity(project_dir: Path) -> list[str]:
    bad = []
    for name in ("idstudio.db", "crops.db"):
        conn = sqlite3.connect(project_dir / name)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
        if result != "ok":
            bad.append(f"{name}: {result}")
    return bad


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI_SMALL_BATCHES, *args]


def prepare(workdir: Path, frames: int = 120) -> dict[str, object]:
    """The three videos and the single-writer reference crops of a and b."""
    videos = {name: make_walk_video(workdir / f"{name}.avi", frames if name != "c" else max(frames // 3, 12), seed=seed)
              for seed, name in enumerate("abc")}
    reference: dict[tuple, bytes] = {}
    for name in "ab":
        ref = workdir / f"ref-{name}"
        video, det = videos[name]
        subprocess.run(_cli("import-video", str(ref), str(video), "--det", str(det)), check=True,
                       capture_output=True, text=True)
        reference.update(crops_by_box(ref))
    return {"videos": videos, "reference": reference}


def one_round(workdir: Path, number: int, prepared: dict[str, object]) -> list[str]:
    """Problems found in one round (empty: it passed)."""
    videos, reference = prepared["videos"], prepared["reference"]
    project = workdir / f"round-{number}"
    video_c, det_c = videos["c"]
    subprocess.run(_cli("import-video", str(project), str(video_c), "--det", str(det_c)), check=True,
                   capture_output=True, text=True)
    procs = {
        name: subprocess.Popen(_cli("import-video", str(project), str(videos[name][0]), "--det", str(videos[name][1]), "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in "ab"
    }
    procs["mine"] = subprocess.Popen(_cli("mine", str(project), "--dim", "32", "--json"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    problems = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            problems.append(f"{name} exited {proc.returncode}: {err.strip().splitlines()[-1:] }")
    problems += integrity(project)
    found = crops_by_box(project)
    for key, jpeg in reference.items():
        if found.get(key) != jpeg:
            problems.append(f"crop of {key} differs from the single-writer import")
            break
    extra = [k for k in found if k[0] != "c.avi" and k not in reference]
    if extra:
        problems.append(f"{len(extra)} instances that a single-writer import does not have")
    if not problems:
        import shutil

        shutil.rmtree(project, ignore_errors=True)
    return problems


def run(rounds: int = 20, frames: int = 120, workdir: Path | None = None) -> dict[str, object]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="idstudio-concurrency-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepared = prepare(work, frames)
        failures = {}
        for number in range(rounds):
            problems = one_round(work, number, prepared)
            if problems:
                failures[number] = problems
            print(f"round {number + 1}/{rounds}: {'ok' if not problems else '; '.join(problems)}", flush=True)
    return {"rounds": rounds, "passed": rounds - len(failures), "failures": failures,
            "instances_per_round": len(prepared["reference"]),
            "seconds_per_round": round((time.perf_counter() - started) / max(rounds, 1), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    result = run(args.rounds, args.frames)
    print(json.dumps(result))
    return 0 if result["passed"] == result["rounds"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

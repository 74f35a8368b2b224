"""Ingest throughput with MOT boxes over bare sequential decoding of the same video.

Both are measured in this one run, on three videos made on the fly in a temporary folder:

- ``demo``: one camera of the synthetic world (384x288, default world size, 600 frames),
  imported with its noisy detections;
- ``1080p``: real 1920x1080 MOT17 frames (``../shared/data/real/MOT17-mini``, MOT17-04:
  8 frames, 42 pedestrians each) played forwards and backwards into a longer video, with
  their gt boxes;
- ``720p``: the same frames and boxes scaled to 1280x720.

Each ratio is ingest frames/s over decode frames/s (goal >= 0.5, aim 0.8: cropping, JPEG
encoding and writes hidden behind decoding). Last line: one JSON object; "ratio" is the
demo video's.

    python bench/ingest.py [--videos demo,720p,1080p] [--frames 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idstudio.core import synth  # noqa: E402
from idstudio.core.mot import read_mot_file  # noqa: E402
from idstudio.core.sources import FolderSource  # noqa: E402
from idstudio.services import ingest  # noqa: E402

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "MOT17-mini" / "MOT17-04-FRCNN"


@dataclasses.dataclass
class Clip:
    video: Path
    det: Path
    gt: Path
    width: int
    height: int


def bare_decode(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        frames += 1
    capture.release()
    return frames, time.perf_counter() - start


def demo_clip(tmp: Path) -> Clip:
    config = dataclasses.replace(synth.SynthConfig(), n_cameras=2, n_frames=600)
    camera = synth.generate(tmp / "world", config).cameras[0]
    return Clip(camera.video, camera.det, camera.gt, camera.width, camera.height)


def real_clip(tmp: Path, size: tuple[int, int], n_frames: int) -> Clip:
    """MOT17 frames played forwards then backwards (real people and motion, any length),
    scaled to ``size``, with their pedestrian gt boxes as both detections and gt."""
    source = FolderSource(REAL / "img1")
    gt = read_mot_file(REAL / "gt" / "gt.txt", "gt")
    by_frame = gt.by_frame()
    scale = size[0] / source.width
    images = []
    for frame in source.frames():
        image = frame.image if scale == 1 else cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
        images.append((frame.number, image))
    cycle = images + images[-2:0:-1]  # 1..8..2, then again from 1
    name = f"mot17-{size[1]}p"
    video = tmp / f"{name}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    det_lines, gt_lines = [], []
    for out in range(1, n_frames + 1):
        number, image = cycle[(out - 1) % len(cycle)]
        writer.write(image)
        for row in by_frame.get(number, []):
            x, y, w, h = (gt.boxes[row] * scale).tolist()
            det_lines.append(f"{out},-1,{x:.1f},{y:.1f},{w:.1f},{h:.1f},1")
            gt_lines.append(f"{out},{int(gt.ident[row])},{x:.1f},{y:.1f},{w:.1f},{h:.1f},1,1,1.0")
    writer.release()
    det, gt_file = tmp / f"{name}.det.txt", tmp / f"{name}.gt.txt"
    det.write_text("\n".join(det_lines) + "\n")
    gt_file.write_text("\n".join(gt_lines) + "\n")
    return Clip(video, det, gt_file, size[0], size[1])


def measure(clip: Clip, tmp: Path, rounds: int) -> dict:
    bare_decode(clip.video)  # warm the page cache for both measurements
    decodes, ingests = [], []
    for i in range(rounds):  # interleaved, so a busy moment on the machine hits both
        frames, decode_s = bare_decode(clip.video)
        decodes.append(decode_s)
        started = time.perf_counter()
        result = ingest.import_video(tmp / f"p-{clip.video.stem}-{i}", clip.video, det_file=clip.det, gt_file=clip.gt)
        ingests.append(time.perf_counter() - started)
    decode_fps = frames / min(decodes)
    ingest_fps = result["frames"] / min(ingests)
    return {"video": f"{clip.width}x{clip.height}", "frames": frames, "instances": result["instances"],
            "decode_fps": round(decode_fps, 1), "ingest_fps": round(ingest_fps, 1),
            "ratio": round(ingest_fps / decode_fps, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="demo,720p,1080p", help="comma-separated: demo, 720p, 1080p")
    parser.add_argument("--frames", type=int, default=300, help="length of the 720p and 1080p videos")
    parser.add_argument("--rounds", type=int, default=3, help="decode and ingest pairs per video; the best of each counts")
    args = parser.parse_args(argv)
    wanted = [v.strip() for v in args.videos.split(",") if v.strip()]
    figures: dict = {"encode_workers": ingest.ENCODE_WORKERS}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in wanted:
            if name == "demo":
                clip = demo_clip(tmp)
            elif name in ("720p", "1080p"):
                if not REAL.is_dir():
                    print(f"{name}: skipped, {REAL} is absent")
                    continue
                clip = real_clip(tmp, (1280, 720) if name == "720p" else (1920, 1080), args.frames)
            else:
                parser.error(f"unknown video {name!r}")
            result = measure(clip, tmp, args.rounds)
            figures[name] = result
            print(f"{name} {result['video']}: decode {result['decode_fps']} frames/s, ingest {result['ingest_fps']} "
                  f"frames/s ({result['instances']} crops), ratio {result['ratio']} (goal >= 0.5, aim 0.8)", flush=True)
    if "demo" in figures:
        figures["ratio"] = figures["demo"]["ratio"]
    for name in ("720p", "1080p"):
        if name in figures:
            figures[f"ratio_{name}"] = figures[name]["ratio"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Ingest throughput with MOT detections over bare sequential decoding of the same video.

Both are measured in this one run on one synthetic camera video (default world size).
Last line: one JSON object with "ratio" (goal >= 0.5: cropping, JPEG encoding and writes
cost no more than decoding).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idstudio.core import synth  # noqa: E402
from idstudio.services import ingest  # noqa: E402


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(synth.SynthConfig(), n_cameras=2, n_frames=600)
        world = synth.generate(Path(tmp) / "world", config)
        camera = world.cameras[0]
        bare_decode(camera.video)  # warm the page cache for both measurements
        rounds = []
        for i in range(3):
            frames, decode_s = bare_decode(camera.video)
            started = time.perf_counter()
            result = ingest.import_video(Path(tmp) / f"p{i}", camera.video, det_file=camera.det, gt_file=camera.gt)
            ingest_s = time.perf_counter() - started
            rounds.append((decode_s, ingest_s, result))
        decode_s, ingest_s, result = min(rounds, key=lambda r: r[1])
        decode_best = min(r[0] for r in rounds)
    figures = {
        "video": f"{camera.width}x{camera.height}",
        "frames": frames,
        "instances": result["instances"],
        "decode_fps": round(frames / decode_best, 1),
        "ingest_fps": round(result["frames"] / ingest_s, 1),
        "ratio": round((result["frames"] / ingest_s) / (frames / decode_best), 3),
    }
    print(f"decode {figures['decode_fps']} frames/s, ingest {figures['ingest_fps']} frames/s "
          f"({figures['instances']} crops), ratio {figures['ratio']} (goal >= 0.5)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

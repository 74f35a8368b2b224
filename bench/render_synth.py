"""Render the synthetic world to PNGs for a look (and README screenshots).

    python bench/render_synth.py OUT_DIR [--small] [--seed N]

Writes OUT_DIR/synth_frames.png (three frames per camera, gt boxes drawn in
synth_frames_boxes.png) and OUT_DIR/synth_market.png (query | gallery rows of the held-out
split). The last line printed is one JSON object with the paths and the generation time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idstudio.core import synth  # noqa: E402


def _frames(cam: synth.Camera, picks: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(cam.video))
    out, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i in picks:
            out.append((i, frame))
        i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="out/synth", help="folder for the PNGs")
    ap.add_argument("--small", action="store_true", help="the small test world")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = synth.SynthConfig.small(seed=args.seed) if args.small else synth.SynthConfig(seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        world = synth.generate(Path(tmp) / "world", cfg)
        gen_s = time.perf_counter() - t0
        rows, rows_boxes = [], []
        for cam in world.cameras:
            picks = [int(v) for v in np.linspace(cam.n_frames * 0.2, cam.n_frames - 1, 3)]
            gt = np.loadtxt(cam.gt, delimiter=",", ndmin=2)
            plain, boxed = [], []
            for i, frame in _frames(cam, picks):
                plain.append(frame)
                b = frame.copy()
                for r in gt[gt[:, 0] == i + 1]:
                    x, y, w, h = (int(round(v)) for v in r[2:6])
                    cv2.rectangle(b, (x, y), (x + w, y + h), (0, 255, 255), 1)
                    cv2.putText(b, str(int(r[1])), (x, max(8, y - 2)), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 255, 255), 1)
                boxed.append(b)
            rows.append(np.hstack(plain))
            rows_boxes.append(np.hstack(boxed))
        frames_png, boxes_png = out / "synth_frames.png", out / "synth_frames_boxes.png"
        cv2.imwrite(str(frames_png), np.vstack(rows))
        cv2.imwrite(str(boxes_png), np.vstack(rows_boxes))

        q = sorted((world.market_dir / "query").glob("*.jpg"))
        seen, grid = set(), []
        for p in q:
            pid = p.name.split("_")[0]
            if pid in seen:
                continue
            seen.add(pid)
            row = [cv2.imread(str(p)), np.full((128, 6, 3), 255, np.uint8)]
            row += [cv2.imread(str(g)) for g in sorted((world.market_dir / "bounding_box_test").glob(pid + "_*.jpg"))[:7]]
            while len(row) < 9:
                row.append(np.zeros((128, 64, 3), np.uint8))
            grid.append(np.hstack(row))
            if len(grid) == 12:
                break
        half = (len(grid) + 1) // 2
        left, right = grid[:half], grid[half:]
        while len(right) < len(left):
            right.append(np.zeros_like(left[0]))
        market_png = out / "synth_market.png"
        cv2.imwrite(str(market_png), np.hstack([np.vstack(left), np.full((128 * half, 12, 3), 255, np.uint8),
                                                np.vstack(right)]))
    print(json.dumps({"frames": str(frames_png), "frames_boxes": str(boxes_png), "market": str(market_png),
                      "generate_s": round(gen_s, 2)}))


if __name__ == "__main__":
    main()

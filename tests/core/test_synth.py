"""The synthetic world: determinism, file formats, held-out Market split, detector noise."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from idstudio.core import synth

MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d+)s(\d+)_(\d{6})_(\d{2})\.jpg$")


def _rows(path: Path) -> np.ndarray:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return np.array([[float(v) for v in ln.split(",")] for ln in lines])


def _market(folder: Path) -> list[tuple[int, int, str]]:
    out = []
    for p in sorted(folder.glob("*.jpg")):
        m = MARKET_NAME.match(p.name)
        assert m, f"bad Market name {p.name}"
        out.append((int(m.group(1)), int(m.group(2)), p.name))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between xywh rows a (n,4) and b (m,4)."""
    ax0, ay0, ax1, ay1 = a[:, 0, None], a[:, 1, None], (a[:, 0] + a[:, 2])[:, None], (a[:, 1] + a[:, 3])[:, None]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    return inter / (a[:, 2, None] * a[:, 3, None] + b[:, 2] * b[:, 3] - inter)


def test_manifest_round_trip(small_world):
    world = synth.World.load(small_world.root)
    cfg = synth.SynthConfig.small()
    assert world.config == cfg
    assert len(world.cameras) == cfg.n_cameras
    assert (world.root / "world.json").is_file()
    for cam in world.cameras:
        assert cam.video.is_file() and cam.gt.is_file() and cam.det.is_file()
        assert (cam.width, cam.height, cam.n_frames) == (cfg.width, cfg.height, cfg.n_frames)
    assert (world.market_dir / "query").is_dir() and (world.market_dir / "bounding_box_test").is_dir()


def test_same_seed_gives_identical_files(tmp_path, small_world):
    again = synth.generate(tmp_path / "again", synth.SynthConfig.small())
    for a, b in zip(small_world.cameras, again.cameras):
        assert a.gt.read_bytes() == b.gt.read_bytes()
        assert a.det.read_bytes() == b.det.read_bytes()
    assert (small_world.root / "world.json").read_bytes() == (again.root / "world.json").read_bytes()
    names_a = sorted(p.name for p in small_world.market_dir.rglob("*.jpg"))
    names_b = sorted(p.name for p in again.market_dir.rglob("*.jpg"))
    assert names_a == names_b
    q = names_a[0]
    sub = "query" if (small_world.market_dir / "query" / q).exists() else "bounding_box_test"
    assert (small_world.market_dir / sub / q).read_bytes() == (again.market_dir / sub / q).read_bytes()
    # frames are deterministic too (decode the first frames of both videos)
    ca, cb = cv2.VideoCapture(str(small_world.cameras[0].video)), cv2.VideoCapture(str(again.cameras[0].video))
    for _ in range(5):
        ok_a, fa = ca.read()
        ok_b, fb = cb.read()
        assert ok_a and ok_b and np.array_equal(fa, fb)


def test_another_seed_differs(tmp_path, small_world):
    other = synth.generate(tmp_path / "other", synth.SynthConfig.small(seed=1))
    assert other.cameras[0].gt.read_bytes() != small_world.cameras[0].gt.read_bytes()


def test_videos_decode_with_all_frames(small_world):
    for cam in small_world.cameras:
        cap = cv2.VideoCapture(str(cam.video))
        assert cap.isOpened()
        n, last = 0, None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (cam.height, cam.width, 3)
            n, last = n + 1, frame
        assert n == cam.n_frames
        # textured, not a flat picture
        assert last is not None and last.std() > 10


def test_gt_and_det_parse_and_fit_the_frames(small_world):
    for cam in small_world.cameras:
        gt = _rows(cam.gt)
        det = _rows(cam.det)
        assert gt.shape[1] == 9 and det.shape[1] == 10
        for rows in (gt, det):
            assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= cam.n_frames
            assert (rows[:, 2] >= 0).all() and (rows[:, 3] >= 0).all()
            assert (rows[:, 2] + rows[:, 4] <= cam.width + 0.11).all()
            assert (rows[:, 3] + rows[:, 5] <= cam.height + 0.11).all()
            assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()
        assert (gt[:, 6] == 1).all() and (gt[:, 7] == 1).all()
        assert ((gt[:, 8] > 0) & (gt[:, 8] <= 1)).all()
        assert (det[:, 1] == -1).all() and ((det[:, 6] > 0) & (det[:, 6] < 1)).all()
        # several people at once, and people enter and leave (tracks shorter than the video)
        per_frame = np.bincount(gt[:, 0].astype(int))
        assert per_frame.max() >= 3
        lengths = np.bincount(gt[:, 1].astype(int))
        assert lengths[lengths > 0].min() < cam.n_frames
        # some occlusion happens
        assert (gt[:, 8] < 0.9).any()
        # full-view people are 40-160 px high
        full = gt[gt[:, 8] > 0.99]
        assert 40 <= np.median(full[:, 5]) <= 160


def test_det_has_misses_and_false_positives(small_world):
    missed = fps = total_gt = total_det = 0
    for cam in small_world.cameras:
        gt, det = _rows(cam.gt), _rows(cam.det)
        for f in range(1, cam.n_frames + 1):
            g, d = gt[gt[:, 0] == f], det[det[:, 0] == f]
            total_gt += len(g)
            total_det += len(d)
            if len(g) == 0:
                fps += len(d)
                continue
            if len(d) == 0:
                missed += len(g)
                continue
            iou = _iou(g[:, 2:6], d[:, 2:6])
            missed += int((iou.max(axis=1) < 0.3).sum())
            fps += int((iou.max(axis=0) < 0.1).sum())
    assert 0.03 <= missed / total_gt <= 0.25
    assert fps >= 5
    # jitter: detections are not copies of gt boxes
    assert total_det > 0.7 * total_gt


def test_market_split_is_held_out_and_cross_camera(small_world):
    world = small_world
    query = _market(world.market_dir / "query")
    gallery = _market(world.market_dir / "bounding_box_test")
    q_ids = {pid for pid, _, _ in query}
    assert q_ids and not (q_ids & {0, -1})
    assert q_ids == set(world.eval_ids)
    video_ids = set()
    for cam in world.cameras:
        video_ids |= set(_rows(cam.gt)[:, 1].astype(int).tolist())
    assert video_ids and not (video_ids & q_ids), "eval identities must not walk in the videos"
    g_cams = defaultdict(set)
    for pid, c, _ in gallery:
        g_cams[pid].add(c)
    per_id_cam = defaultdict(int)
    for pid, c, _ in query:
        per_id_cam[(pid, c)] += 1
        assert g_cams[pid] - {c}, f"query {pid} in camera {c} has no cross-camera gallery match"
    assert max(per_id_cam.values()) == 1  # one query per identity per camera
    cams_of = defaultdict(set)
    for pid, c, _ in query + gallery:
        cams_of[pid].add(c)
    assert all(len(cams_of[pid]) >= 2 for pid in q_ids)
    assert any(pid == 0 for pid, _, _ in gallery) and any(pid == -1 for pid, _, _ in gallery)
    img = cv2.imread(str(world.market_dir / "query" / query[0][2]))
    assert img.shape == (128, 64, 3)


def test_progress_is_reported(tmp_path):
    from idstudio.core.jobs import JobContext

    events = []
    cfg = synth.SynthConfig.small()
    cfg.n_frames = 20
    synth.generate(tmp_path / "w", cfg, ctx=JobContext(events.append))
    prog = [e for e in events if e["type"] == "progress"]
    assert prog and prog[-1]["done"] == prog[-1]["total"]


def test_cancel_stops_generation(tmp_path):
    from idstudio.core.errors import JobCancelled
    from idstudio.core.jobs import JobContext

    ctx = JobContext()
    ctx.cancel()
    with pytest.raises(JobCancelled):
        synth.generate(tmp_path / "w", synth.SynthConfig.small(), ctx=ctx)

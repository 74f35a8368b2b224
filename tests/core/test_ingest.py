"""Ingest: sources, detectors, MOT/Market parsing, bad input, interruption and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from idstudio.core.boxes import assign_identities, assign_identities_by_frame, clip_boxes, iou_matrix
from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import ingest


def make_video(path: Path, n_frames: int = 60, size=(160, 120), people=2) -> tuple[Path, Path, Path]:
    """A video of coloured walkers on a textured background, with MOT gt and det files."""
    w, h = size
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    gt_lines, det_lines = [], []
    for f in range(1, n_frames + 1):
        frame = background.copy()
        for p in range(people):
            x, y = (5 + 2 * f + 50 * p) % (w - 20), 30 + 10 * p
            cv2.rectangle(frame, (x, y), (x + 16, y + 48), (40 + 80 * p, 200 - 60 * p, 90), -1)
            gt_lines.append(f"{f},{p + 1},{x},{y},17,49,1,1,1.0")
            det_lines.append(f"{f},-1,{x + 1},{y - 1},17,49,0.9")
        writer.write(frame)
    writer.release()
    gt, det = path.with_suffix(".gt.txt"), path.with_suffix(".det.txt")
    gt.write_text("\n".join(gt_lines) + "\n")
    det.write_text("\n".join(det_lines) + "\n")
    return path, gt, det


@pytest.fixture
def video(tmp_path):
    return make_video(tmp_path / "walk.mp4")


def test_boxes_clip_iou_and_identity_assignment():
    boxes, keep = clip_boxes(np.array([[-5, -5, 10, 10], [95, 0, 20, 10], [200, 200, 5, 5]]), 100, 100)
    assert boxes[0].tolist() == [0, 0, 5, 5] and boxes[1].tolist() == [95, 0, 5, 10]
    assert keep.tolist() == [True, True, False]
    assert iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10]]))[0, 0] == pytest.approx(50 / 150)
    ids = assign_identities(np.array([[0, 0, 10, 10], [50, 50, 10, 10]]), np.array([[1, 0, 10, 10], [100, 0, 5, 5]]), np.array([7, 8]))
    assert ids.tolist() == [7, -1]


def test_identities_assigned_for_all_frames_at_once_equal_the_per_frame_rule():
    from idstudio.core.mot import MotBoxes

    rng = np.random.default_rng(3)
    n_det, n_gt = 400, 300
    det_frames = rng.integers(1, 40, n_det)
    dets = rng.integers(0, 60, (n_det, 4)).astype(np.float32) + [0, 0, 4, 4]
    gt = MotBoxes(frame=rng.integers(1, 45, n_gt), ident=rng.integers(1, 30, n_gt),
                  boxes=rng.integers(0, 60, (n_gt, 4)).astype(np.float32) + [0, 0, 4, 4], score=np.ones(n_gt, np.float32))
    gt.boxes[5] = gt.boxes[6]  # a tie between two gt boxes of the same frame: the first wins
    gt.frame[6] = gt.frame[5]
    dets[7], det_frames[7] = gt.boxes[5], gt.frame[5]
    at_once = assign_identities_by_frame(det_frames, dets, gt.frame, gt.boxes, gt.ident)
    assert (assign_identities_by_frame(det_frames, dets, gt.frame, gt.boxes, gt.ident, chunk=50) == at_once).all()
    index = gt.by_frame()
    per_frame = np.concatenate([assign_identities(dets[i:i + 1], gt.boxes[index[f]], gt.ident[index[f]])
                                if f in index else [-1] for i, f in enumerate(det_frames.tolist())])
    assert (at_once == per_frame).all()
    assert at_once[7] == gt.ident[5] and (at_once >= 0).sum() > 20  # some matched, some not
    assert (at_once == -1).sum() > 20


def test_import_video_with_det_takes_gt_identities(tmp_path, video):
    path, gt, det = video
    result = ingest.import_video(tmp_path / "p", path, det_file=det, gt_file=gt)
    assert result["frames"] == 60 and result["instances"] == 120 and result["complete"]
    with Project.open(tmp_path / "p") as project:
        table = project.instance_table()
        assert sorted(set(table.identity.tolist())) == [1, 2]
        crops = project.crop_jpegs(table.id[:3])
        image = cv2.imdecode(np.frombuffer(crops[0], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[0] == 49 and image.shape[1] in (17, 18)
        assert project.count("frames") == 60


def test_stride_keeps_every_nth_frame(tmp_path, video):
    path, gt, det = video
    result = ingest.import_video(tmp_path / "p", path, det_file=det, stride=3)
    assert result["frames"] == 20
    with Project.open(tmp_path / "p") as project:
        assert sorted(project.frame_paths(1))[:3] == [1, 4, 7]
        assert project.video(1)["n_frames"] == 58  # last decoded frame number: 1 + 3 * 19


def test_motion_detector_finds_moving_people(tmp_path, video):
    path, gt, _ = video
    result = ingest.import_video(tmp_path / "p", path, detector="motion", gt_file=gt)
    assert result["instances"] > 60  # two walkers on most frames after warm-up
    with Project.open(tmp_path / "p") as project:
        identified = project.count("instances", "identity IS NOT NULL")
    assert identified / result["instances"] > 0.6  # flat-coloured walkers: blobs split at times


def test_same_video_twice_is_refused_and_nothing_lost(tmp_path, video):
    path, gt, det = video
    ingest.import_video(tmp_path / "p", path, det_file=det)
    with pytest.raises(UserError, match="already in this project"):
        ingest.import_video(tmp_path / "p", path, det_file=det)
    with Project.open(tmp_path / "p") as project:
        assert project.count("instances") == 120 and project.count("videos") == 1


def test_unreadable_and_empty_videos(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match="Cannot decode bad.mp4"):
        ingest.import_video(tmp_path / "p", bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        ingest.import_video(tmp_path / "p", empty)
    with pytest.raises(UserError, match="does not exist"):
        ingest.import_video(tmp_path / "p", tmp_path / "missing.mp4")


def test_truncated_video_keeps_decoded_frames(tmp_path, video):
    path, _, det = video
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    try:
        result = ingest.import_video(tmp_path / "p", cut, det_file=det)
    except UserError as exc:  # some containers cannot be opened at all once cut; others end early
        assert "Cannot decode" in str(exc) or "ends early" in str(exc)
        return
    assert 0 < result["frames"] <= 60


def test_malformed_det_lines_are_refused_before_writing(tmp_path, video):
    path, _, det = video
    lines = det.read_text().splitlines()
    lines[5] = "6,-1,10,20"
    det.write_text("\n".join(lines))
    with pytest.raises(UserError, match="line 6 has 4 fields"):
        ingest.import_video(tmp_path / "p", path, det_file=det)
    lines[5] = "6,-1,10,abc,5,5,1"
    det.write_text("\n".join(lines))
    with pytest.raises(UserError, match="line 6 has a field that is not a number"):
        ingest.import_video(tmp_path / "p", path, det_file=det)


def test_boxes_outside_the_frame_are_clipped_or_dropped(tmp_path, video):
    path, _, _ = video
    det = tmp_path / "odd.txt"
    det.write_text("1,-1,-10,-10,30,60,1\n2,-1,150,100,40,40,1\n3,-1,500,500,10,10,1\n")
    result = ingest.import_video(tmp_path / "p", path, det_file=det)
    assert result["instances"] == 2
    with Project.open(tmp_path / "p") as project:
        t = project.instance_table()
        assert t.boxes[0].tolist() == [0, 0, 20, 50]
        assert t.boxes[1].tolist() == [150, 100, 10, 20]


def test_no_detections_at_all_says_so_and_keeps_the_frames(tmp_path, video):
    path, _, _ = video
    det = tmp_path / "none.txt"
    det.write_text("999,-1,1,1,10,20,1\n")  # a frame the video does not have
    with pytest.raises(UserError, match="No people were found"):
        ingest.import_video(tmp_path / "p", path, det_file=det)
    with Project.open(tmp_path / "p") as project:
        assert project.count("frames") == 60


def test_non_ascii_paths(tmp_path, video):
    path, gt, det = video
    folder = tmp_path / "vidéos été 東京"
    folder.mkdir()
    moved = folder / "marché.mp4"
    path.rename(moved)
    result = ingest.import_video(folder / "projét", moved, det_file=det, gt_file=gt)
    assert result["instances"] == 120


def test_frame_folder_import(tmp_path, video):
    path, gt, det = video
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    capture = cv2.VideoCapture(str(path))
    for i in range(1, 11):
        ok, image = capture.read()
        cv2.imwrite(str(frames_dir / f"{i:06d}.jpg"), image)
    result = ingest.import_video(tmp_path / "p", frames_dir, det_file=det)
    assert result["frames"] == 10 and result["instances"] == 20
    with Project.open(tmp_path / "p") as project:
        assert project.frame_paths(1)[3].endswith("000003.jpg")


def test_market_import_classifies_junk_and_distractors(tmp_path):
    root = tmp_path / "market"
    for sub, names in {"query": ["0001_c1s1_000100_00.jpg"],
                       "bounding_box_test": ["0001_c2s1_000200_01.jpg", "0000_c1s1_000300_01.jpg", "-1_c3s1_000400_02.jpg"]}.items():
        (root / sub).mkdir(parents=True)
        for name in names:
            cv2.imwrite(str(root / sub / name), np.full((128, 64, 3), 100, np.uint8))
    (root / "query" / "Thumbs.db").write_bytes(b"x")
    result = ingest.import_market(tmp_path / "p", root)
    assert (result["query"], result["gallery"], result["junk"], result["distractors"]) == (1, 3, 1, 1)
    with Project.open(tmp_path / "p") as project:
        split = project.dataset_split(project.dataset()["id"])
        assert split["gallery"].identity.tolist() == [-1, 0, 1]  # name order
        assert split["gallery"].camera == ["3", "1", "2"]
    with pytest.raises(UserError, match="already exists"):
        ingest.import_market(tmp_path / "p", root)
    bad = tmp_path / "bad"
    (bad / "query").mkdir(parents=True)
    (bad / "bounding_box_test").mkdir()
    cv2.imwrite(str(bad / "query" / "person.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="Market-1501 naming"):
        ingest.import_market(tmp_path / "p", bad)
    with pytest.raises(UserError, match="not a Market-1501-style dataset"):
        ingest.import_market(tmp_path / "p", tmp_path)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from idstudio.services import ingest
    from idstudio.core.store import Project
    ingest.BATCH_FRAMES = 4
    original = Project.add_frames_and_instances
    def slow(self, *a, **k):
        out = original(self, *a, **k)
        print("batch", flush=True)
        time.sleep(0.2)
        return out
    Project.add_frames_and_instances = slow
    ingest.import_video(sys.argv[1], sys.argv[2], det_file=sys.argv[3])
""")


def test_killed_import_reopens_marked_incomplete_and_resumes(tmp_path, video):
    path, _, det = video
    project_dir = tmp_path / "p"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(project_dir), str(path), str(det)],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # let three batches commit, then kill without warning
        assert proc.stdout.readline().strip() == "batch"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Project.open(project_dir) as project:
        video_row = project.video(1)
        assert video_row["status"] == "importing"
        committed = project.count("instances")
        assert 0 < committed < 120
        assert project.count("frames") * 2 == committed  # batches are all-or-nothing
    result = ingest.import_video(project_dir, path, det_file=det)
    assert result["resumed"] and result["complete"]
    with Project.open(project_dir) as project:
        assert project.count("instances") == 120 and project.count("frames") == 60
        assert project.video(1)["status"] == "complete"

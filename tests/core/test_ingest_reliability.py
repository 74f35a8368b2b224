"""Ingest that is never silently wrong: a resumed motion-detector import equals an
uninterrupted one, a truncated file says so, bad boxes are named, and a full disk or a
read-only project ends in one sentence with nothing stored lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.jobs import JobContext
from idstudio.core.store import Project
from idstudio.services import ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from concurrency import make_walk_video  # noqa: E402


def boxes(project_dir: Path) -> list[tuple]:
    with Project.open(project_dir) as project:
        return [tuple(r) for r in project.query("SELECT frame, x, y, w, h, score FROM instances ORDER BY frame, x, y")]


def _stop_after_batches(n: int) -> JobContext:
    ctx = JobContext()
    seen = {"n": 0}

    def sink(event):
        if event["type"] == "progress":
            seen["n"] += 1
            if seen["n"] == n:
                ctx.request_stop()

    ctx.add_sink(sink)
    return ctx


@pytest.fixture
def walk(tmp_path):
    return make_walk_video(tmp_path / "walk.avi", n_frames=80)


def test_resumed_motion_import_finds_the_boxes_of_an_uninterrupted_one(tmp_path, walk, monkeypatch):
    video, _ = walk
    monkeypatch.setattr(ingest, "BATCH_FRAMES", 16)
    whole = ingest.import_video(tmp_path / "whole", video, detector="motion")
    assert whole["complete"] and whole["instances"] > 100
    first = ingest.import_video(tmp_path / "resumed", video, detector="motion", ctx=_stop_after_batches(2))
    assert not first["complete"] and first["frames"] == 32
    second = ingest.import_video(tmp_path / "resumed", video, detector="motion")
    assert second["resumed"] and second["complete"]
    assert boxes(tmp_path / "resumed") == boxes(tmp_path / "whole")


KILL_MOTION = textwrap.dedent("""
    import sys, time
    from idstudio.services import ingest
    from idstudio.core.store import Project
    ingest.BATCH_FRAMES = 8
    original = Project.add_frames_and_instances
    def slow(self, *a, **k):
        out = original(self, *a, **k)
        print("batch", flush=True)
        time.sleep(0.3)
        return out
    Project.add_frames_and_instances = slow
    ingest.import_video(sys.argv[1], sys.argv[2], detector="motion")
""")


@pytest.mark.slow
def test_killed_motion_import_resumes_to_the_boxes_of_an_uninterrupted_one(tmp_path, walk):
    video, _ = walk
    ingest.import_video(tmp_path / "whole", video, detector="motion")
    proc = subprocess.Popen([sys.executable, "-c", KILL_MOTION, str(tmp_path / "killed"), str(video)],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # three batches (24 frames) committed, then kill -9
        assert proc.stdout.readline().strip() == "batch"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Project.open(tmp_path / "killed") as project:
        assert project.video(1)["status"] == "importing" and 24 <= project.video(1)["last_frame"] < 80
    assert ingest.import_video(tmp_path / "killed", video, detector="motion")["resumed"]
    assert boxes(tmp_path / "killed") == boxes(tmp_path / "whole")


def test_truncated_avi_says_how_many_frames_were_read_and_keeps_them(tmp_path, walk):
    video, det = walk
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError, match=r"cut.avi ends early: only (\d+) of the 80 frames its header announces") as info:
        ingest.import_video(tmp_path / "p", cut, det_file=det)
    read = int(str(info.value).split("only ")[1].split(" ")[0])
    assert 0 < read < 80
    with Project.open(tmp_path / "p") as project:
        assert project.count("frames") == read and project.video(1)["n_frames"] == read
        assert project.count("instances") == 3 * read  # the frames read are kept
        assert "ends early" in project.video(1)["error"]
    # the whole file imports without a word (its header is right)
    assert ingest.import_video(tmp_path / "q", video, det_file=det)["frames"] == 80


def test_cli_names_bad_det_lines_even_with_json(tmp_path, walk):
    video, det = walk
    lines = det.read_text().splitlines()
    lines[4] = lines[4].replace(",19,53,", ",nan,53,")
    lines[9] = lines[9].replace(",19,53,", ",-19,53,")
    det.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "idstudio", "import-video", str(tmp_path / "p"), str(video),
                          "--det", str(det), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: walk.det.txt lines 5, 10 hold a value that is NaN")
    assert "Traceback" not in out.stderr
    with Project.open(tmp_path / "p") as project:  # refused before anything was written
        assert project.count("videos") == 0 and project.count("instances") == 0


def _crops_and_rows(project_dir: Path) -> list[tuple]:
    with Project.open(project_dir) as project:
        rows = [tuple(r) for r in project.query("SELECT id, frame, x, y, w, h, identity FROM instances ORDER BY id")]
        return [row + (jpeg,) for row, jpeg in zip(rows, project.crop_jpegs([r[0] for r in rows]))]


def test_encoders_finishing_out_of_order_store_what_one_encoder_stores(tmp_path, walk, monkeypatch):
    """Ordered writes: with several encoders that finish in a scrambled order, every
    instance id still gets its own crop, in frame order, exactly as with one encoder."""
    video, det = walk
    monkeypatch.setattr(ingest, "BATCH_FRAMES", 16)
    monkeypatch.setattr(ingest, "ENCODE_WORKERS", 1)
    ingest.import_video(tmp_path / "one", video, det_file=det)
    encode = ingest._encode_all

    def scrambled(image, boxes):  # early frames of every few finish last
        time.sleep(0.02 * (3 - len(scrambled.calls) % 4))
        scrambled.calls.append(1)
        return encode(image, boxes)

    scrambled.calls = []
    monkeypatch.setattr(ingest, "_encode_all", scrambled)
    monkeypatch.setattr(ingest, "ENCODE_WORKERS", 4)
    result = ingest.import_video(tmp_path / "four", video, det_file=det)
    assert result["complete"] and result["instances"] == 240
    assert _crops_and_rows(tmp_path / "four") == _crops_and_rows(tmp_path / "one")


def test_no_batch_is_written_after_one_that_failed_and_the_import_resumes(tmp_path, walk, monkeypatch):
    """A failed commit stops the writer: the batches queued behind it are dropped whole, so
    last_frame never passes a missing batch and the same import fills the rest."""
    video, det = walk
    monkeypatch.setattr(ingest, "BATCH_FRAMES", 16)
    ingest.import_video(tmp_path / "whole", video, det_file=det)
    original = Project.add_frames_and_instances
    calls = []

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            time.sleep(0.5)  # the batches after it are queued by now
            raise UserError("The disk is full; free space and run the same command again.")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "add_frames_and_instances", second_fails)
    with pytest.raises(UserError, match="disk is full"):
        ingest.import_video(tmp_path / "p", video, det_file=det)
    assert len(calls) == 2  # nothing written after the failure
    with Project.open(tmp_path / "p") as project:
        assert project.video(1)["last_frame"] == 16 and project.count("frames") == 16
        assert project.count("instances") == 3 * 16 and "disk is full" in project.video(1)["error"]
    monkeypatch.setattr(Project, "add_frames_and_instances", original)
    assert ingest.import_video(tmp_path / "p", video, det_file=det)["resumed"]
    assert boxes(tmp_path / "p") == boxes(tmp_path / "whole")


def test_cancelled_import_keeps_whole_batches_and_resumes(tmp_path, walk, monkeypatch):
    video, det = walk
    monkeypatch.setattr(ingest, "BATCH_FRAMES", 16)
    ingest.import_video(tmp_path / "whole", video, det_file=det)
    ctx = JobContext()
    ctx.add_sink(lambda event: event["type"] == "progress" and ctx.cancel())
    with pytest.raises(JobCancelled):
        ingest.import_video(tmp_path / "p", video, det_file=det, ctx=ctx)
    with Project.open(tmp_path / "p") as project:
        assert project.video(1)["status"] == "importing"
        assert project.count("frames") in (0, 16) and project.count("instances") == 3 * project.count("frames")
        assert project.video(1)["last_frame"] == project.count("frames")
    assert ingest.import_video(tmp_path / "p", video, det_file=det)["resumed"]
    assert boxes(tmp_path / "p") == boxes(tmp_path / "whole")

"""Review decisions: append-only, undo/redo as new rows, relink, queue, and a kill test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import review


def make_review_project(root: Path, n_frames: int = 6, per_frame: int = 3) -> Project:
    """One video, ``per_frame`` instances per frame, one round pairing each to the next frame."""
    project = Project.create(root)
    vid = project.add_video(name="v", path="v.mp4", kind="video", camera="c1", fingerprint="f", detector="gt",
                            width=640, height=480, fps=25.0, n_frames=n_frames, status="complete")
    instances = [dict(frame=f, x=100.0 * k, y=10.0, w=40.0, h=90.0, source="gt", identity=k, camera="c1")
                 for f in range(n_frames) for k in range(per_frame)]
    ids = project.add_frames_and_instances(vid, [(f, None) for f in range(n_frames)], instances,
                                           [b"jpeg"] * len(instances))
    with project.transaction() as conn:
        conn.execute("INSERT INTO mining_rounds (id, checkpoint, params, created_at) VALUES (1, 'init', '{}', 0)")
        rows, rel = [], 0.05
        for f in range(n_frames - 1):
            for k in range(per_frame):
                a, b = ids[f * per_frame + k], ids[(f + 1) * per_frame + k]
                rows.append((1, a, b, 1, 0.5 + rel / 2, rel))
                rel = (rel + 0.37) % 1.0
        conn.executemany("INSERT INTO pairs (round_id, a, b, gap, similarity, reliability) VALUES (?, ?, ?, ?, ?, ?)", rows)
    return project


def test_decide_undo_redo_append_and_restore(tmp_path):
    p = make_review_project(tmp_path / "p")
    a1 = review.decide(p, [(2, 1), (3, 4)], "accept")
    assert review.current_decisions(p) == {(1, 2): "accept", (3, 4): "accept"}
    a2 = review.decide(p, [(1, 2)], "reject")
    assert a2 == a1 + 1
    assert review.current_decisions(p)[(1, 2)] == "reject"

    review.undo(p, a2)
    assert review.current_decisions(p) == {(1, 2): "accept", (3, 4): "accept"}
    review.undo(p, a1)
    assert review.current_decisions(p) == {}
    review.redo(p, a1)
    review.redo(p, a2)
    assert review.current_decisions(p) == {(1, 2): "reject", (3, 4): "accept"}

    # nothing was ever deleted: every step is a row
    kinds = [r["kind"] for r in review.history(p, 1, 2)]
    assert kinds == ["do", "do", "undo", "undo", "redo", "redo"]
    assert p.count("reviews") == 2 + 1 + 1 + 2 + 2 + 1
    rows = p.query("SELECT DISTINCT action FROM reviews WHERE action = ?", (a1,))
    assert len(rows) == 1


def test_relink_is_one_action_and_one_undo(tmp_path):
    p = make_review_project(tmp_path / "p")
    act = review.relink(p, 1, 5, 4)
    assert review.current_decisions(p) == {(1, 5): "reject", (1, 4): "accept"}
    assert {r["action"] for r in p.query("SELECT action FROM reviews")} == {act}
    review.undo(p, act)
    assert review.current_decisions(p) == {}


def test_bad_input_is_a_user_error(tmp_path):
    p = make_review_project(tmp_path / "p")
    with pytest.raises(UserError):
        review.decide(p, [(1, 2)], "maybe")
    with pytest.raises(UserError):
        review.decide(p, [(1, 1)], "accept")
    with pytest.raises(UserError):
        review.undo(p, 99)
    assert p.count("reviews") == 0


def test_queue_orders_filters_and_counts(tmp_path):
    p = make_review_project(tmp_path / "p")
    q = review.review_queue(p)
    assert len(q) == 15 and q.counts == {"total": 15, "accept": 0, "reject": 0, "undecided": 15}
    assert np.all(np.diff(q.reliability) >= 0)  # least reliable first

    review.decide(p, [(q.a[0], q.b[0]), (q.a[1], q.b[1])], "accept")
    review.decide(p, [(q.b[2], q.a[2])], "reject")  # order of a, b does not matter
    q2 = review.review_queue(p, decision="undecided")
    assert len(q2) == 12 and q2.counts == {"total": 15, "accept": 2, "reject": 1, "undecided": 12}
    assert len(review.review_queue(p, decision="accept")) == 2
    assert review.review_queue(p, decision="reject").decision == ["reject"]
    assert len(review.review_queue(p, decision="decided")) == 3

    mid = review.review_queue(p, reliability=(0.3, 0.7))
    assert len(mid) and np.all((mid.reliability >= 0.3 - 1e-6) & (mid.reliability <= 0.7 + 1e-6))
    sim = review.review_queue(p, similarity=(0.0, 0.6))
    assert len(sim) and np.all(sim.similarity <= 0.6 + 1e-6)

    r1 = review.review_queue(p, order="random", seed=3)
    r2 = review.review_queue(p, order="random", seed=3)
    assert list(r1.pair_id) == list(r2.pair_id) and sorted(r1.pair_id) == sorted(q.pair_id)
    byv = review.review_queue(p, order="video")
    assert list(byv.frame_a) == sorted(byv.frame_a)
    assert review.frame_instances(p, 1, 2)[0]["x"] == 0.0


def test_empty_project_queue(tmp_path):
    p = Project.create(tmp_path / "e")
    q = review.review_queue(p)
    assert len(q) == 0 and q.round_id is None and q.counts["total"] == 0


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from idstudio.core.store import Project
    from idstudio.services import review
    p = Project.open(sys.argv[1])
    q = review.review_queue(p)
    for i in range(len(q)):
        review.decide(p, [(q.a[i], q.b[i])], "accept" if i % 2 == 0 else "reject")
        print(q.a[i], q.b[i], flush=True)   # reported only after decide() returned
    time.sleep(60)
    """
)


def test_kill_during_review_loses_no_decision(tmp_path):
    root = tmp_path / "p"
    make_review_project(root).close()
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    made = []
    deadline = time.time() + 60
    while len(made) < 10 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        a, b = map(int, line.split())
        made.append((min(a, b), max(a, b)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(made) == 10
    p = Project.open(root)
    current = review.current_decisions(p)
    for i, key in enumerate(made):
        assert current[key] == ("accept" if i % 2 == 0 else "reject")


def test_the_full_ranges_keep_pairs_just_outside_the_scale(tmp_path):
    p = make_review_project(tmp_path / "p")
    with p.transaction() as conn:  # rounding leaves cosines a hair above 1 and below -1
        conn.execute("UPDATE pairs SET similarity = 1.0001 WHERE id = 1")
        conn.execute("UPDATE pairs SET similarity = -1.0001 WHERE id = 2")
    total = p.count("pairs")
    assert len(review.review_queue(p)) == total
    assert len(review.review_queue(p, similarity=(-1.0, 0.99))) == total - 1  # a real bound still applies

"""The real main window, offscreen: data view, import, mining, keyboard review with undo/redo,
reopening finds every decision, a failing worker shows its error."""

from __future__ import annotations

import shutil
import time

import pytest

pytestmark = pytest.mark.gui

from window_helpers import _press, _wait_job  # noqa: E402 - shared with the other window tests


def test_starts_without_project_and_shows_every_view(window):
    assert window.stack.count() == 4
    for name in ("data", "pairs", "train", "retrieval"):
        assert window.show_view(name) is window.stack.currentWidget()
    assert "No project open" in window.status_label.text()


def test_data_view_lists_sources_draws_frames_and_thumbnails(qtbot, window, copy_project):
    from PySide6.QtCore import Qt

    root = copy_project()
    assert window.open_project(root)
    data = window.show_view("data")
    top = [data.sources.topLevelItem(i) for i in range(data.sources.topLevelItemCount())]
    assert top[0].childCount() >= 1 and top[1].childCount() >= 1  # videos and the labelled dataset
    assert data.video is not None and len(data.frame_numbers) > 1
    qtbot.waitUntil(lambda: data.canvas.image is not None, timeout=10000)
    assert data.model.rowCount() == window.session.project.count("instances", "video_id = ?", (data.video["id"],))
    # thumbnails decode lazily off the GUI thread
    qtbot.waitUntil(lambda: len(data.loader.cache) > 0, timeout=10000)
    # scrub forward then back: the latest request wins and a frame arrives for it
    last = data.frame_numbers[-1]
    data.go_to_frame(last)
    data.go_to_frame(data.frame_numbers[3])
    qtbot.waitUntil(lambda: data.canvas.image is not None and data.current_frame == data.frame_numbers[3]
                    and not data._waiting, timeout=10000)
    # the keyboard steps through frames (shortcuts.bind)
    index = data.scrubber.value()
    _press(qtbot, data, Qt.Key.Key_Right)
    assert data.scrubber.value() == index + 1
    _press(qtbot, data, Qt.Key.Key_Left)
    assert data.scrubber.value() == index
    # open_in_data_view highlights the instance
    iid = int(data.model.ids[5])
    window.open_in_data_view(int(data.model.videos[5]), int(data.model.frames[5]), iid)
    assert data.highlight == {iid} and data.grid.currentIndex().row() == 5


def test_grid_model_with_100k_instances_only_loads_visible(qtbot, window):
    import numpy as np

    data = window.show_view("data")
    n = 100_000
    data.model.set_instances(np.arange(1, n + 1), np.zeros(n), np.zeros(n), -np.ones(n))
    qtbot.wait(200)
    assert data.model.rowCount() == n
    assert len(data.loader.pending) + len(data.loader.cache) < 2000  # only visible tiles asked for


def test_import_video_job_through_the_data_view(qtbot, window, tmp_path, small_world):
    window.open_project(tmp_path / "fresh", create=True)
    data = window.show_view("data")
    cam = small_world.cameras[0]
    handle = data.start_import("video", {"path": cam.video, "detector": "file", "det_file": cam.det, "stride": 2,
                                         "camera": "east"})
    result = _wait_job(qtbot, window, handle)
    assert result["instances"] > 0
    qtbot.waitUntil(lambda: data.sources.topLevelItem(0).childCount() == 1, timeout=5000)
    assert "east" in data.sources.topLevelItem(0).child(0).text(0)
    assert data.sources.topLevelItem(0).text(0) == "Videos"
    assert data.summary.text().startswith("1 video · ")  # not "1 videos"


def test_failing_import_shows_its_error(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QApplication, QMessageBox

    window.open_project(tmp_path / "p", create=True)
    bad = tmp_path / "not-a-video.mp4"
    bad.write_bytes(b"this is not a video")
    handle = window.views["data"].start_import("video", {"path": bad, "detector": "motion"})
    qtbot.waitUntil(lambda: not handle.running, timeout=20000)
    assert handle.status == "failed"
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    assert "not-a-video.mp4" in window.errors[-1]
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert any("not-a-video.mp4" in b.text() for b in boxes)
    for b in boxes:
        b.close()


def test_worker_crash_is_shown_not_silent(qtbot, window):
    def crash(ctx):
        raise RuntimeError("boom")

    with qtbot.waitSignal(window.session.runner.failed, timeout=5000):
        window.session.start_job("Crashing job", crash)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=2000)
    assert "RuntimeError: boom" in window.errors[-1]


def test_mine_review_ten_by_keyboard_undo_redo_and_reopen(qtbot, window, copy_project):
    from PySide6.QtCore import Qt

    from idstudio.services import review

    root = copy_project()
    window.open_project(root)
    pairs = window.show_view("pairs")
    if pairs.mine_form is None:
        pytest.skip("services.mining.MineConfig is not available")
    handle = pairs.start_mining()
    _wait_job(qtbot, window, handle, timeout=300000)
    qtbot.waitUntil(lambda: pairs.queue is not None and len(pairs.queue) >= 12, timeout=10000)
    pairs.setFocus()
    qtbot.waitUntil(pairs.hasFocus, timeout=2000)

    keys = [Qt.Key.Key_A, Qt.Key.Key_R] * 5
    expected = {}
    for k in keys:
        row = pairs.current()
        _press(qtbot, pairs, k)
        expected[(min(row["a"], row["b"]), max(row["a"], row["b"]))] = "accept" if k == Qt.Key.Key_A else "reject"
    assert pairs.position == 10
    project = window.session.project
    assert review.current_decisions(project) == expected  # written the moment they were made

    # undo the last two (Ctrl+Z), redo one (Ctrl+Shift+Z), redo the other (Ctrl+Y)
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert pairs.position == 8
    undone = dict(list(expected.items())[:8])
    assert review.current_decisions(project) == undone
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    _press(qtbot, pairs, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert review.current_decisions(project) == expected
    # skip with S and Space: no decision written
    n_rows = project.count("reviews")
    _press(qtbot, pairs, Qt.Key.Key_S)
    _press(qtbot, pairs, Qt.Key.Key_Space)
    assert project.count("reviews") == n_rows and pairs.position == 12
    assert pairs.queue.counts["accept"] == 5 and pairs.queue.counts["reject"] == 5
    # history kept: do + undo + redo rows, nothing deleted
    kinds = [r["kind"] for r in project.query("SELECT kind FROM reviews ORDER BY id")]
    assert kinds.count("do") == 10 and kinds.count("undo") == 2 and kinds.count("redo") == 2

    # reopen the project (a new session) and find every decision
    window.session.close()
    window.open_project(root)
    assert review.current_decisions(window.session.project) == expected
    pairs.filter_combo.setCurrentIndex(1)  # All
    assert pairs.queue.counts["accept"] == 5


def test_relink_and_grid_mode(qtbot, window, copy_project):
    from PySide6.QtCore import QItemSelectionModel, Qt

    from idstudio.services import review

    root = copy_project()
    _fake_round(root)
    window.open_project(root)
    pairs = window.show_view("pairs")
    pairs.setFocus()
    # relink: L, then the number of a candidate that is not the current partner
    row = pairs.current()
    _press(qtbot, pairs, Qt.Key.Key_L)
    assert pairs.relinking
    choices = [c for c in pairs.relink_candidates if c != row["b"]]
    assert choices
    number = pairs.relink_candidates.index(choices[0]) + 1
    _press(qtbot, pairs, getattr(Qt.Key, f"Key_{number}"))
    current = review.current_decisions(window.session.project)
    a = row["a"]
    assert current[(min(a, row["b"]), max(a, row["b"]))] == "reject"
    assert current[(min(a, choices[0]), max(a, choices[0]))] == "accept"
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # one undo reverts both
    assert review.current_decisions(window.session.project) == {}

    # grid: select six pairs and reject them in one action
    _press(qtbot, pairs, Qt.Key.Key_G)
    assert pairs.pages.currentIndex() == 1
    sel = pairs.grid.selectionModel()
    for r in range(6):
        sel.select(pairs.grid_model.index(r), QItemSelectionModel.SelectionFlag.Select)
    assert pairs.decide_selected("reject") == 6
    rows = window.session.project.query("SELECT DISTINCT action FROM reviews WHERE kind = 'do' AND decision = 'reject'")
    assert len(rows) == 2  # the relink's reject and the grid's one action
    assert pairs.queue.counts["reject"] == 6
    pairs.undo_stack.undo()
    assert pairs.queue.counts["reject"] == 0


def test_review_counts_stay_exact_after_accept_undo_redo_relink(qtbot, window, copy_project):
    """The counts are updated from each decision (not rebuilt): they must equal a full recount."""
    from PySide6.QtCore import Qt

    from idstudio.services import review

    root = copy_project()
    _fake_round(root)
    window.open_project(root)
    pairs = window.show_view("pairs")
    pairs.setFocus()
    project = window.session.project

    def check():
        expected = review.review_counts(project, pairs.queue.round_id)
        assert pairs.queue.counts == expected
        assert f"{expected['accept']:,} accepted" in pairs.counts_label.text()
        assert f"{expected['undecided']:,} to review" in pairs.counts_label.text()
        assert pairs.progress.value() == expected["accept"] + expected["reject"]

    check()
    for key in (Qt.Key.Key_A, Qt.Key.Key_A, Qt.Key.Key_R):
        _press(qtbot, pairs, key)
        check()
    assert pairs.queue.counts["accept"] == 2 and pairs.queue.counts["reject"] == 1
    _press(qtbot, pairs, Qt.Key.Key_Backspace)  # back to the rejected pair and accept it: reject -> accept
    _press(qtbot, pairs, Qt.Key.Key_A)
    check()
    assert pairs.queue.counts["accept"] == 3 and pairs.queue.counts["reject"] == 0
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo: back to reject
    check()
    assert pairs.queue.counts["reject"] == 1
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    check()
    assert pairs.queue.counts["accept"] == 1 and pairs.queue.counts["reject"] == 0
    _press(qtbot, pairs, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    check()
    assert pairs.queue.counts["accept"] == 2
    # the queue shows the decision of the touched pair
    assert pairs.queue.decision[1] == "accept"
    # relink: one pair rejected, one (possibly outside the round) accepted
    pairs.position = 3
    pairs.show_current()
    row = pairs.current()
    _press(qtbot, pairs, Qt.Key.Key_L)
    choices = [c for c in pairs.relink_candidates if c != row["b"] and c != row["a"]]
    assert choices
    _press(qtbot, pairs, getattr(Qt.Key, f"Key_{pairs.relink_candidates.index(choices[0]) + 1}"))
    check()
    _press(qtbot, pairs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    check()
    # grid: one action over several pairs, then its undo
    from PySide6.QtCore import QItemSelectionModel

    _press(qtbot, pairs, Qt.Key.Key_G)
    for r in range(5):
        pairs.grid.selectionModel().select(pairs.grid_model.index(r), QItemSelectionModel.SelectionFlag.Select)
    assert pairs.decide_selected("reject") == 5
    check()
    pairs.undo_stack.undo()
    check()
    # a reload (full recount) agrees with the incremental figures
    incremental = dict(pairs.queue.counts)
    pairs.reload()
    assert pairs.queue.counts == incremental


def _fake_round(root):
    """A mining round without a model: pair each instance with one of the next frame's."""
    from idstudio.core.store import Project

    with Project.open(root) as p:
        rows = p.query("SELECT id, video_id, frame FROM instances WHERE video_id IS NOT NULL ORDER BY video_id, frame, id")
        by = {}
        for r in rows:
            by.setdefault((r[1], r[2]), []).append(r[0])
        out = []
        with p.transaction() as c:
            c.execute("INSERT INTO mining_rounds (checkpoint, params, created_at) VALUES ('init', '{}', 0)")
            rid = c.execute("SELECT MAX(id) FROM mining_rounds").fetchone()[0]
            for (v, f), ids in by.items():
                nxt = by.get((v, f + 1))
                if nxt and len(nxt) >= 2:
                    out.append((rid, ids[0], nxt[0], 1, 0.9, 0.1 + 0.8 * (len(out) % 7) / 7))
            c.executemany("INSERT INTO pairs (round_id, a, b, gap, similarity, reliability) VALUES (?, ?, ?, ?, ?, ?)", out)
        assert len(out) >= 10

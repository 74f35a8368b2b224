"""The job adapter: progress arrives on the GUI thread, errors reach the user, stop/cancel work."""

from __future__ import annotations

import threading
import time

import pytest

from idstudio.core.errors import UserError

pytestmark = pytest.mark.gui


def _counting(n, ctx):
    for i in range(n):
        ctx.progress(i + 1, n, f"item {i + 1}")
        ctx.metric("loss", i, 1.0 / (i + 1))
    return {"n": n}


def test_progress_metric_and_result_arrive_on_gui_thread(qtbot):
    from PySide6.QtCore import QThread

    from idstudio.gui.workers import JobRunner

    runner = JobRunner()
    progress, metrics, threads = [], [], []
    runner.progress.connect(lambda j, d, t, m: (progress.append((d, t, m)), threads.append(QThread.currentThread())))
    runner.metric.connect(lambda j, name, step, value: metrics.append((name, step, value)))
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        handle = runner.start("count", _counting, 5)
    assert blocker.args == [handle.job_id, {"n": 5}]
    assert handle.status == "finished" and handle.result == {"n": 5}
    assert progress[-1] == (5, 5, "item 5")  # the last progress always arrives
    assert [m[1] for m in metrics] == [0, 1, 2, 3, 4]
    assert all(t is runner.thread() for t in threads)


def test_user_error_is_shown_as_is_and_other_errors_as_one_line(qtbot):
    from idstudio.gui.workers import JobRunner

    runner = JobRunner()

    def user_error(ctx):
        raise UserError("The file is not a video; choose an .mp4 or .avi file.")

    def crash(ctx):
        return {}["missing"]

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("import", user_error)
    assert blocker.args[1] == "The file is not a video; choose an .mp4 or .avi file."

    logs = []
    runner.log.connect(lambda j, m: logs.append(m))
    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        handle = runner.start("mine", crash)
    message = blocker.args[1]
    assert "\n" not in message and "KeyError" in message and "mine" in message
    assert handle.status == "failed" and handle.error == message
    assert any("Traceback" in m for m in logs)


def _waiting(ctx):
    steps = 0
    while not ctx.should_stop:
        ctx.check_cancelled()
        time.sleep(0.01)
        steps += 1
    ctx.check_cancelled()
    return {"stopped_cleanly": True, "steps": steps}


def test_stop_finishes_cleanly_and_cancel_discards(qtbot):
    from idstudio.gui.workers import JobRunner

    runner = JobRunner()
    handle = runner.start("train", _waiting)
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        handle.stop()
    assert blocker.args[1]["stopped_cleanly"] is True

    handle = runner.start("train", _waiting)
    with qtbot.waitSignal(runner.cancelled, timeout=5000) as blocker:
        handle.cancel()
    assert blocker.args == [handle.job_id]
    assert handle.status == "cancelled"
    assert runner.running() == []


def test_progress_flood_is_coalesced(qtbot):
    from idstudio.gui.workers import JobRunner

    runner = JobRunner()
    seen = []
    runner.progress.connect(lambda j, d, t, m: seen.append(d))
    with qtbot.waitSignal(runner.finished, timeout=10000):
        runner.start("flood", lambda ctx: [ctx.progress(i + 1, 100000) for i in range(100000)] and None)
    assert seen[-1] == 100000
    assert len(seen) < 1000


def test_base_exception_still_reported(qtbot):
    from idstudio.gui.workers import JobRunner

    runner = JobRunner()

    def exits(ctx):
        raise SystemExit(3)

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start("bad", exits)
    assert "SystemExit" in blocker.args[1]

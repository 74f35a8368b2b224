"""GUI responsiveness while work runs: the event loop's stall and the review keypress latency.

1. stall: a 10 ms QTimer runs on the GUI thread of the real main window (Train view shown,
   its plots live) while a training job and a mining job run in workers; its lateness
   (actual interval - 10 ms) is recorded for every tick. ``stall_p99_ms`` is the 99th
   percentile. Goal: <= 50 ms.
2. review: in the Pairs view, the accept key is pressed (QTest key clicks through the real
   shortcut) and the time until the next pair's card is painted is measured.
   ``review_ms`` is the median. Goal: <= 30 ms.

Usage: python bench/gui_latency.py [--project DIR] [--seconds 90] [--presses 40]
Without --project a small synthetic project is generated in a temporary folder.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def make_project(tmp: Path, source: Path | None) -> Path:
    root = tmp / "proj"
    if source is not None:
        shutil.copytree(source, root)
        return root
    from idstudio.core import synth
    from idstudio.services import ingest

    world = synth.generate(tmp / "world", synth.SynthConfig.small())
    ingest.import_world(root, world)
    return root


def wait(app, condition, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.001)
    return condition()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=None, help="project to copy (default: a generated small one)")
    parser.add_argument("--seconds", type=float, default=90.0, help="longest stall measurement")
    parser.add_argument("--presses", type=int, default=40, help="accept keypresses to time")
    parser.add_argument("--diagnose", type=Path, default=None,
                        help="write every thread's stack to this file whenever the GUI thread stalls over 250 ms "
                             "(faulthandler's C watchdog: shows which worker code holds the GIL)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval in seconds (Python's default 0.005) to study GIL convoys")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of stall measurement with no job first")
    args = parser.parse_args()

    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    tmp = Path(tempfile.mkdtemp(prefix="idstudio-bench-"))
    try:
        root = make_project(tmp, args.project)
        from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
        from PySide6.QtTest import QTest

        from idstudio.gui.app import make_app

        app = make_app([])
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
        from idstudio.gui.main_window import MainWindow

        window = MainWindow()
        window.resize(1400, 900)
        window.show()
        window.open_project(root)
        app.processEvents()

        # ---- 1. stall while training and mining run --------------------------------------------
        train_view = window.views["train"]
        pairs_view = window.views["pairs"]
        window.show_view("train")
        train_view.quiet_errors = True
        train_view.form.apply_preset("Quick (CPU, 2 min)")
        train_view.form.set_values(dict(epochs=2, steps_per_epoch=10, batch_size=32, weights="none", max_minutes=1.5))
        interval_ms = 10
        lateness: list[float] = []
        big: list[tuple[float, float]] = []  # (time, lateness) of stalls over 100 ms
        events: list[tuple[float, str]] = []
        last = [time.perf_counter()]

        diag = open(args.diagnose, "w") if args.diagnose else None

        def tick() -> None:
            if diag is not None:
                import faulthandler

                faulthandler.dump_traceback_later(0.25, repeat=False, file=diag)
            now = time.perf_counter()
            late = max(0.0, (now - last[0]) * 1000 - interval_ms)
            lateness.append(late)
            if late > 100:
                big.append((now, late))
            last[0] = now

        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(interval_ms)
        timer.timeout.connect(tick)
        counts = {"metric": 0, "progress": 0, "log": 0}
        runner = window.session.runner
        runner.metric.connect(lambda *a: counts.__setitem__("metric", counts["metric"] + 1))
        runner.progress.connect(lambda *a: counts.__setitem__("progress", counts["progress"] + 1))
        runner.log.connect(lambda *a: counts.__setitem__("log", counts["log"] + 1))
        runner.log.connect(lambda job, msg: events.append((time.perf_counter(), f"{job} log: {msg[:60]}")))
        runner.started.connect(lambda job, title: events.append((time.perf_counter(), f"{job} started: {title}")))
        runner.finished.connect(lambda job, res: events.append((time.perf_counter(), f"{job} finished")))
        window.session.data_changed.connect(lambda area: events.append((time.perf_counter(), f"data_changed {area}")))

        # the Train view preloads the trainer's heavy modules in a background thread when the
        # window opens (their import holds the GIL); measure steady state, after it
        from idstudio.gui.views import train as train_mod

        t_pre = time.perf_counter()
        wait(app, lambda: all(not t.is_alive() for t in train_mod._preloading), 120)
        print(f"preload of {', '.join(train_mod.PRELOAD)} finished {time.perf_counter() - t_pre:.1f} s after the window opened")
        # baseline: the same timer with no job running (the machine's own noise)
        last[0] = time.perf_counter()
        timer.start()
        wait(app, lambda: False, args.baseline)
        timer.stop()
        baseline = list(lateness)
        lateness.clear()
        big.clear()
        print(f"baseline (no job, {args.baseline:.0f} s): lateness ms p50 {percentile(baseline, 50):.1f}  "
              f"p99 {percentile(baseline, 99):.1f}  max {max(baseline or [0]):.1f}")

        t_start = time.perf_counter()
        train_view.start()
        mine_handle = pairs_view.start_mining()
        train_handle = train_view.handle
        last[0] = time.perf_counter()
        timer.start()
        wait(app, lambda: not train_handle.running and not (mine_handle and mine_handle.running), args.seconds)
        timer.stop()
        if diag is not None:
            import faulthandler

            faulthandler.cancel_dump_traceback_later()
            diag.close()
        stall_seconds = time.perf_counter() - t_start
        for h in (train_handle, mine_handle):
            if h is not None and h.running:
                h.cancel()
        wait(app, lambda: not train_handle.running and not (mine_handle and mine_handle.running), 60)
        print(f"stall phase: {stall_seconds:.1f} s, {len(lateness)} ticks, train {train_handle.status}, "
              f"mine {mine_handle.status if mine_handle else 'n/a'}; signals: {counts}")
        for when, late in sorted(big, key=lambda x: -x[1])[:5]:
            before = [e for e in events if e[0] <= when]
            near = before[-1] if before else (t_start, "start")
            print(f"  stall {late:.0f} ms at {when - t_start:.1f} s; last event {when - near[0]:.2f} s before: {near[1]}")
        print(f"  lateness ms: p50 {percentile(lateness, 50):.1f}  p90 {percentile(lateness, 90):.1f}  "
              f"p99 {percentile(lateness, 99):.1f}  max {max(lateness or [0]):.1f}")

        # ---- 2. review: accept key -> next pair painted ----------------------------------------
        window.show_view("pairs")
        window.session.notify("pairs")
        pairs_view.reload()
        window.activateWindow()
        pairs_view.setFocus()
        wait(app, lambda: pairs_view.current() is not None, 10)
        card = pairs_view.card

        class PaintSpy(QObject):
            def __init__(self):
                super().__init__()
                self.painted_at = None

            def eventFilter(self, obj, event):  # noqa: N802
                if event.type() == QEvent.Type.Paint and self.painted_at is None:
                    self.painted_at = time.perf_counter()
                return False

        spy = PaintSpy()
        card.crop_b.installEventFilter(spy)
        times: list[float] = []
        misses = 0
        wait(app, lambda: False, 0.5)  # let the first card's crops and frames arrive
        for _ in range(args.presses):
            row = pairs_view.current()
            if row is None:
                break
            # wait until the next pair's crops are cached (prefetch), as in steady reviewing
            wait(app, lambda: all(pairs_view.loader.cache.get(i) is not None for i in (row["a"], row["b"])), 2)
            before = card.title.text()
            spy.painted_at = None
            t0 = time.perf_counter()
            QTest.keyClick(pairs_view, Qt.Key.Key_A)
            ok = wait(app, lambda: card.title.text() != before and spy.painted_at is not None
                      and spy.painted_at >= t0, 2.0)
            if not ok:
                misses += 1
                continue
            times.append((spy.painted_at - t0) * 1000)
            wait(app, lambda: False, 0.03)
        decided = window.session.project.count("reviews")
        print(f"review phase: {len(times)} timed presses ({misses} without a repaint), {decided} review rows; "
              f"ms p50 {percentile(times, 50):.1f} p90 {percentile(times, 90):.1f} max {max(times or [0]):.1f}")
        result = {
            "stall_p99_ms": round(percentile(lateness, 99), 1),
            "stall_p50_ms": round(percentile(lateness, 50), 1),
            "stall_max_ms": round(max(lateness or [0.0]), 1),
            "stall_seconds": round(stall_seconds, 1),
            "baseline_p99_ms": round(percentile(baseline, 99), 1),
            "review_ms": round(statistics.median(times), 1) if times else None,
            "review_p90_ms": round(percentile(times, 90), 1) if times else None,
            "review_presses": len(times),
            "signals": counts,
            "goal_stall_p99_ms": 50,
            "goal_review_ms": 30,
        }
        window.session.runner.shutdown()
        for view in window.views.values():
            if hasattr(view, "shutdown"):
                view.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)  # skip Qt/pyqtgraph teardown at exit (not measured)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Render the Train and Retrieval views of a project to PNG, in the real main window.

Usage: python bench/render_train_retrieval.py OUT_DIR PROJECT [--compare init]

The project should have a finished training run (its plots are rebuilt from metrics.jsonl);
the Retrieval view evaluates the latest run's checkpoint (A) against ``--compare`` (B) on the
first labelled dataset, then selects the worst query. Writes train.png, retrieval.png and
retrieval-compare.png. Last line: one JSON object with the file names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("project", type=Path)
    parser.add_argument("--compare", default="init", help="checkpoint B (run id, init or colorhist)")
    parser.add_argument("--size", default="1500x920")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings

    from idstudio.gui.app import make_app

    app = make_app([])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp(prefix="idstudio-shots-"))
    from idstudio.gui.main_window import MainWindow

    def spin(seconds: float, until=None) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            if until is not None and until():
                return
            time.sleep(0.005)

    window = MainWindow()
    window.resize(width, height)
    window.show()
    window.open_project(args.project)
    spin(0.5)
    written = []

    train = window.show_view("train")
    runs = train._query_runs()
    if runs:
        train.select_run(runs[0]["id"])
    spin(0.5)
    path = args.out / "train.png"
    window.grab().save(str(path))
    written.append(path.name)

    retrieval = window.show_view("retrieval")
    retrieval.quiet_errors = True
    for name, b in (("retrieval.png", None), ("retrieval-compare.png", args.compare)):
        if retrieval.ckpt_a.count():
            retrieval.ckpt_a.setCurrentIndex(0)
        retrieval.ckpt_b.setCurrentIndex(max(0, retrieval.ckpt_b.findData(b)))
        retrieval.evaluate()
        spin(300, lambda: not retrieval._pending)
        if b is not None:
            retrieval.order_box.setCurrentText("Most worsened in B")
        spin(0.3)
        spin(10, lambda: retrieval.loader.pending() == 0)
        spin(0.3)
        path = args.out / name
        window.grab().save(str(path))
        written.append(path.name)
    print(json.dumps({"out": str(args.out), "files": written}))
    sys.stdout.flush()
    window.session.runner.shutdown()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())

"""``idstudio --self-test``: prove an installed (or frozen) app works end to end, headless.

Opens the main window offscreen, generates a small demo project in a temporary folder
(the seeded synthetic world), opens it, checks that the four views are there (not
placeholders) and see the project, renders the window once, and exits 0. Anything else
prints what failed, one line each, and exits 1. The user's settings are never touched.

    idstudio --self-test            # frozen app, or `python -m idstudio.gui.selftest`
    IDSTUDIO_SELFTEST_PROJECT=DIR   # use an existing project instead of generating one
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

VIEW_NAMES = ("data", "pairs", "train", "retrieval")


def _say(message: str) -> None:
    print(f"self-test: {message}", file=sys.stderr, flush=True)


def _make_project(tmp: Path) -> Path:
    existing = os.environ.get("IDSTUDIO_SELFTEST_PROJECT")
    if existing:
        return Path(existing)
    from idstudio.core import synth
    from idstudio.services import ingest

    world = synth.generate(tmp / "world", synth.SynthConfig.small())
    root = tmp / "demo-project"
    counts = ingest.import_world(root, world)
    _say(f"demo project generated: {counts.get('videos')} videos, {counts.get('instances')} instances")
    return root


def run_self_test(out_png: Path | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyside6")
    t0 = time.perf_counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="idstudio-selftest-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            from PySide6.QtCore import QSettings

            QSettings.setDefaultFormat(QSettings.Format.IniFormat)
            QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))

            from idstudio.gui.app import make_app
            from idstudio.gui.main_window import MainWindow, PlaceholderView

            app = make_app([sys.argv[0]])
            app.setOrganizationName("idstudio-selftest")
            _say(f"Qt platform {app.platformName()!r}")
            root = _make_project(tmp)
            window = MainWindow()
            window.resize(1280, 800)
            window.show()
            if not window.open_project(root):
                failures.append(f"the main window could not open the project {root}")
            app.processEvents()
            session = window.session
            if session.project is None or Path(session.root) != Path(root).resolve():
                failures.append("the session has no open project after open_project")
            else:
                videos = session.project.scalar("select count(*) from videos")
                if not videos:
                    failures.append("the demo project has no videos")
            views = getattr(window, "views", {})
            for name in VIEW_NAMES:
                view = views.get(name)
                if view is None:
                    failures.append(f"the {name} view is missing")
                elif isinstance(view, PlaceholderView):
                    failures.append(f"the {name} view is a placeholder (it did not load)")
                else:
                    window.show_view(name)
                    app.processEvents()
                    if window.current_view_name() != name:
                        failures.append(f"switching to the {name} view failed")
            image = window.grab()
            if image.isNull() or image.width() < 200:
                failures.append("the window did not render")
            elif out_png is not None:
                image.save(str(out_png))
            window.close()
            app.processEvents()
            session.close()
        except Exception as exc:  # noqa: BLE001 - report, never a bare traceback
            traceback.print_exc()
            failures.append(f"{type(exc).__name__}: {exc}")
    for failure in failures:
        _say(f"FAILED: {failure}")
    if failures:
        return 1
    _say(f"OK: main window, demo project and the views {', '.join(VIEW_NAMES)} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_self_test(Path(sys.argv[1]) if len(sys.argv) > 1 else None))

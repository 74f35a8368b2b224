"""Render each view of a project to PNG: ``python -m idstudio.gui.screenshots OUT_DIR PROJECT``.

The window is 1400x900, each view is shown, given a moment for its worker threads (frames,
thumbnails) to deliver, then grabbed with ``widget.grab()``. Prints the written paths.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def render(out_dir: Path, project: Path, size: tuple[int, int] = (1400, 900), settle: float = 2.0) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from idstudio.gui.app import make_app
    from idstudio.gui.main_window import VIEWS, MainWindow

    app = make_app()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # never touch the user's settings
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(out_dir) / ".settings"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = MainWindow()
    window.resize(*size)
    window.show()
    if not window.open_project(project):
        raise SystemExit(f"error: cannot open {project}: {window.errors[-1] if window.errors else ''}")
    written = []

    def grab(name: str) -> None:
        _settle(app, settle)
        path = out_dir / f"{name}.png"
        window.grab().save(str(path))
        written.append(path)

    for module, _cls, _label, _icon in VIEWS:
        view = window.show_view(module)
        if hasattr(view, "prepare_screenshot"):  # e.g. Retrieval evaluates the latest run first
            view.prepare_screenshot(lambda: app.processEvents())
        grab(module)
    pairs = window.views.get("pairs")
    if hasattr(pairs, "toggle_grid"):
        window.show_view("pairs")
        pairs.toggle_grid()
        grab("pairs-grid")
        pairs.toggle_grid()
    if hasattr(pairs, "show_links"):
        window.show_view("pairs")
        pairs.show_links()
        grab("pairs-links")
    window.close()
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m idstudio.gui.screenshots OUT_DIR PROJECT", file=sys.stderr)
        return 2
    for path in render(Path(argv[0]), Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

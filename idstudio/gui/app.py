"""The QApplication: names for QSettings, the style sheet, and the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def make_app(argv: list[str] | None = None):
    """The QApplication (created once), with its names, icon and style sheet."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName("idstudio")
    app.setOrganizationDomain("idstudio.local")
    app.setApplicationName("idstudio")
    app.setApplicationDisplayName("idstudio")
    app.setWindowIcon(QIcon(str(RESOURCES / "icons" / "app.svg")))
    apply_style(app)
    return app


def apply_style(app) -> None:
    qss = RESOURCES / "style.qss"
    if qss.exists():
        app.setStyle("Fusion")
        app.setStyleSheet(qss.read_text(encoding="utf-8"))


def check_platform() -> None:
    """Qt aborts the whole process when its platform plugin cannot start (no display, a
    missing libxcb-cursor0): probe it in a child process first and say what to do."""
    from PySide6.QtWidgets import QApplication

    from idstudio.core.errors import UserError
    from idstudio.services.doctor import check_qt

    if QApplication.instance() is not None:
        return
    check = check_qt()
    if not check.details.get("started"):
        raise UserError(f"The GUI cannot open a window: {check.summary}. {check.fix}".replace("..", "."))


def run(project_path: str | Path | None = None) -> int:
    """Open the main window (on ``project_path``, else the last project) and run the event loop."""
    os.environ.setdefault("QT_API", "pyside6")
    check_platform()
    from PySide6.QtCore import QSettings

    from idstudio.gui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.show()
    if project_path is not None:
        window.open_project(project_path, create=not (Path(project_path) / "idstudio.db").exists())
    else:
        last = QSettings().value("last_project")
        if last and (Path(str(last)) / "idstudio.db").exists():
            window.open_project(str(last))
    return int(app.exec())

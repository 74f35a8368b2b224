"""GUI test set-up: offscreen Qt, isolated QSettings (never the user's own)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, qapp):
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    qapp.setOrganizationName("idstudio-tests")
    qapp.setApplicationName("idstudio-tests")
    yield


@pytest.fixture
def window(qtbot):
    from idstudio.gui.app import apply_style
    from idstudio.gui.main_window import MainWindow

    from PySide6.QtWidgets import QApplication

    apply_style(QApplication.instance())
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    for view in w.views.values():
        if hasattr(view, "shutdown"):
            view.shutdown()
    w.session.runner.shutdown()
    w.session.close()


@pytest.fixture
def retrieval_view_on(qtbot, monkeypatch):
    """Opens the Retrieval view on a project folder; its warnings land in ``view.shown_errors``."""
    from idstudio.gui.session import Session
    from idstudio.gui.views import retrieval

    sessions = []

    def open_view(root):
        shown: list[str] = []
        monkeypatch.setattr(retrieval.QMessageBox, "warning", lambda parent, title, text: shown.append(text))
        session = Session()
        session.open(root)
        sessions.append(session)
        v = retrieval.RetrievalView(session)
        v.shown_errors = shown
        qtbot.addWidget(v)
        v.resize(1300, 800)
        v.show()
        return v

    yield open_view
    for session in sessions:
        session.runner.shutdown()
        session.close()

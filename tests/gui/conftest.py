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

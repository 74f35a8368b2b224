"""Helpers for the tests that drive the real main window (its fixture, `window`, is in conftest.py)."""

from __future__ import annotations


def _wait_job(qtbot, window, handle, timeout=120000):
    qtbot.waitUntil(lambda: not handle.running, timeout=timeout)
    assert handle.status == "finished", (handle.status, handle.error, window.errors)
    return handle.result


def _press(qtbot, widget, key, modifier=None):
    from PySide6.QtCore import Qt

    qtbot.keyClick(widget, key, modifier or Qt.KeyboardModifier.NoModifier)

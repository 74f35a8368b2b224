"""The Data view shows the decoded-crop cache, builds it as a job and drops it."""

from __future__ import annotations

import pytest

from window_helpers import _wait_job

pytestmark = pytest.mark.gui


def test_data_view_builds_shows_and_drops_the_crop_cache(qtbot, window, copy_project, tmp_path):
    root = copy_project()
    assert window.open_project(root)
    data = window.show_view("data")
    panel = data.crop_cache
    assert panel.label.text().startswith("Crop cache: none yet")
    panel.size.setCurrentText("64x32")
    _wait_job(qtbot, window, panel.build())
    qtbot.waitUntil(lambda: "Crop cache 64x32:" in panel.label.text(), timeout=5000)
    n = window.session.project.count("instances")
    assert f"{n} crops, up to date." in panel.label.text()
    data.grab().save(str(tmp_path / "data-cache.png"))
    panel.drop()
    assert panel.label.text().startswith("Crop cache: none yet") and "Dropped 64x32" in panel.label.text()
    panel.drop()  # nothing left of that size: one sentence, nothing raised
    assert "has no crop cache at 64x32" in panel.label.text()

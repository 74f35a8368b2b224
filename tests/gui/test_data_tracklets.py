"""Tracklet folders and sites in the Data view: + Tracklets imports as a job (a bad folder is
one sentence and stores nothing), the crops browse like a video's frames, the Site column is
edited (a bad name changes nothing), and the links of an imported set are reviewed by
keyboard and found again after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from window_helpers import _press, _wait_job

pytestmark = pytest.mark.gui


def _image(path: Path, seed: int) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path.with_suffix(".png")), rng.integers(0, 255, (48, 20, 3), dtype=np.uint8))


def prid(root: Path, people: int = 3, crops: int = 3) -> Path:
    """A small PRID2011-layout folder: cam_a/person_0001/0001.png ... (random 48x20 crops)."""
    for cam in ("cam_a", "cam_b"):
        for p in range(1, people + 1):
            for k in range(1, crops + 1):
                _image(root / cam / f"person_{p:04d}" / f"{k:04d}", p * 100 + k)
    return root


def _close_boxes() -> None:
    from PySide6.QtWidgets import QApplication, QMessageBox

    for box in [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]:
        box.close()


def _video_rows(data) -> list:
    top = data.sources.topLevelItem(0)
    return [top.child(i) for i in range(top.childCount())]


def test_tracklets_import_through_the_data_view_and_browse_like_videos(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QPushButton

    from idstudio.gui.import_dialog import ImportDialog
    from idstudio.gui.views.data import SITE_COLUMN
    from idstudio.services import ingest

    folder = prid(tmp_path / "prid", people=3, crops=3)
    # the dialog's params are what the button's job gets
    dialog = ImportDialog("tracklets")
    dialog.fields["path"].edit.setText(str(folder))
    assert dialog.problem() is None and dialog.params() == {"path": folder, "site": None}
    dialog.fields["site"].setText("x" * 81)
    assert dialog.problem() == "A site name is at most 80 characters, not 81."
    dialog.deleteLater()

    window.open_project(tmp_path / "p", create=True)
    data = window.show_view("data")
    assert "+ Tracklets" in [b.text() for b in data.findChildren(QPushButton)]
    result = _wait_job(qtbot, window, data.start_import("tracklets", {"path": folder}))
    assert result["cameras"] == ["cam_a", "cam_b"] and result["crops"] == 18
    qtbot.waitUntil(lambda: len(_video_rows(data)) == 2, timeout=5000)
    videos = window.session.project.videos()
    assert [(v["name"], v["kind"], v["site"]) for v in videos] == [
        ("prid/cam_a", "tracklets", ingest.DEFAULT_TRACKLET_SITE), ("prid/cam_b", "tracklets", ingest.DEFAULT_TRACKLET_SITE)]
    rows = _video_rows(data)
    assert data.sources.topLevelItem(0).text(0) == "Tracklet cameras"
    assert data.summary.text() == "0 videos · 2 tracklet cameras · 18 frames · 18 instances · 0 labelled datasets"
    window._update_status()
    assert "  ·  0 videos  ·  2 tracklet cameras  ·  18 instances  ·  " in window.status_label.text()
    assert [r.text(0) for r in rows] == ["prid/cam_a", "prid/cam_b"]
    assert [r.text(SITE_COLUMN) for r in rows] == [ingest.DEFAULT_TRACKLET_SITE] * 2
    assert data.sites.label.text() == f"Links: site '{ingest.DEFAULT_TRACKLET_SITE}' holds 2 cameras."

    # a camera's crops browse like a video's frames: each "frame" is the crop image itself
    assert data.video["kind"] == "tracklets" and len(data.frame_numbers) == 9
    assert data.model.rowCount() == 9
    qtbot.waitUntil(lambda: data.canvas.image is not None and not data._waiting, timeout=10000)
    assert (data.canvas.image.width(), data.canvas.image.height()) == (20, 48)
    assert (data.canvas.source_size.width(), data.canvas.source_size.height()) == (20, 48)
    assert data.frame_label.text().startswith("crop 1 · tracklet 0") and "tracklets" in data.frame_title.text()
    assert f"site '{ingest.DEFAULT_TRACKLET_SITE}'" in data.frame_title.text()  # quoted: never "site site 1"
    data.go_to_frame(data.frame_numbers[4])
    qtbot.waitUntil(lambda: data.current_frame == data.frame_numbers[4] and not data._waiting, timeout=10000)
    assert "tracklet 1" in data.frame_label.text()
    qtbot.waitUntil(lambda: len(data.loader.cache) > 0, timeout=10000)  # the grid's thumbnails are the crops
    data.sources.setCurrentItem(rows[1])
    assert data.video["name"] == "prid/cam_b"


def test_a_bad_tracklet_folder_is_one_sentence_and_stores_nothing(qtbot, window, tmp_path):
    flat = tmp_path / "flat"
    _image(flat / "0001", 1)  # crops with no camera and tracklet folders
    window.open_project(tmp_path / "p", create=True)
    handle = window.views["data"].start_import("tracklets", {"path": flat})
    qtbot.waitUntil(lambda: not handle.running, timeout=20000)
    assert handle.status == "failed"
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    message = window.errors[-1]
    assert "is not a folder of tracklets in a known layout" in message and "\n" not in message
    assert message.endswith(".")
    assert window.session.project.videos() == [] and window.session.project.count("instances") == 0
    _close_boxes()


def test_sites_are_edited_in_the_data_view_and_a_bad_name_changes_nothing(qtbot, window, tmp_path, monkeypatch):
    from idstudio.gui import sites_panel
    from idstudio.gui.views.data import SITE_COLUMN
    from idstudio.services import ingest

    root = tmp_path / "p"
    ingest.import_tracklets(root, prid(tmp_path / "prid"), site="none")  # at no site
    window.open_project(root)
    data = window.show_view("data")
    rows = _video_rows(data)
    assert [r.text(SITE_COLUMN) for r in rows] == ["—", "—"]
    assert data.sites.label.text().startswith("Links: no site holds two cameras")

    # the Site… button acts on the selected videos
    for r in rows:
        r.setSelected(True)
    assert sorted(data.selected_video_ids()) == [v["id"] for v in window.session.project.videos()]
    answers = iter([("hall", True)])
    monkeypatch.setattr(sites_panel.QInputDialog, "getText", lambda *a, **k: next(answers))
    data.sites.button.click()
    assert [v["site"] for v in window.session.project.videos()] == ["hall", "hall"]
    rows = _video_rows(data)
    assert [r.text(SITE_COLUMN) for r in rows] == ["hall", "hall"]
    assert len(data.selected_video_ids()) == 2  # the selection survives the reload
    assert data.sites.label.text() == "Links: site 'hall' holds 2 cameras."

    # a double-click on one video's Site cell changes that video only
    monkeypatch.setattr(sites_panel.QInputDialog, "getText", lambda *a, **k: ("  mall ", True))
    data.sources.itemDoubleClicked.emit(rows[1], SITE_COLUMN)
    assert [v["site"] for v in window.session.project.videos()] == ["hall", "mall"]
    assert data.sites.label.text().startswith("Links: no site holds two cameras")
    monkeypatch.setattr(sites_panel.QInputDialog, "getText", lambda *a, **k: ("ignored", False))  # Cancel
    data.sources.itemDoubleClicked.emit(_video_rows(data)[0], SITE_COLUMN)
    assert [v["site"] for v in window.session.project.videos()] == ["hall", "mall"]

    # a name over 80 characters is refused with the one sentence; nothing changes
    ids = [v["id"] for v in window.session.project.videos()]
    assert not data.sites.edit(ids, "x" * 81)
    assert window.errors[-1] == "A site name is at most 80 characters, not 81."
    assert data.sites.last_error == window.errors[-1]
    assert [v["site"] for v in window.session.project.videos()] == ["hall", "mall"]
    _close_boxes()


@pytest.fixture
def linked_tracklets(tmp_path):
    from idstudio.services import ingest, links, mining

    root = tmp_path / "proj"
    ingest.import_tracklets(root, prid(tmp_path / "prid", people=6, crops=4), site="hall")
    mining.mine(root, mining.MineConfig(dim=32))
    links.link(root, links.LinkConfig(checkpoint="init", link_min_similarity=-1.0, link_keep=1.0, link_min_members=2,
                                      link_min_reliability=0.0, device="cpu"))
    return root


def test_review_tracklet_links_by_keyboard_and_find_them_after_a_restart(qtbot, window, linked_tracklets):
    from PySide6.QtCore import Qt

    from idstudio.services import review

    window.open_project(linked_tracklets)
    pairs = window.show_view("pairs")
    panel = pairs.links
    pairs.show_links()
    qtbot.waitUntil(lambda: len(panel.rows) >= 2, timeout=10000)
    panel.setFocus()
    qtbot.waitUntil(panel.hasFocus, timeout=2000)
    first, second = panel.rows[0], panel.rows[1]
    assert {first["video_a"], first["video_b"]} == {"prid/cam_a", "prid/cam_b"}  # across the site's two cameras
    assert panel.strips[0].members and panel.strips[1].members  # each imported tracklet shown as a strip of crops
    shown = lambda: all(not c.pixmap().isNull() for s in panel.strips for c in s.crops if c.isVisibleTo(s))  # noqa: E731
    qtbot.waitUntil(shown, timeout=10000)  # the crops arrive (the Pairs tab opening second must not drop their requests)

    _press(qtbot, panel, Qt.Key.Key_A)
    _press(qtbot, panel, Qt.Key.Key_R)
    project = window.session.project
    key = lambda r: (min(r["a"], r["b"]), max(r["a"], r["b"]))  # noqa: E731
    assert review.current_decisions(project) == {key(first): "accept", key(second): "reject"}
    assert panel.position == 2 and pairs.position == 0

    window.session.close()
    window.open_project(linked_tracklets)
    assert review.current_decisions(window.session.project) == {key(first): "accept", key(second): "reject"}
    panel.filter_combo.setCurrentIndex(3)  # Accepted
    assert [r["id"] for r in panel.rows] == [first["id"]] and panel.badge.text() == "accepted"

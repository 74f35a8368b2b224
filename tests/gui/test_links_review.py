"""Reviewing cross-video links in the Pairs view's Links tab: keyboard accept, reject, undo,
split, the Pairs tab's keys staying its own, and the decisions found after a restart."""

from __future__ import annotations

import pytest

from window_helpers import _press

pytestmark = pytest.mark.gui


@pytest.fixture
def linked_project(copy_project):
    from idstudio.services import links, mining

    root = copy_project()
    mining.mine(root, mining.MineConfig(dim=32))
    links.link(root, links.LinkConfig(checkpoint="init", link_min_similarity=-1.0, link_keep=1.0, link_min_members=2,
                                      link_min_reliability=0.0, device="cpu"))
    return root


def test_review_links_by_keyboard_undo_split_and_reopen(qtbot, window, linked_project):
    from PySide6.QtCore import Qt

    from idstudio.services import review

    window.open_project(linked_project)
    pairs = window.show_view("pairs")
    panel = pairs.links
    pairs.show_links()
    qtbot.waitUntil(lambda: len(panel.rows) >= 3, timeout=10000)
    panel.setFocus()
    qtbot.waitUntil(panel.hasFocus, timeout=2000)
    first, second = panel.rows[0], panel.rows[1]
    assert first["reliability"] <= second["reliability"]  # least reliable first
    assert panel.strips[0].members and panel.strips[1].members  # both tracklets shown as strips
    assert first["video_a"] in panel.strips[0].caption.text()

    _press(qtbot, panel, Qt.Key.Key_A)
    _press(qtbot, panel, Qt.Key.Key_R)
    project = window.session.project
    key = lambda r: (min(r["a"], r["b"]), max(r["a"], r["b"]))  # noqa: E731
    assert review.current_decisions(project) == {key(first): "accept", key(second): "reject"}
    assert panel.position == 2 and pairs.position == 0  # the Pairs tab's keys stayed quiet
    _press(qtbot, panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert review.current_decisions(project) == {key(first): "accept"} and panel.position == 1

    # split the current link's first strip before its second crop: the pairs across the cut are rejected
    while len(panel.current()["a_members"]) < 2 or not panel.strips[0].members[1:]:
        _press(qtbot, panel, Qt.Key.Key_S)
    _press(qtbot, panel, Qt.Key.Key_X)
    assert panel.splitting and panel.strips[0].numbers[1].text() == "2"
    before = len(review.current_decisions(project))
    _press(qtbot, panel, Qt.Key.Key_2)
    assert not panel.splitting
    assert len(review.current_decisions(project)) > before
    _press(qtbot, panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # one undo takes the whole split back
    assert review.current_decisions(project) == {key(first): "accept"}
    _press(qtbot, panel, Qt.Key.Key_X)
    _press(qtbot, panel, Qt.Key.Key_Escape)
    assert not panel.splitting

    # a restart (new session) finds the decision, shown on the card
    window.session.close()
    window.open_project(linked_project)
    assert review.current_decisions(window.session.project) == {key(first): "accept"}
    panel.filter_combo.setCurrentIndex(3)  # Accepted
    assert [r["id"] for r in panel.rows] == [first["id"]] and panel.badge.text() == "accepted"


def test_links_tab_without_two_videos_says_so(qtbot, window, tmp_path):
    from idstudio.core.store import Project

    Project.create(tmp_path / "empty").close()
    window.open_project(tmp_path / "empty")
    pairs = window.show_view("pairs")
    pairs.show_links()
    assert "two or more videos" in pairs.links.figures.text()

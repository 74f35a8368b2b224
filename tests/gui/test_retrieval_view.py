"""The Retrieval view on the small project: ranked results with coloured borders, worst-first
ordering, two checkpoints side by side, a failing worker's message, search by a dropped file."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def view(retrieval_view_on, copy_project):
    return retrieval_view_on(copy_project())


def _evaluate(qtbot, view, a="init", b=None):
    view.ckpt_a.setCurrentIndex(view.ckpt_a.findData(a))
    view.ckpt_b.setCurrentIndex(view.ckpt_b.findData(b))
    qtbot.mouseClick(view.eval_btn, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results["A"] is not None and (b is None or view.results["B"] is not None),
                    timeout=60000)


def _colour_pixels(widget, colour, tol=40) -> int:
    from PySide6.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=image.sizeInBytes()).reshape(image.height(), image.bytesPerLine())
    arr = arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    return int((np.abs(arr - np.array(colour)).sum(axis=2) < tol).sum())


def test_ranked_results_with_coloured_borders(qtbot, view):
    from idstudio.gui.ranked_grid import IGNORED, RIGHT, WRONG

    _evaluate(qtbot, view, "init")
    res = view.results["A"]
    assert res.summary["n_queries"] > 0 and 0 <= res.summary["mAP"] <= 1
    assert view.summary.values[0]["mAP"].text() == f"{100 * res.summary['mAP']:.1f}"
    # worst first: the first row of the table is the lowest AP
    assert view.order_box.currentText().startswith("Worst first")
    first = view.query_proxy.mapToSource(view.query_proxy.index(0, 0)).row()
    assert res.ap[first] == np.nanmin(res.ap)
    tiles = view.grid_a.tiles()
    assert len(tiles) == min(50, len(res.g_ids))
    assert [t.rank for t in tiles[:3]] == [1, 2, 3]
    statuses = {t.status for t in tiles}
    assert statuses <= {RIGHT, WRONG, IGNORED} and WRONG in statuses
    # statuses match the protocol's ranked list for the selected query
    assert [t.status for t in tiles] == res.status[view.current_row].tolist()
    # thumbnails decode off the GUI thread, then the borders are painted in their colours
    qtbot.waitUntil(lambda: view.loader.pending() == 0, timeout=10000)
    qtbot.wait(50)
    assert _colour_pixels(view.grid_a, (0xD6, 0x3A, 0x2F)) > 200  # red borders (wrong)
    row_with_right = int(np.argmax((res.status == RIGHT).any(axis=1)))
    view.select_query_row(row_with_right)
    qtbot.waitUntil(lambda: view.loader.pending() == 0, timeout=10000)
    assert any(t.status == RIGHT for t in view.grid_a.tiles())
    assert _colour_pixels(view.grid_a, (0x23, 0xA1, 0x3A)) > 100  # green borders (right)
    # the CMC curve and the PCA projection are drawn
    assert len(view.cmc.curves) == 1 and view.pca.gallery.data.size == len(res.g_ids)
    # the evaluation was stored
    assert view.session.project.count("evaluations") >= 1


def test_two_checkpoints_side_by_side(qtbot, view):
    _evaluate(qtbot, view, "init", "colorhist")
    a, b = view.results["A"], view.results["B"]
    assert view.grid_b.isVisible() and len(view.grid_b.tiles()) > 0
    assert view.query_model.columnCount() == 8
    view.order_box.setCurrentText("Most improved in B")
    first = view.query_proxy.mapToSource(view.query_proxy.index(0, 0)).row()
    moved = [int(x) - int(y) for x, y in zip(a.first_hit, b.first_hit) if x and y]
    assert int(a.first_hit[first]) - int(b.first_hit[first]) == max(moved)
    assert len(view.cmc.curves) == 2


def test_worker_error_is_shown(qtbot, view, monkeypatch):
    from idstudio.gui.views import retrieval

    def boom(*args):
        raise RuntimeError("embedding exploded")

    monkeypatch.setattr(retrieval, "browse_job", boom)
    view.evaluate()
    qtbot.waitUntil(lambda: bool(view.shown_errors), timeout=10000)
    assert "embedding exploded" in view.shown_errors[0]
    assert view.eval_btn.isEnabled() and "embedding exploded" in view.query_title.text()


def test_search_by_dropped_image(qtbot, view, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    _evaluate(qtbot, view, "init")
    qid = int(view.results["A"].q_ids[0])
    path = tmp_path / "probe.jpg"
    path.write_bytes(view.session.project.crop_jpegs([qid])[0])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    view.dropEvent(event)
    qtbot.waitUntil(lambda: view.search_tiles is not None, timeout=30000)
    assert "probe.jpg" in view.query_title.text()
    assert len(view.grid_a.tiles()) > 0 and view.grid_a.tiles()[0].rank == 1


def test_click_result_without_video_says_so(qtbot, view):
    _evaluate(qtbot, view, "init")
    tile = view.grid_a.tiles()[0]
    view.open_source(tile)
    assert "without a source video" in view.query_title.text()

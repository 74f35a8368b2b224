"""The Retrieval view's centralization A/B: B = A with its features centralized (k chosen
beside it), shown, stored and told apart like a second model."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def view(retrieval_view_on, copy_project):
    return retrieval_view_on(copy_project())


def test_centralization_as_its_own_a_b(qtbot, view):
    from PySide6.QtCore import Qt

    from idstudio.gui.views.retrieval import CENTRALIZED
    from idstudio.services import evaluation

    view.ckpt_a.setCurrentIndex(view.ckpt_a.findData("colorhist"))
    assert not view.central_k.isVisible()
    view.ckpt_b.setCurrentIndex(view.ckpt_b.findData(CENTRALIZED))
    assert view.central_k.isVisible()
    view.central_k.setValue(3)
    assert "k = 3" in view.cards.cells[1]["kind"].text()  # the card says what B is
    qtbot.mouseClick(view.eval_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results["A"] is not None and view.results["B"] is not None, timeout=60000)
    a, b = view.results["A"], view.results["B"]
    assert not view.shown_errors
    assert (a.extra["centralize"], b.extra["centralize"]) == (0, 3)
    assert a.checkpoint == b.checkpoint == "colorhist"
    # B's figures are those of `eval --centralize 3`, beside A's with the difference
    expect = evaluation.evaluate(view.session.project, "colorhist", a.dataset_id, centralize=3, store=False)
    assert b.summary["mAP"] == pytest.approx(expect["mAP"], abs=1e-9)
    assert b.summary["mAP"] != pytest.approx(a.summary["mAP"], abs=1e-4)
    assert view.summary.values[1]["mAP"].text().startswith(f"{100 * expect['mAP']:.1f}")
    assert "centralized (k = 3)" in view.label_b.text() and view.grid_b.isVisible()
    assert len(view.cmc.curves) == 2
    assert view.order_box.findText("Most improved in B") >= 0
    stored = [r["metrics"]["centralize"] for r in evaluation.evaluations(view.session.project)[-2:]]
    assert sorted(stored) == [0, 3]
    # back to no B: the k box goes, the next evaluation is A alone
    view.ckpt_b.setCurrentIndex(view.ckpt_b.findData(None))
    assert not view.central_k.isVisible()
    qtbot.mouseClick(view.eval_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results["A"] is not None and not view._pending, timeout=60000)
    assert view.results["B"] is None and not view.grid_b.isVisible()

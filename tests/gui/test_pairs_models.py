"""The Pairs view's mining form chooses its model from the latest run, the runs, the
registered models (a teacher from elsewhere) and init; mining with a registered ONNX model
stores a round made with it."""

from __future__ import annotations

import pytest

from idstudio import cli
from idstudio.core.model import ModelSpec, build_model, save_checkpoint
from idstudio.core.store import Project

pytestmark = pytest.mark.gui


def test_mining_form_mines_with_a_registered_model(qtbot, copy_project, tmp_path):
    from idstudio.gui.session import Session
    from idstudio.gui.views.pairs import PairsView

    root = copy_project()
    model, _ = build_model(ModelSpec(dim=32, height=32, width=16, last_stride=2), weights="none", seed=5)
    ckpt = save_checkpoint(tmp_path / "teacher.pt", model)
    assert cli.main(["export", str(root), "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                     str(tmp_path / "teacher.onnx"), "--quiet"]) == 0
    session = Session()
    session.open(root)
    view = PairsView(session)
    qtbot.addWidget(view)
    try:
        box = view.checkpoint_box
        assert box.findData("model:teacher") < 0
        assert cli.main(["model", "add", str(root), str(tmp_path / "teacher.onnx"), "--name", "teacher"]) == 0
        session.notify("models")
        assert [box.itemData(i) for i in range(box.count())] == ["", "model:teacher", "init"]
        assert "teacher (onnx, 32x16)" in box.itemText(1)
        box.setCurrentIndex(1)
        assert view.mine_form.config().checkpoint == "model:teacher"
        view.mine_form.set_values({"checkpoint": "init"})  # a preset or a reset moves the choice too
        assert box.currentData() == "init"
        box.setCurrentIndex(box.findData("model:teacher"))
        handle = view.start_mining()
        qtbot.waitUntil(lambda: not handle.running, timeout=180000)
        assert handle.status == "finished", handle.status
        with Project.open(root) as project:
            row = project.query("SELECT checkpoint, n_pairs FROM mining_rounds ORDER BY id DESC LIMIT 1")[0]
        assert row["checkpoint"] == "model:teacher" and row["n_pairs"] > 0
    finally:
        view.shutdown()
        session.runner.shutdown()
        session.close()

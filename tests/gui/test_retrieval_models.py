"""Model against model in the Retrieval view: a registered ONNX model as A and a run as B on
the real market-sample, the A/B figures and deltas checked against `idstudio eval --json`;
the model card panel shows what each expects; a model registered from the view."""

from __future__ import annotations

import json
import re
import time

import pytest

from idstudio import cli
from idstudio.core.model import ModelSpec, build_model, save_checkpoint
from idstudio.core.store import Project

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def market_project(tmp_path_factory, real_data):
    """market-sample, a finished run (a seeded ResNet-18 as its best.pt) and the ONNX export
    of another seeded model, registered as 'outside'."""
    from idstudio.services import ingest

    base = tmp_path_factory.mktemp("retrieval-models")
    root = base / "market"
    ingest.import_market(root, real_data / "market-sample", name="market-sample")
    spec = ModelSpec()
    with Project.open(root) as project:
        run_model, _ = build_model(spec, weights="none", seed=11)
        save_checkpoint(project.runs_dir / "run-b" / "best.pt", run_model)
        with project.transaction():
            project.conn.execute(
                "INSERT INTO runs (id, kind, status, config, epochs_done, created_at) VALUES (?, 'train', 'finished', ?, 2, ?)",
                ("run-b", json.dumps(spec.to_dict()), time.time()))
    other, _ = build_model(spec, weights="none", seed=12)
    ckpt = save_checkpoint(base / "other.pt", other)
    assert cli.main(["export", str(root), "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                     str(base / "outside.onnx"), "--quiet"]) == 0
    assert cli.main(["model", "add", str(root), str(base / "outside.onnx")]) == 0
    return root


@pytest.fixture
def view(retrieval_view_on, market_project):
    return retrieval_view_on(market_project)


def cli_figures(root, ref, capsys) -> dict:
    capsys.readouterr()
    assert cli.main(["eval", str(root), "--checkpoint", ref, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_registered_onnx_as_a_against_a_run_as_b(qtbot, view, market_project, capsys):
    from PySide6.QtCore import Qt

    assert view.ckpt_a.findData("model:outside") >= 0 and view.ckpt_b.findData("model:outside") >= 0
    view.ckpt_a.setCurrentIndex(view.ckpt_a.findData("model:outside"))
    view.ckpt_b.setCurrentIndex(view.ckpt_b.findData("run-b"))
    # the card panel says what each model expects before anything runs
    assert view.cards.cells[0]["kind"].text() == "onnx"
    assert view.cards.cells[0]["normalisation"].text() == "none (inside the model)"
    assert view.cards.cells[1]["kind"].text() == "idstudio resnet18"
    assert view.cards.cells[1]["input"].text() == "128x64 (squash)"
    assert view.cards.cells[1]["output"].text() == "256-d, L2-normalised"
    qtbot.mouseClick(view.eval_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results["A"] is not None and view.results["B"] is not None, timeout=120000)
    assert not view.shown_errors
    a_cli, b_cli = cli_figures(market_project, "outside", capsys), cli_figures(market_project, "run-b", capsys)
    a, b = view.results["A"], view.results["B"]
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "n_queries"):
        assert a.summary[key] == pytest.approx(a_cli[key], abs=1e-9), key
        assert b.summary[key] == pytest.approx(b_cli[key], abs=1e-9), key
    assert a_cli["mAP"] != b_cli["mAP"]  # two different models: the deltas say something
    for key in ("rank1", "mAP", "mINP"):
        text = view.summary.values[1][key].text()
        shown = float(re.search(r"\(([+-]\d+\.\d)\)", text).group(1))
        assert shown == pytest.approx(round(100 * (b_cli[key] - a_cli[key]), 1), abs=0.051), key
        assert view.summary.values[0][key].text() == f"{100 * a_cli[key]:.1f}"
    # per-query rank shifts: 1st-hit columns of A and B as the protocol computed them
    moved = view.query_model.column_of("delta")
    for row in range(len(a.q_ids)):
        ha, hb = int(a.first_hit[row]), int(b.first_hit[row])
        if ha and hb:
            assert view.query_model.value(row, moved) == ha - hb
    assert view.label_a.text().startswith("A: outside (onnx")


def test_register_a_model_from_the_view(qtbot, view, market_project, tmp_path):
    from idstudio.core.errors import UserError
    from idstudio.gui.model_dialog import AddModelDialog

    dialog = AddModelDialog(view)
    with pytest.raises(UserError, match="Choose the model file"):
        dialog.arguments()
    dialog.file_edit.setText(str(market_project / "runs" / "run-b" / "best.pt"))
    dialog.name_edit.setText("run-b-copy")
    handle = view.register_model(dialog.arguments())
    qtbot.waitUntil(lambda: not handle.running, timeout=60000)
    qtbot.waitUntil(lambda: view.ckpt_a.findData("model:run-b-copy") >= 0, timeout=5000)
    assert view.ckpt_a.currentData() == "model:run-b-copy"
    assert view.cards.cells[0]["kind"].text() == "idstudio"
    dialog.file_edit.setText(str(tmp_path / "nothing.onnx"))
    handle = view.register_model(dialog.arguments())
    qtbot.waitUntil(lambda: bool(view.shown_errors), timeout=30000)
    assert "does not exist" in view.shown_errors[-1] and view.add_model_btn.isEnabled()


def test_where_the_model_looks(qtbot, view):
    from PySide6.QtCore import Qt

    view.ckpt_a.setCurrentIndex(view.ckpt_a.findData("run-b"))
    view.ckpt_b.setCurrentIndex(view.ckpt_b.findData("model:outside"))
    qtbot.mouseClick(view.eval_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results["A"] is not None and view.results["B"] is not None, timeout=120000)
    tile = view.grid_a.tiles()[0]
    plain = view.loader

    def pixmap(loader):
        qtbot.waitUntil(lambda: loader.get(tile.instance_id) is not None, timeout=60000)
        return loader.get(tile.instance_id).toImage()

    before = pixmap(plain)
    view.look_box.setChecked(True)
    qtbot.waitUntil(lambda: view.grid_a.loader is view.overlay_loaders.get("A"), timeout=60000)
    assert view.query_tile.loader is view.grid_a.loader
    after = pixmap(view.grid_a.loader)
    assert after.size() == before.size() and after != before  # the crop, tinted by A's activation map
    # B is an ONNX file: no feature map to look at, said beside its results; its tiles stay plain
    qtbot.waitUntil(lambda: "no activation maps" in view.label_b.text(), timeout=30000)
    assert view.grid_b.loader is plain and not view.shown_errors
    view.look_box.setChecked(False)
    assert view.grid_a.loader is plain and "no activation maps" not in view.label_b.text()

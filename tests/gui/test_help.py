"""In-app help: the shortcuts table, Help ▸ Shortcuts, Help ▸ Doctor (worker thread, the
window stays live), and a tooltip with help text and default on every training parameter."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

pytestmark = pytest.mark.gui


def test_shortcuts_table_has_the_documented_keys():
    from idstudio.gui.help import SHORTCUTS, shortcuts_markdown

    by_key = {}
    for keys, text, area in SHORTCUTS:
        assert text and area
        for k in keys:
            by_key.setdefault(k, []).append(text.lower())
    expect = {"A": "accept", "R": "reject", "S": "skip", "Space": "skip", "Ctrl+Z": "undo",
              "Ctrl+Shift+Z": "redo", "L": "relink", "Left": "previous", "Right": "next",
              "Ctrl+1": "data", "Ctrl+2": "pairs", "Ctrl+3": "train", "Ctrl+4": "retrieval"}
    for key, word in expect.items():
        assert any(word in t for t in by_key.get(key, [])), (key, by_key.get(key))
    all_keys = [k for keys, _, _ in SHORTCUTS for k in keys]
    table = shortcuts_markdown()
    assert table.count("\n") == len(SHORTCUTS) + 1 and "`Ctrl+Shift+Z`" in table
    # one key, one action within an area
    seen = {}
    for keys, text, area in SHORTCUTS:
        for k in keys:
            assert (area, k) not in seen, f"{k} bound twice in {area}"
            seen[(area, k)] = text
    assert len(all_keys) >= 13


def test_show_shortcuts_lists_every_shortcut(qtbot):
    from idstudio.gui.help import SHORTCUTS, show_shortcuts

    dialog = show_shortcuts(None)
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    assert dialog.table.rowCount() == len(SHORTCUTS)
    actions = {dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())}
    assert actions == {text for _, text, _ in SHORTCUTS}
    dialog.close()


def test_help_doctor_runs_in_a_thread_and_shows_the_report(qtbot, tmp_path):
    from PySide6.QtCore import QTimer

    from idstudio.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.session.root = tmp_path  # the doctor checks the open project's folder
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "Help")
    doctor_action = next(a for a in help_menu.actions() if a.text().replace("&", "").startswith("Doctor"))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(50)
    doctor_action.trigger()
    dialog = window._doctor_dialog
    assert dialog.running and dialog.report is None  # returned at once; the checks run in a thread
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=240_000)
    timer.stop()
    # Timer ticks arrived while the checks ran: the event loop was not blocked. (How many
    # depends on the machine's speed, so only their presence is asserted.)
    assert ticks, "the event loop must keep running while the doctor works"
    text = dialog.text.toPlainText()
    for name in ("Python", "torch/torchvision", "GPU", "Qt platform", "OpenCV", "faiss", "Project folder"):
        assert f"] {name}:" in text
    assert str(tmp_path) in text
    assert dialog.report.ok, text
    assert dialog.rerun_button.isEnabled()
    dialog.close()


def _config_classes():
    classes = []
    for module_name in ("idstudio.services.train_config", "idstudio.services.mining", "idstudio.core.mining"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for name in ("TrainConfig", "MineConfig"):
            cls = getattr(module, name, None)
            if cls is not None and dataclasses.is_dataclass(cls) and cls not in classes:
                classes.append(cls)
    return classes


def test_every_training_parameter_has_a_tooltip_with_help_and_default(qtbot):
    classes = _config_classes()
    if not classes:
        pytest.skip("TrainConfig/MineConfig not built yet")
    from idstudio.gui.config_form import ConfigForm

    for cls in classes:
        for f in dataclasses.fields(cls):
            help_text = f.metadata.get("help", "")
            assert help_text.strip(), f"{cls.__name__}.{f.name} needs a help text saying what it does"
        form = ConfigForm(cls)
        qtbot.addWidget(form)
        for name, widget in form.widgets.items():
            tip = widget.toolTip()
            help_text = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]
            assert help_text in tip and "(default: " in tip, (cls.__name__, name, tip)

"""Keyboard shortcuts: one table of defaults, user overrides in QSettings (``shortcuts/<name>``).

Views ask ``shortcuts.keys(name)`` when they build their actions and listen to
``shortcuts.notifier.changed`` to rebind; the Help dialog lists and edits them.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QKeySequence

# name -> (default key sequences, description, area)
DEFAULTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "view.data": (("Ctrl+1",), "Show the Data view", "Window"),
    "view.pairs": (("Ctrl+2",), "Show the Pairs view", "Window"),
    "view.train": (("Ctrl+3",), "Show the Train view", "Window"),
    "view.retrieval": (("Ctrl+4",), "Show the Retrieval view", "Window"),
    "project.open": (("Ctrl+O",), "Open a project", "Window"),
    "project.new": (("Ctrl+N",), "Create a project", "Window"),
    "help.shortcuts": (("F1",), "Show the keyboard shortcuts", "Window"),
    "review.accept": (("A",), "Accept the pair (same person)", "Pairs"),
    "review.reject": (("R",), "Reject the pair (different people)", "Pairs"),
    "review.skip": (("S", "Space"), "Skip to the next pair, no decision", "Pairs"),
    "review.back": (("Backspace",), "Go back to the previous pair", "Pairs"),
    "review.undo": (("Ctrl+Z",), "Undo the last decision", "Pairs"),
    "review.redo": (("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "Pairs"),
    "review.relink": (("L",), "Relink: pick the right partner (click or 1-9)", "Pairs"),
    "review.grid": (("G",), "Switch between card and grid mode", "Pairs"),
    "review.split": (("X",), "Links: split a strip that shows two people (then 1-8, Tab, Esc)", "Pairs"),
    "data.play": (("K",), "Play / pause the video", "Data"),
    "data.next": (("Right",), "Next frame", "Data"),
    "data.prev": (("Left",), "Previous frame", "Data"),
}


class _Notifier(QObject):
    changed = Signal()


notifier = _Notifier()


def key_strings(name: str) -> list[str]:
    stored = QSettings().value(f"shortcuts/{name}")
    if stored:
        values = [stored] if isinstance(stored, str) else list(stored)
        return [v for v in values if v]
    return list(DEFAULTS[name][0])


def keys(name: str) -> list[QKeySequence]:
    return [QKeySequence(k) for k in key_strings(name)]


def set_keys(name: str, values: list[str]) -> None:
    if list(values) == list(DEFAULTS[name][0]):
        QSettings().remove(f"shortcuts/{name}")
    else:
        QSettings().setValue(f"shortcuts/{name}", list(values))
    notifier.changed.emit()


def reset_all() -> None:
    QSettings().remove("shortcuts")
    notifier.changed.emit()


def describe(name: str) -> str:
    return ", ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in key_strings(name))


def bind(widget, slots: dict, old_actions: list) -> list:
    """Replace ``old_actions`` on ``widget`` with one action per named shortcut in ``slots``
    (name -> callable), active while the widget or a child has focus; returns the new list.
    Views call it again when ``notifier.changed`` says the user rebound a key."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction

    for action in old_actions:
        widget.removeAction(action)
    actions = []
    for name, slot in slots.items():
        action = QAction(DEFAULTS[name][1], widget)
        action.setShortcuts(keys(name))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        widget.addAction(action)
        actions.append(action)
    return actions

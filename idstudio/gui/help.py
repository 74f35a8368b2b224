"""In-app help: the keyboard shortcuts table (Help ▸ Keyboard shortcuts) and the Doctor.

The keys themselves live in ``gui/shortcuts.py`` (defaults + the user's overrides); this
module exposes them as one table for the dialog, the tests and the README.
"""

from __future__ import annotations

from idstudio.gui import shortcuts

# (keys, what it does, where) for every default shortcut, in the order the dialog lists them.
SHORTCUTS: list[tuple[tuple[str, ...], str, str]] = [
    (keys, text, area) for keys, text, area in shortcuts.DEFAULTS.values()
]


def shortcut_rows() -> list[tuple[str, str, str]]:
    """(area, action, keys as the user has them now) for every shortcut."""
    return [(area, text, ", ".join(shortcuts.key_strings(name)))
            for name, (_, text, area) in shortcuts.DEFAULTS.items()]


def shortcuts_markdown() -> str:
    """The default shortcuts as a Markdown table (README, `python -m idstudio.gui.help`)."""
    lines = ["| Keys | Action | Where |", "| --- | --- | --- |"]
    for keys, text, area in SHORTCUTS:
        lines.append(f"| {' or '.join(f'`{k}`' for k in keys)} | {text} | {area} |")
    return "\n".join(lines)


def show_shortcuts(parent=None):
    """Help ▸ Keyboard shortcuts: the window's shortcuts dialog (lists and edits keys), shown non-modally."""
    from PySide6.QtCore import Qt

    from idstudio.gui.main_window import ShortcutsDialog

    dialog = ShortcutsDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def show_doctor(parent=None):
    """Help ▸ Doctor (see ``gui/doctor_dialog.py``)."""
    from idstudio.gui.doctor_dialog import show_doctor as _show

    return _show(parent)


if __name__ == "__main__":
    print(shortcuts_markdown())

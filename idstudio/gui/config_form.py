"""A form generated from a job's config dataclass: one widget per field, grouped by ``group``.

There is no second copy of the fields: the widgets, their tooltips (help + default) and
their choices all come from ``core.config`` metadata, and :meth:`ConfigForm.config` builds
the object through ``config.from_dict`` -- the same coercion the CLI's ``config.build``
uses -- so the GUI's Start button runs exactly the config the CLI would build from flags.

No widget shows a sentinel: a field's ``special=(value, word)`` (``-1`` meaning auto, ``0``
meaning never) is shown as its word. ``set_resolved`` writes, under each field, the value that
will really run and why (``services.recipe``); ``set_chooser`` turns a free-text field with a few
valid values into an editable list with a file button, checked as the user types.

Presets are partial dicts of field values: built-ins as JSON in ``resources/presets/<kind>/``
and the user's own in ``QSettings`` (``presets/<ClassName>/<name>``).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from idstudio.core import config as cfgmod
from idstudio.core.errors import UserError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "resources" / "presets"


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class FloatSpinBox(QDoubleSpinBox):
    """A double spin box that shows 3e-04 as 0.0003 and keeps full precision."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(-1e12, 1e12)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        if self.specialValueText() and text.strip() == self.specialValueText():
            return self.minimum()
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D102
        from PySide6.QtGui import QValidator

        stripped = text.strip()
        word = self.specialValueText()
        if word and stripped == word:
            return QValidator.State.Acceptable, text, pos
        if word and stripped and word.startswith(stripped):
            return QValidator.State.Intermediate, text, pos
        if stripped in ("", "-", "+", ".", "-.") or stripped.lower().endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            float(stripped)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos

    def set_step_for(self, value: float) -> None:
        import math

        magnitude = 10 ** math.floor(math.log10(abs(value))) if value else 0.1
        self.setSingleStep(magnitude / 10 if magnitude < 1 else magnitude)


class ConfigForm(QWidget):
    """Widgets for every field of ``cls``; ``config()`` returns a ``cls`` instance."""

    changed = Signal()

    def __init__(self, cls: type, parent: QWidget | None = None, skip: tuple[str, ...] = (),
                 preset_kind: str | None = None):
        super().__init__(parent)
        self.cls = cls
        self.skip = set(skip)
        self.preset_kind = preset_kind or cls.__name__.lower().removesuffix("config")
        self.fields = [f for f in cfgmod.ordered_fields(cls) if f.name not in self.skip]
        self.types = {f.name: cfgmod.field_type(cls, f) for f in self.fields}
        self.widgets: dict[str, QWidget] = {}
        self.notes: dict[str, QLabel] = {}     # under each field: the value that runs, and why
        self.errors: dict[str, str] = {}       # field -> one sentence, for a value that cannot work
        self.checks: dict[str, Any] = {}       # field -> check(text) -> sentence | None (choosers)
        self.resolved: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}
        self.groups: dict[str, QGroupBox] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        forms: dict[str, QFormLayout] = {}
        for f in self.fields:
            group = f.metadata.get("group", "General")
            if group not in forms:
                box = QGroupBox(group, self)
                form = QFormLayout(box)
                form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
                form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
                form.setContentsMargins(6, 4, 6, 4)
                form.setVerticalSpacing(3)
                layout.addWidget(box)
                forms[group] = form
                self.groups[group] = box
            widget = self._make_widget(f)
            widget.setObjectName(f"field_{f.name}")
            tip = f"{f.metadata.get('help', '')}\n(default: {_fmt(_default(f)) or 'none'}; flag --{f.name.replace('_', '-')})"
            widget.setToolTip(tip.strip())
            label = f.name.replace("_", " ")
            label = label[:1].upper() + label[1:]
            cell = QWidget(self)  # the field, and under it a note with the value that will run
            cv = QVBoxLayout(cell)
            cv.setContentsMargins(0, 0, 0, 0)
            cv.setSpacing(0)
            cv.addWidget(widget)
            note = QLabel(cell)
            note.setObjectName(f"note_{f.name}")
            note.setWordWrap(True)
            note.setStyleSheet("color: #777; font-size: 8pt")
            note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            note.hide()
            cv.addWidget(note)
            forms[group].addRow(label, cell)
            forms[group].labelForField(cell).setToolTip(tip)
            self.widgets[f.name] = widget
            self.notes[f.name] = note
        layout.addStretch(1)
        self.set_values(cfgmod.to_dict(cls()))

    # ---- widgets -----------------------------------------------------------------------
    def _make_widget(self, f: dataclasses.Field) -> QWidget:
        tp = self.types[f.name]
        base = cfgmod.base_type(tp)
        choices = f.metadata.get("choices")
        special = f.metadata.get("special")
        default = _default(f)
        if choices is not None:
            w = QComboBox(self)
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            w.setMinimumContentsLength(6)
            for c in choices:
                w.addItem(_fmt(c), c)
            w.currentIndexChanged.connect(self.changed)
            return w
        if base is bool:
            w = QCheckBox(self)
            w.toggled.connect(self.changed)
            return w
        if base is int and not _is_optional(tp):
            w = QSpinBox(self)
            w.setRange(-2_000_000_000, 2_000_000_000)
            if special is not None:  # the sentinel is the minimum, shown as its word
                w.setMinimum(int(special[0]))
                w.setSpecialValueText(special[1])
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self.changed)
            return w
        if base is float and not _is_optional(tp):
            w = FloatSpinBox(self)
            w.set_step_for(float(default or 0.0))
            if special is not None:
                w.setMinimum(float(special[0]))
                w.setSpecialValueText(special[1])
            w.valueChanged.connect(self.changed)
            return w
        w = QLineEdit(self)
        if base is list:
            w.setPlaceholderText("comma-separated")
        elif _is_optional(tp):
            w.setPlaceholderText("none")
        if special is not None and special[0] in ("", None):
            w.setPlaceholderText(special[1])
        w.textChanged.connect(self.changed)
        return w

    def _set_widget(self, name: str, value: Any) -> None:
        w = self.widgets[name]
        if isinstance(w, QComboBox) and w.isEditable():
            w.setEditText(_fmt(value))
        elif isinstance(w, QComboBox):
            index = w.findData(value)
            if index < 0:
                index = w.findText(_fmt(value))
            if index >= 0:
                w.setCurrentIndex(index)
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value))
        elif isinstance(w, QLineEdit):
            w.setText(_fmt(value))

    def _widget_value(self, name: str) -> Any:
        w = self.widgets[name]
        if isinstance(w, QComboBox) and w.isEditable():
            return w.currentText().strip()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QSpinBox):
            return w.value()
        if isinstance(w, QDoubleSpinBox):
            return float(w.textFromValue(w.value()))
        text = w.text().strip()  # type: ignore[union-attr]
        base = cfgmod.base_type(self.types[name])
        if text == "":
            return [] if base is list else (None if _is_optional(self.types[name]) else "")
        return text  # config.coerce converts (lists: comma-separated, like the CLI flag)

    # ---- values ------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Raw values of the form's fields (strings for lists/optionals, coerced later)."""
        return {name: self._widget_value(name) for name in self.widgets}

    def config(self, **overrides: Any) -> Any:
        """The config object, built like the CLI builds it (``config.from_dict``).

        Raises ``UserError`` with one sentence when a field holds an invalid value.
        """
        errors = [message for name, message in self.errors.items() if name not in overrides]
        if errors:
            raise UserError(errors[0])
        data = self.values()
        data.update(overrides)
        return cfgmod.from_dict(self.cls, data)

    def set_values(self, values: dict[str, Any]) -> list[str]:
        """Set the given fields (others untouched); returns names that are not fields."""
        unknown = []
        self.blockSignals(True)
        try:
            for name, value in values.items():
                if name in self.widgets:
                    self._set_widget(name, value)
                elif name not in self.skip:
                    unknown.append(name)
        finally:
            self.blockSignals(False)
        self.changed.emit()
        return unknown

    # ---- what will run -------------------------------------------------------------------
    def set_resolved(self, values: dict[str, Any], reasons: dict[str, str] | None = None) -> None:
        """Under each field in ``values``: the value that will run and why (greyed); the other
        notes are cleared. A field's own error (a chooser's check) takes precedence."""
        reasons = reasons or {}
        self.resolved, self.reasons = dict(values), dict(reasons)
        for name, note in self.notes.items():
            if name in self.errors:
                continue
            if name in values:
                why = reasons.get(name, "")
                note.setText(f"→ {_fmt(values[name])}" + (f" ({why})" if why else ""))
                note.setToolTip(why)
                note.setStyleSheet("color: #777; font-size: 8pt")
                note.show()
            else:
                note.clear()
                note.hide()

    def note_text(self, name: str) -> str:
        note = self.notes[name]
        return note.text() if not note.isHidden() else ""

    # ---- choosers --------------------------------------------------------------------------
    def set_chooser(self, name: str, items: list[tuple[str, str]], check=None, file_filter: str | None = None,
                    placeholder: str = "") -> QComboBox:
        """Turn a text field into an editable list of ``items`` ((value, description) pairs: the
        value is what the field holds), with a file button when ``file_filter`` is given; each
        edit runs ``check(text) -> sentence | None`` and shows the sentence under the field."""
        old = self.widgets[name]
        if isinstance(old, QComboBox) and old.isEditable():
            box = old
            keep = box.currentText()
            box.blockSignals(True)
            box.clear()
        else:
            keep = self._widget_value(name)
            box = QComboBox(old.parentWidget())
            box.setEditable(True)
            box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            box.setObjectName(old.objectName())
            box.setToolTip(old.toolTip())
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
            box.lineEdit().setPlaceholderText(placeholder or (old.placeholderText() if isinstance(old, QLineEdit) else ""))
            row = QHBoxLayout()
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(2)
            row.addWidget(box, 1)
            if file_filter is not None:
                button = QToolButton(old.parentWidget())
                button.setText("…")
                button.setObjectName(f"file_{name}")
                button.setToolTip("Choose a file.")
                button.clicked.connect(lambda _=False, b=box, ff=file_filter: self._choose_file(b, ff))
                row.addWidget(button)
            cell = old.parentWidget()
            cell.layout().removeWidget(old)
            old.hide()
            old.deleteLater()
            cell.layout().insertLayout(0, row)
            box.blockSignals(True)
            box.editTextChanged.connect(lambda text, n=name: self._check(n, text))
            box.editTextChanged.connect(self.changed)
            self.widgets[name] = box
        for value, description in items:
            box.addItem(value, value)
            box.setItemData(box.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        box.setEditText(_fmt(keep))
        box.blockSignals(False)
        if check is not None:
            self.checks[name] = check
        self._check(name, box.currentText())
        return box

    def _choose_file(self, box: QComboBox, file_filter: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", box.currentText(), file_filter)
        if path:
            box.setEditText(path)

    def _check(self, name: str, text: str) -> None:
        check = self.checks.get(name)
        message = check(text.strip()) if check is not None else None
        note = self.notes[name]
        if message:
            self.errors[name] = message
            note.setText(message)
            note.setToolTip(message)
            note.setStyleSheet("color: #c0392b; font-size: 8pt")
            note.show()
        elif self.errors.pop(name, None) is not None:
            self.set_resolved(self.resolved, self.reasons)

    def set_config(self, config: Any) -> None:
        self.set_values(cfgmod.to_dict(config))

    def reset(self) -> None:
        self.set_values(cfgmod.to_dict(self.cls()))

    # ---- presets -----------------------------------------------------------------------
    def builtin_presets(self) -> dict[str, dict[str, Any]]:
        folder = PRESETS_DIR / self.preset_kind
        presets: dict[str, dict[str, Any]] = {}
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                name = data.pop("_name", path.stem)
                data.pop("_order", None)
                presets[name] = data
        return presets

    def user_presets(self) -> dict[str, dict[str, Any]]:
        settings = QSettings()
        settings.beginGroup(f"presets/{self.cls.__name__}")
        out = {}
        for key in settings.childKeys():
            try:
                out[key] = json.loads(str(settings.value(key)))
            except (TypeError, json.JSONDecodeError):
                continue
        settings.endGroup()
        return out

    def presets(self) -> dict[str, dict[str, Any]]:
        """Built-in presets first, then the user's ("Default" is the dataclass defaults)."""
        builtin = self.builtin_presets()
        out: dict[str, dict[str, Any]] = {} if "Default" in builtin else {"Default": {}}
        out.update(builtin)
        out.update(self.user_presets())
        return out

    def apply_preset(self, name: str) -> None:
        data = self.presets().get(name)
        if data is None:
            return
        self.reset()
        self.set_values({k: v for k, v in data.items() if k in self.widgets})

    def save_user_preset(self, name: str) -> None:
        defaults = cfgmod.to_dict(self.cls())
        current = cfgmod.to_dict(self.config())
        diff = {k: v for k, v in current.items() if k in self.widgets and v != defaults.get(k)}
        settings = QSettings()
        settings.setValue(f"presets/{self.cls.__name__}/{name}", json.dumps(diff))
        settings.sync()

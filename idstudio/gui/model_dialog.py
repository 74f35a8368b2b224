"""The "Add model" dialog: register a model file from elsewhere (``idstudio model add``).

Every field but the file is optional: empty means "the card inside the file, else the
default" (the defaults are shown as placeholders, as in ``idstudio model add --help``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from idstudio.core.errors import UserError

FILE_FILTER = "Models (*.onnx *.pt *.pth *.ts *.jit *.torchscript);;All files (*)"


def _three(text: str, what: str) -> tuple[float, float, float] | None:
    text = text.replace(",", " ").strip()
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise UserError(f"{what} takes three numbers (R G B), like 0.485 0.456 0.406.") from None
    if len(values) != 3:
        raise UserError(f"{what} takes three numbers (R G B), not {len(values)}.")
    return values  # type: ignore[return-value]


class AddModelDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, start_dir: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Add a model from elsewhere")
        self.start_dir = start_dir
        v = QVBoxLayout(self)
        intro = QLabel("ONNX, TorchScript, the ISR release's .pth or an idstudio checkpoint. idstudio's own exports "
                       "and the ISR release know their card: leave the rest empty. For other files, empty fields "
                       "take the defaults shown; the model is run once to find its output size.")
        intro.setWordWrap(True)
        intro.setObjectName("Muted")
        v.addWidget(intro)
        form = QFormLayout()
        row = QHBoxLayout()
        self.file_edit = QLineEdit(self)
        self.file_edit.setObjectName("model_file")
        self.file_edit.setPlaceholderText("model file")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self.browse)
        row.addWidget(self.file_edit, 1)
        row.addWidget(browse)
        form.addRow("File", row)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("model_name")
        self.name_edit.setPlaceholderText("the file name without extension")
        form.addRow("Name", self.name_edit)
        self.input_edit = QLineEdit(self)
        self.input_edit.setObjectName("model_input")
        self.input_edit.setPlaceholderText("256x128 (or the ONNX model's fixed size)")
        form.addRow("Input HxW", self.input_edit)
        self.resize_box = QComboBox(self)
        self.resize_box.setObjectName("model_resize")
        self.resize_box.addItem("from the file, else squash", None)
        self.resize_box.addItem("squash (stretch to HxW)", "squash")
        self.resize_box.addItem("letterbox (keep aspect, pad)", "letterbox")
        form.addRow("Resize", self.resize_box)
        self.mean_edit = QLineEdit(self)
        self.mean_edit.setPlaceholderText("0.485 0.456 0.406 (ImageNet)")
        form.addRow("Mean (R G B)", self.mean_edit)
        self.std_edit = QLineEdit(self)
        self.std_edit.setPlaceholderText("0.229 0.224 0.225 (ImageNet)")
        form.addRow("Std (R G B)", self.std_edit)
        self.scale_edit = QLineEdit(self)
        self.scale_edit.setPlaceholderText("1: inputs in [0, 1]; 255: in [0, 255]")
        form.addRow("Pixel scale", self.scale_edit)
        self.bgr_box = QCheckBox("the model takes BGR (default: RGB)", self)
        form.addRow("Colour order", self.bgr_box)
        v.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Register")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        v.addWidget(buttons)
        self.resize(520, self.sizeHint().height())

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", self.start_dir, FILE_FILTER)
        if path:
            self.file_edit.setText(path)

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``model_registry.add``; a bad field is one sentence."""
        file = self.file_edit.text().strip()
        if not file:
            raise UserError("Choose the model file to register.")
        scale = self.scale_edit.text().strip()
        try:
            scale_value = float(scale) if scale else None
        except ValueError:
            raise UserError("The pixel scale is a number: 1 for inputs in [0, 1], 255 for [0, 255].") from None
        return {"file": Path(file), "name": self.name_edit.text().strip() or None,
                "input_size": self.input_edit.text().strip() or None, "resize": self.resize_box.currentData(),
                "mean": _three(self.mean_edit.text(), "The mean"), "std": _three(self.std_edit.text(), "The std"),
                "scale": scale_value, "bgr": True if self.bgr_box.isChecked() else None}

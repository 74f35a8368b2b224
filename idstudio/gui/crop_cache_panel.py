"""The decoded-crop cache in the Data view: what it holds, building it (a job) and dropping it.

A training run builds or updates the cache of its input size by itself; this panel is for
seeing it, building it ahead (e.g. before a GPU run) and getting its disk back."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from idstudio.core.crop_cache import human_bytes
from idstudio.core.errors import UserError
from idstudio.services import crop_cache

SIZES = ("128x64", "64x32", "256x128")


def _job_build(root: Path, size: tuple[int, int], ctx):
    return crop_cache.build(root, size, ctx)


class CropCachePanel(QWidget):
    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        self.label = QLabel("", self)
        self.label.setObjectName("Muted")
        self.label.setWordWrap(True)
        self.label.setToolTip("Every crop decoded once at a model's input size, in one file beside the store, so "
                              "training and embedding never wait on JPEG decoding. A training run builds or updates "
                              "the one of its input size by itself; build one ahead here.")
        layout.addWidget(self.label)
        row = QHBoxLayout()
        self.size = QComboBox(self)
        self.size.addItems(SIZES)
        self.size.setToolTip("Model input size, height x width (the Train form's height and width)")
        self.build_button = QPushButton("Build crop cache", self)
        self.build_button.clicked.connect(self.build)
        self.drop_button = QPushButton("Drop", self)
        self.drop_button.setToolTip("Remove the cache of this size to free its disk; training decodes again until it "
                                    "rebuilds one")
        self.drop_button.clicked.connect(self.drop)
        row.addWidget(self.size)
        row.addWidget(self.build_button, 1)
        row.addWidget(self.drop_button)
        layout.addLayout(row)
        session.data_changed.connect(lambda area: self.refresh() if area in ("cache", "runs", "videos") else None)

    def refresh(self, extra: str = "") -> None:
        project = self.session.project
        for w in (self.size, self.build_button, self.drop_button):
            w.setEnabled(project is not None)
        if project is None:
            self.label.setText("")
            return
        try:
            entries = crop_cache.status(project)
            text = crop_cache.describe(entries)
        except (OSError, ValueError) as exc:  # a damaged cache file: say so, keep the view alive
            entries, text = [], f"Crop cache: cannot be read ({exc}); drop it and build it again."
        sizes = [e["size"] for e in entries]
        if sizes and self.size.currentText() not in sizes:  # point at the cache there is
            if self.size.findText(sizes[0]) < 0:
                self.size.addItem(sizes[0])
            self.size.setCurrentText(sizes[0])
        self.label.setText(text + (f"\n{extra}" if extra else ""))

    def build(self):
        if self.session.project is None:
            return None
        size = crop_cache.parse_size(self.size.currentText())
        return self.session.start_job(f"Build crop cache {self.size.currentText()}", _job_build, self.session.root,
                                      size, changes=("cache",))

    def drop(self) -> None:
        if self.session.project is None:
            return
        try:
            result = crop_cache.drop(self.session.project, crop_cache.parse_size(self.size.currentText()))
        except UserError as exc:
            self.refresh(str(exc))
            return
        self.refresh(f"Dropped {', '.join(result['dropped'])}: {human_bytes(result['freed_bytes'])} freed.")

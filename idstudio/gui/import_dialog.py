"""The Data view's import dialog and the import jobs it starts.

The jobs run in worker threads and open their own project (``gui/workers.py``);
``ImportDialog(kind).params()`` is what a job gets, so a test can hand the view those
params directly (``DataView.start_import(kind, params)``) and no dialog is shown.
"""

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
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

DETECTORS = ("motion", "hog", "file")


# ---- import jobs (run in worker threads; open their own project) ------------------------------
def _job_video(root: Path, path: Path, detector: str, det_file: Path | None, stride: int, camera: str | None, ctx):
    from idstudio.services import ingest

    return ingest.import_video(root, path, detector=detector, det_file=det_file, stride=stride, camera=camera or None, ctx=ctx)


def _job_mot(root: Path, seq_dir: Path, boxes: str, ctx):
    from idstudio.services import ingest

    return ingest.import_mot(root, seq_dir, boxes=boxes, ctx=ctx)


def _job_market(root: Path, folder: Path, name: str | None, ctx):
    from idstudio.services import ingest

    return ingest.import_market(root, folder, name=name or None, ctx=ctx)


def _job_tracklets(root: Path, folder: Path, site: str | None, ctx):
    from idstudio.services import ingest

    return ingest.import_tracklets(root, folder, site=site, ctx=ctx)


def _job_demo(root: Path, small: bool, ctx):
    from idstudio.core import synth
    from idstudio.services import ingest

    world_dir = root / "world"
    config = synth.SynthConfig.small() if small else synth.SynthConfig()
    if (world_dir / "world.json").exists():
        world = synth.World.load(world_dir)
    else:
        ctx.log(f"Generating the synthetic world in {world_dir} …")
        world = synth.generate(world_dir, config, ctx=ctx)
    ctx.check_cancelled()
    return ingest.import_world(root, world, ctx)


# ---- import dialog ----------------------------------------------------------------------------
class PathField(QWidget):
    def __init__(self, folder: bool, caption: str, filters: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(self)
        self.edit.setMinimumWidth(320)
        button = QPushButton("Browse…", self)
        button.clicked.connect(self._browse)
        row.addWidget(self.edit, 1)
        row.addWidget(button)
        self.folder, self.caption, self.filters = folder, caption, filters

    def _browse(self) -> None:
        start = str(Path(self.edit.text()).parent) if self.edit.text() else str(Path.home())
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, self.caption, start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.caption, start, self.filters)
        if path:
            self.edit.setText(path)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None


class ImportDialog(QDialog):
    """One dialog for the four import kinds; ``params()`` is what the job gets."""

    TITLES = {"video": "Import a video", "mot": "Import a MOT sequence", "market": "Import a Market-1501 folder",
              "tracklets": "Import a folder of tracklets (PRID2011, iLIDS-VID, MARS)", "demo": "Import the demo world"}

    def __init__(self, kind: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.setWindowTitle(self.TITLES[kind])
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(form)
        self.fields: dict[str, Any] = {}
        if kind == "video":
            self.fields["path"] = PathField(False, "Choose a video", "Videos (*.mp4 *.avi *.mov *.mkv *.mpg *.webm);;All files (*)")
            self.fields["detector"] = QComboBox()
            self.fields["detector"].addItems(["motion — background subtraction", "hog — OpenCV people detector",
                                              "file — MOT det.txt file"])
            self.fields["det_file"] = PathField(False, "Choose a MOT det.txt", "Text (*.txt);;All files (*)")
            self.fields["det_file"].setEnabled(False)
            self.fields["detector"].currentIndexChanged.connect(lambda i: self.fields["det_file"].setEnabled(i == 2))
            self.fields["stride"] = QSpinBox()
            self.fields["stride"].setRange(1, 100)
            self.fields["stride"].setToolTip("Keep every N-th frame")
            self.fields["camera"] = QLineEdit()
            self.fields["camera"].setPlaceholderText("default: the file name")
            for label, key in (("Video file", "path"), ("Detector", "detector"), ("Detections file", "det_file"),
                               ("Frame stride", "stride"), ("Camera", "camera")):
                form.addRow(label, self.fields[key])
        elif kind == "mot":
            self.fields["path"] = PathField(True, "Choose a MOT sequence folder (with seqinfo.ini)")
            self.fields["boxes"] = QComboBox()
            self.fields["boxes"].addItems(["gt", "det"])
            self.fields["boxes"].setToolTip("gt: ground-truth boxes; det: detections (identities from gt by overlap)")
            form.addRow("Sequence folder", self.fields["path"])
            form.addRow("Boxes", self.fields["boxes"])
        elif kind == "market":
            self.fields["path"] = PathField(True, "Choose a Market-1501 folder (query/, bounding_box_test/)")
            self.fields["name"] = QLineEdit()
            self.fields["name"].setPlaceholderText("default: the folder name")
            form.addRow("Folder", self.fields["path"])
            form.addRow("Dataset name", self.fields["name"])
        elif kind == "tracklets":
            from idstudio.services.ingest import DEFAULT_TRACKLET_SITE

            self.fields["path"] = PathField(True, "Choose a folder of tracklets (e.g. cam_a/person_0001/0001.png)")
            self.fields["path"].setToolTip("PRID2011 cam_a/person_0001/0001.png, iLIDS-VID cam1/person001/*.png or "
                                           "MARS bbox_train/0001/0001C1T0001F001.jpg: each camera becomes one source")
            self.fields["site"] = QLineEdit()
            self.fields["site"].setPlaceholderText(f"default: {DEFAULT_TRACKLET_SITE}")
            self.fields["site"].setToolTip("Where the cameras filmed: links join cameras of one site only "
                                           "('none': at no site; change it later in the Site column)")
            form.addRow("Folder", self.fields["path"])
            form.addRow("Site", self.fields["site"])
        else:
            info = QLabel("Generates a seeded multi-camera pedestrian world with ground truth inside the project "
                          "folder (world/) and imports its videos and its labelled query/gallery split.")
            info.setWordWrap(True)
            self.fields["small"] = QCheckBox("Small world (generates in seconds)")
            self.fields["small"].setChecked(True)
            form.addRow(info)
            form.addRow(self.fields["small"])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self._check_and_accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _check_and_accept(self) -> None:
        problem = self.problem()
        if problem:
            QMessageBox.warning(self, self.windowTitle(), problem)
            return
        self.accept()

    def problem(self) -> str | None:
        params = self.params()
        if self.kind == "demo":
            return None
        path = params["path"]
        if path is None:
            return "Choose what to import first."
        if not path.exists():
            return f"{path} does not exist; choose an existing {'folder' if self.kind != 'video' else 'file'}."
        if self.kind == "tracklets":
            from idstudio.core.errors import UserError
            from idstudio.services.ingest import clean_site

            try:
                clean_site(params["site"])
            except UserError as exc:
                return str(exc)
        if self.kind == "video" and params["detector"] == "file" and params["det_file"] is None:
            return "The 'file' detector needs a MOT det.txt: choose one, or pick the motion or hog detector."
        return None

    def params(self) -> dict[str, Any]:
        f = self.fields
        if self.kind == "video":
            return {"path": f["path"].path(), "detector": DETECTORS[f["detector"].currentIndex()],
                    "det_file": f["det_file"].path() if f["detector"].currentIndex() == 2 else None,
                    "stride": f["stride"].value(), "camera": f["camera"].text().strip()}
        if self.kind == "mot":
            return {"path": f["path"].path(), "boxes": f["boxes"].currentText()}
        if self.kind == "market":
            return {"path": f["path"].path(), "name": f["name"].text().strip()}
        if self.kind == "tracklets":
            return {"path": f["path"].path(), "site": f["site"].text().strip() or None}
        return {"small": f["small"].isChecked()}

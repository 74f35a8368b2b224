"""Help ▸ Doctor: runs ``services.doctor`` in a worker thread (the checks import torch and
start a Qt probe process, seconds of work) and shows the report; the window stays live."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from idstudio.services import doctor

_RUNNING: set[QThread] = set()  # a thread outlives a dialog closed before it finished


class DoctorThread(QThread):
    done = Signal(object)  # doctor.Report
    failed = Signal(str)

    def __init__(self, project: Path | None):
        super().__init__()
        self.project = project

    def run(self) -> None:
        try:
            self.done.emit(doctor.run_checks(self.project))
        except Exception as exc:  # noqa: BLE001 - never die silently
            self.failed.emit(f"The doctor failed: {type(exc).__name__}: {exc}")


class DoctorDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, project: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Doctor — is this machine set up for idstudio?")
        self.resize(860, 480)
        self.project = project
        self.report: doctor.Report | None = None
        layout = QVBoxLayout(self)
        self.status = QLabel(self)
        layout.addWidget(self.status)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.rerun_button = QPushButton("Run again", self)
        self.copy_button = QPushButton("Copy report", self)
        buttons.addButton(self.rerun_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.rerun_button.clicked.connect(self.start)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        layout.addWidget(buttons)
        self.start()

    @property
    def running(self) -> bool:
        return self.rerun_button.isEnabled() is False

    def start(self) -> None:
        self.report = None
        self.rerun_button.setEnabled(False)
        self.copy_button.setEnabled(False)
        where = f" for {self.project}" if self.project else ""
        self.status.setText(f"Checking Python, torch, GPU, Qt, OpenCV, faiss and the disk{where}…")
        self.text.setPlainText("")
        thread = DoctorThread(self.project)
        thread.done.connect(self._show_report)
        thread.failed.connect(self._show_failure)
        thread.finished.connect(lambda t=thread: _RUNNING.discard(t))
        thread.finished.connect(thread.deleteLater)
        _RUNNING.add(thread)
        thread.start()

    def _show_report(self, report: doctor.Report) -> None:
        self.report = report
        self.text.setPlainText(report.format_text())
        n = len(report.problems)
        self.status.setText("Everything idstudio needs is in order." if n == 0
                            else f"{n} problem(s): each is followed by its fix.")
        self.rerun_button.setEnabled(True)
        self.copy_button.setEnabled(True)

    def _show_failure(self, message: str) -> None:
        self.status.setText(message)
        self.rerun_button.setEnabled(True)


def show_doctor(parent: QWidget | None = None, project: Path | None = None) -> DoctorDialog:
    """Open the Doctor dialog non-modally (the checks run in a worker thread) and return it.
    The project folder defaults to the parent window's open project, if any."""
    if project is None:
        session = getattr(parent, "session", None)
        project = getattr(session, "root", None)
    dialog = DoctorDialog(parent, project)
    dialog.show()
    return dialog

"""Keeps a generated form's "what will run" notes current: after an edit (debounced), when a
project opens and when its videos or datasets change, the service resolves the form's config
(``services.recipe``) in a worker thread and the form shows each resolved value under its field.

One request runs at a time; edits made meanwhile are resolved when it ends. A config the form
cannot build yet (a chooser's error) is not resolved; the last resolution stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from idstudio.core.errors import UserError

DEBOUNCE_MS = 300
DATA_AREAS = ("videos", "datasets", "runs")  # runs: "latest run" and the start choices


class FormResolution(QObject):
    resolved = Signal(object)   # the services.recipe.Resolved
    failed = Signal(str)

    def __init__(self, session, form, job: Callable[..., Any], parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.form, self.job = session, form, job
        self.last: Any = None
        self.error = ""
        self._handle = None
        self._again = False
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._run)
        form.changed.connect(self.schedule)
        session.project_opened.connect(lambda *_: self.schedule())
        session.data_changed.connect(lambda area: area in DATA_AREAS and self.schedule())
        runner = session.runner
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_failed)
        if getattr(session, "root", None) is not None:
            self.schedule()

    @property
    def busy(self) -> bool:
        return self._timer.isActive() or (self._handle is not None and self._handle.running)

    def schedule(self) -> None:
        self._timer.start()

    def _run(self) -> None:
        if self.session.root is None:
            return
        if self._handle is not None and self._handle.running:
            self._again = True
            return
        try:
            config = self.form.config()
        except UserError:
            return
        self._again = False
        self._handle = self.session.runner.start("Resolve settings", self.job, Path(self.session.root), config,
                                                 quiet=True)

    def _ours(self, job_id: str) -> bool:
        return self._handle is not None and job_id == self._handle.job_id

    def _on_finished(self, job_id: str, result: Any) -> None:
        if not self._ours(job_id):
            return
        self.last, self.error = result, ""
        self.form.set_resolved(result.values, result.reasons)
        self.resolved.emit(result)
        if self._again:
            self.schedule()

    def _on_failed(self, job_id: str, message: str = "") -> None:
        if not self._ours(job_id):
            return
        self.error = message or "cancelled"
        self.failed.emit(self.error)
        if self._again:
            self.schedule()

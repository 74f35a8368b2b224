"""The open project as the views share it: one ``Session`` per main window.

``session.project`` is a :class:`Project` for reads on the GUI thread; jobs get
``session.root`` (a path) and open their own ``Project`` in their worker thread.
``data_changed(area)`` tells the views what to reload ("videos", "datasets", "pairs",
"reviews", "runs", "evaluations").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, Signal

from idstudio.core.store import Project
from idstudio.gui.workers import JobHandle, JobRunner

AREAS = ("videos", "datasets", "pairs", "reviews", "runs", "evaluations")
MAX_RECENT = 8


class Session(QObject):
    project_opened = Signal(Path)
    project_closed = Signal()
    data_changed = Signal(str)

    def __init__(self, parent: QObject | None = None, runner: JobRunner | None = None):
        super().__init__(parent)
        self.root: Path | None = None
        self.project: Project | None = None
        self.runner = runner or JobRunner(self)

    # ---- project lifecycle ---------------------------------------------------------
    def open(self, root: Path | str, create: bool = False) -> Project:
        """Open (or with ``create``, create) a project; raises ``UserError`` on bad input."""
        root = Path(root).expanduser().resolve()
        project = Project.open_or_create(root) if create else Project.open(root)
        self.close()
        self.root, self.project = root, project
        self.add_recent(root)
        self.project_opened.emit(root)
        return project

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
            self.project = None
            self.root = None
            self.project_closed.emit()

    @property
    def is_open(self) -> bool:
        return self.project is not None

    def notify(self, *areas: str) -> None:
        for area in areas:
            self.data_changed.emit(area)

    # ---- jobs ----------------------------------------------------------------------------
    def start_job(self, title: str, fn: Callable[..., Any], *args: Any, changes: tuple[str, ...] = (),
                  on_finished: Callable[[Any], None] | None = None) -> JobHandle:
        """Run ``fn(*args, ctx)``; when it ends (any outcome), announce ``changes``."""
        handle = self.runner.start(title, fn, *args)

        def ended(job_id: str, *rest: Any) -> None:
            if job_id != handle.job_id:
                return
            for sig in (self.runner.finished, self.runner.failed, self.runner.cancelled):
                try:
                    sig.disconnect(ended)
                except (RuntimeError, TypeError):
                    pass
            if handle.status == "finished" and on_finished is not None:
                on_finished(handle.result)
            self.notify(*changes)

        self.runner.finished.connect(ended)
        self.runner.failed.connect(ended)
        self.runner.cancelled.connect(ended)
        return handle

    # ---- recent projects ----------------------------------------------------------------
    @staticmethod
    def recent() -> list[str]:
        value = QSettings().value("recent_projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    @staticmethod
    def add_recent(root: Path) -> None:
        items = [str(root)] + [r for r in Session.recent() if r != str(root)]
        QSettings().setValue("recent_projects", items[:MAX_RECENT])

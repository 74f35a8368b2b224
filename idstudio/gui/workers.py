"""The one job adapter: runs service jobs in worker threads, their events become Qt signals.

``runner.start(title, fn, *args) -> JobHandle`` runs ``fn(*args, ctx)`` on a thread of the
runner's own ``QThreadPool`` with a :class:`~idstudio.core.jobs.JobContext` whose events
are re-emitted as the runner's signals. Signals cross threads through an emitter object
that lives on the GUI thread and is connected with ``Qt.QueuedConnection``, so slots always
run on the GUI thread. Progress events are coalesced (at most one every 50 ms, plus the
last one), so a job reporting per item cannot flood the event loop.

Every outcome is reported exactly once: ``finished``, ``failed`` or ``cancelled``. A
``UserError`` is shown as-is; any other exception becomes one line (``Type: message``)
with the traceback sent to ``log``. A worker never dies silently.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.jobs import JobContext

PROGRESS_INTERVAL_S = 0.05


class _Emitter(QObject):
    """Lives on the GUI thread; the worker emits these, Qt queues them across threads."""

    progress = Signal(str, int, int, str)
    metric = Signal(str, str, float, float)
    log = Signal(str, str)
    done = Signal(str, str, object)  # job_id, outcome (finished|failed|cancelled), payload


class JobHandle:
    """A running (or finished) job: ``stop()`` finishes cleanly, ``cancel()`` discards."""

    def __init__(self, job_id: str, title: str, ctx: JobContext):
        self.job_id = job_id
        self.title = title
        self.ctx = ctx
        self.status = "running"  # running | finished | failed | cancelled
        self.result: Any = None
        self.error: str | None = None
        self.done_total: tuple[int, int] = (0, 0)
        self.message = ""
        self.started_at = time.time()
        self.quiet = False  # a background look-up (e.g. a form's resolution): no status-bar entry, no message box
        self._done = threading.Event()

    def stop(self) -> None:
        self.ctx.request_stop()

    def cancel(self) -> None:
        self.ctx.cancel()

    @property
    def running(self) -> bool:
        return self.status == "running"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker function has returned (the signal may still be queued)."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        return f"JobHandle({self.job_id!r}, {self.title!r}, {self.status})"


class _Task(QRunnable):
    def __init__(self, handle: JobHandle, fn: Callable[..., Any], args: tuple, emitter: _Emitter):
        super().__init__()
        self.setAutoDelete(True)
        self.handle = handle
        self.fn = fn
        self.args = args
        self.emitter = emitter
        self._last_progress = 0.0
        self._pending: tuple[int, int, str] | None = None

    def _on_event(self, event: dict[str, Any]) -> None:
        job_id = self.handle.job_id
        kind = event.get("type")
        if kind == "progress":
            done, total, msg = int(event["done"]), int(event["total"]), str(event.get("message", ""))
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_INTERVAL_S or done >= total:
                self._last_progress = now
                self._pending = None
                self.emitter.progress.emit(job_id, done, total, msg)
            else:
                self._pending = (done, total, msg)
        elif kind == "metric":
            self.emitter.metric.emit(job_id, str(event["name"]), float(event["step"]), float(event["value"]))
        elif kind == "log":
            self.emitter.log.emit(job_id, str(event["message"]))

    def run(self) -> None:  # worker thread
        handle, ctx = self.handle, self.handle.ctx
        outcome, payload = "failed", "The job ended without a result."
        try:
            ctx.add_sink(self._on_event)
            result = self.fn(*self.args, ctx)
            outcome, payload = ("cancelled", None) if ctx.cancelled else ("finished", result)
        except JobCancelled:
            outcome, payload = "cancelled", None
        except UserError as exc:
            outcome, payload = "failed", str(exc)
        except BaseException as exc:  # noqa: BLE001 - a worker must never die silently
            line = f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
            outcome, payload = "failed", f"{handle.title} failed: {line}"
            try:
                self.emitter.log.emit(handle.job_id, traceback.format_exc())
            except Exception:  # pragma: no cover
                pass
        finally:
            try:
                if self._pending is not None:
                    self.emitter.progress.emit(handle.job_id, *self._pending)
                ctx.close()
            except Exception:  # pragma: no cover
                pass
            try:
                self.emitter.done.emit(handle.job_id, outcome, payload)
            finally:
                handle._done.set()


class JobRunner(QObject):
    """Runs jobs in a thread pool and re-emits their events as signals (GUI thread)."""

    started = Signal(str, str)  # job_id, title
    progress = Signal(str, int, int, str)  # job_id, done, total, message
    metric = Signal(str, str, float, float)  # job_id, name, step, value
    log = Signal(str, str)  # job_id, message
    finished = Signal(str, object)  # job_id, result
    failed = Signal(str, str)  # job_id, message
    cancelled = Signal(str)  # job_id
    jobs_changed = Signal()

    _ids = itertools.count(1)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.jobs: dict[str, JobHandle] = {}
        self._emitter = _Emitter(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._emitter.progress.connect(self._on_progress, queued)
        self._emitter.metric.connect(self.metric, queued)
        self._emitter.log.connect(self.log, queued)
        self._emitter.done.connect(self._on_done, queued)

    # ---- API --------------------------------------------------------------------------
    def start(self, title: str, fn: Callable[..., Any], *args: Any, quiet: bool = False) -> JobHandle:
        job_id = f"job-{next(self._ids)}"
        handle = JobHandle(job_id, title, JobContext())
        handle.quiet = quiet
        self.jobs[job_id] = handle
        self.pool.start(_Task(handle, fn, args, self._emitter))
        self.started.emit(job_id, title)
        self.jobs_changed.emit()
        return handle

    def running(self) -> list[JobHandle]:
        return [h for h in self.jobs.values() if h.running]

    def handle(self, job_id: str) -> JobHandle | None:
        return self.jobs.get(job_id)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel every running job and wait for the threads (on application quit)."""
        for handle in self.running():
            handle.cancel()
        return self.pool.waitForDone(timeout_ms)

    # ---- GUI-thread slots ---------------------------------------------------------------
    def _on_progress(self, job_id: str, done: int, total: int, msg: str) -> None:
        handle = self.jobs.get(job_id)
        if handle is not None:
            handle.done_total = (done, total)
            handle.message = msg
        self.progress.emit(job_id, done, total, msg)

    def _on_done(self, job_id: str, outcome: str, payload: Any) -> None:
        handle = self.jobs.get(job_id)
        if handle is not None:
            handle.status = outcome
            if outcome == "finished":
                handle.result = payload
            elif outcome == "failed":
                handle.error = payload
        if outcome == "finished":
            self.finished.emit(job_id, payload)
        elif outcome == "cancelled":
            self.cancelled.emit(job_id)
        else:
            self.failed.emit(job_id, str(payload))
        self.jobs_changed.emit()

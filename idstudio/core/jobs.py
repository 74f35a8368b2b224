"""The job context: how a long-running job reports progress and learns it must stop.

A job is a plain function ``run(config, ctx)``. The CLI passes a context that draws a
progress bar; the GUI passes one whose events become Qt signals (gui/workers.py).
Every event also goes to the run's ``metrics.jsonl`` when one is given, so plots can be
rebuilt after a restart.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from idstudio.core.errors import JobCancelled

EventSink = Callable[[dict[str, Any]], None]


class JobContext:
    """Progress, metrics and stop/cancel flags for one job.

    ``should_stop``: finish cleanly (save, evaluate, keep the run).
    ``cancelled``: abort and discard; jobs call ``check_cancelled()`` at safe points.
    """

    def __init__(self, on_event: EventSink | None = None, metrics_path: Path | None = None):
        self._sinks: list[EventSink] = [on_event] if on_event else []
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._metrics_file = None
        if metrics_path is not None:
            self.attach_metrics_file(metrics_path)

    # ---- flags -------------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        return self._stop.is_set() or self._cancel.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self._cancel.set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

    # ---- events ------------------------------------------------------------------
    def add_sink(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def attach_metrics_file(self, path: Path) -> None:
        """Append every later event to ``path`` (JSON lines), flushed per event."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._metrics_file is not None:
                self._metrics_file.close()
            self._metrics_file = open(path, "a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._metrics_file is not None:
                self._metrics_file.close()
                self._metrics_file = None

    def emit(self, event: dict[str, Any]) -> None:
        event.setdefault("time", time.time())
        with self._lock:
            if self._metrics_file is not None:
                self._metrics_file.write(json.dumps(event) + "\n")
                self._metrics_file.flush()
        for sink in self._sinks:
            sink(event)

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.emit({"type": "progress", "done": int(done), "total": int(total), "message": message})

    def metric(self, name: str, step: int | float, value: float) -> None:
        self.emit({"type": "metric", "name": name, "step": step, "value": float(value)})

    def log(self, message: str) -> None:
        self.emit({"type": "log", "message": message})


def read_events(path: Path) -> list[dict[str, Any]]:
    """All events of a metrics.jsonl; a torn last line (a kill mid-write) is skipped."""
    events = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def metric_series(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Group metric events by name into (step, value) lists, in order."""
    series: dict[str, list[tuple[float, float]]] = {}
    for event in events:
        if event.get("type") == "metric":
            series.setdefault(event["name"], []).append((event["step"], event["value"]))
    return series

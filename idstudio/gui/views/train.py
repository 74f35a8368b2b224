"""The Train view: a form generated from ``TrainConfig``, presets, Start / Stop early /
Cancel / Resume, live plots, a log, ETA and device, and the project's runs.

Training runs through the one job adapter (``session.runner``); metric events arrive as
signals and are buffered, and the plots are redrawn at most 5 times a second, so a job that
reports every batch cannot stall the event loop. Past runs come from the ``runs`` table and
their plots are rebuilt from ``runs/<id>/metrics.jsonl`` (``core.jobs.read_events``), so
everything shown survives a restart.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from idstudio.core.errors import UserError
from idstudio.core.jobs import metric_series, read_events
from idstudio.gui.views.train_plots import (KNOWN, MEAN_RELIABILITY, PLOTS, TrainPlots,  # noqa: F401 - re-exported
                                            metric_info, plot_for)

REDRAW_MS = 200
FINAL = ("finished", "stopped", "cancelled", "failed")
STATUS_COLOURS = {"running": "#2f7ed8", "running elsewhere": "#2f7ed8", "finished": "#2e9d3a", "stopped": "#b8860b", "cancelled": "#888888",
                  "failed": "#c0392b", "interrupted": "#c0392b"}

# Modules the trainer and the miner import lazily. Loading their extension libraries holds
# the GIL, so a first import inside a job froze the window for 0.5-1 s mid-work (measured with
# bench/gui_latency.py --diagnose: torchvision.models and scipy.stats). They are imported once
# in a background thread when the view is built, while the user is still looking at the
# window; a job started earlier simply waits on the import lock.
PRELOAD = ("torchvision.models", "scipy.stats", "scipy.optimize", "scipy.sparse.csgraph")
_preloading: list = []


def preload_heavy_modules() -> None:
    if _preloading:
        return

    def run() -> None:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a missing optional module is the job's error to report
                pass

    import threading

    thread = threading.Thread(target=run, name="idstudio-preload", daemon=True)
    _preloading.append(thread)
    thread.start()


def _training_module():
    return importlib.import_module("idstudio.services.training")


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def short_start(message: str) -> str:
    """'Start: ImageNet weights for mobilenet_v2 from /long/path (bundled ...).' -> a few words."""
    if not message.startswith("Start: "):
        return ""
    text = message.removeprefix("Start: ").rstrip(".")
    if text.startswith("ImageNet weights for "):
        arch = text.split()[3]
        where = text[text.find("(") + 1:text.rfind(")")] if "(" in text else "a weights file"
        return f"start: ImageNet {arch} ({where.replace('ImageNet weights ', '')})"
    return "start: " + text.split(";")[0].split(" (")[0]


class TrainView(QWidget):
    title = "Train"

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.handle = None  # the running training job's JobHandle
        self.job_run_id: str | None = None
        self.shown_run: str | None = None
        self._phase: tuple[int, float, float] | None = None  # (_, t0, fraction at t0) for the ETA
        self._job_started = 0.0
        self.form = None
        self._build()
        self._redraw_timer = QTimer(self, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self.plots.redraw)
        self._redraw_timer.start()
        self._poll_timer = QTimer(self, interval=1500)
        self._poll_timer.timeout.connect(self._poll)
        runner = session.runner
        runner.metric.connect(self._on_metric)
        runner.progress.connect(self._on_progress)
        runner.log.connect(self._on_log)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_cancelled)
        session.project_opened.connect(lambda *_: self.refresh_runs())
        session.data_changed.connect(lambda area: area == "runs" and self.refresh_runs())
        if getattr(session, "project", None) is not None:
            self.refresh_runs()

    # ---- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        outer.addWidget(split)

        # left: presets, form, buttons
        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Preset"))
        self.preset_box = QComboBox(left)
        self.preset_box.setObjectName("preset_box")
        self.preset_box.setToolTip("Fill the form from a preset; edit any field afterwards.")
        row.addWidget(self.preset_box, 1)
        self.save_preset_btn = QPushButton("Save as…", left)
        self.save_preset_btn.setToolTip("Save the current form as your own preset.")
        self.save_preset_btn.clicked.connect(self._save_preset)
        row.addWidget(self.save_preset_btn)
        lv.addLayout(row)
        self.form_scroll = QScrollArea(left)
        self.form_scroll.setWidgetResizable(True)
        self.form_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # fields shrink instead
        self.form_scroll.setMinimumWidth(380)
        lv.addWidget(self.form_scroll, 1)
        self.resolved_label = QLabel("", left)  # what Start will run on this project (services.recipe)
        self.resolved_label.setObjectName("resolved")
        self.resolved_label.setWordWrap(True)
        self.resolved_label.setStyleSheet("color: #555")
        lv.addWidget(self.resolved_label)
        self.form_error = QLabel(left)
        self.form_error.setWordWrap(True)
        self.form_error.setStyleSheet("color: #c0392b")
        self.form_error.hide()
        lv.addWidget(self.form_error)
        buttons = QHBoxLayout()
        self.start_btn = QPushButton("Start", left)
        self.start_btn.setObjectName("start")
        self.start_btn.setToolTip("Train with the settings above (Ctrl+Return).")
        self.start_btn.setShortcut("Ctrl+Return")
        self.stop_btn = QPushButton("Stop early", left)
        self.stop_btn.setToolTip("Finish cleanly: save, evaluate and keep the run.")
        self.cancel_btn = QPushButton("Cancel", left)
        self.cancel_btn.setToolTip("Abort and discard the run.")
        self.resume_btn = QPushButton("Resume", left)
        self.resume_btn.setToolTip("Continue the selected run from its last checkpoint.")
        for b in (self.start_btn, self.stop_btn, self.cancel_btn, self.resume_btn):
            buttons.addWidget(b)
        self.start_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop_early)
        self.cancel_btn.clicked.connect(self.cancel)
        self.resume_btn.clicked.connect(self.resume)
        lv.addLayout(buttons)
        split.addWidget(left)

        # right: status line, plots, runs + log
        right = QWidget(split)
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        status = QHBoxLayout()
        self.progress = QProgressBar(right)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        status.addWidget(self.progress, 2)
        self.eta_label = QLabel("ETA —", right)
        self.eta_label.setMinimumWidth(120)
        status.addWidget(self.eta_label)
        self.device_label = QLabel("Device —", right)
        self.device_label.setToolTip("Where the model trains; on CUDA, the GPU memory in use.")
        status.addWidget(self.device_label, 1)
        rv.addLayout(status)
        self.run_title = QLabel("No run selected", right)
        self.run_title.setStyleSheet("font-weight: bold")
        rv.addWidget(self.run_title)
        vsplit = QSplitter(Qt.Orientation.Vertical, right)
        self.plots = TrainPlots(vsplit)
        self.plots.setMinimumHeight(300)
        vsplit.addWidget(self.plots)
        bottom = QSplitter(Qt.Orientation.Horizontal, vsplit)
        self.runs = QTreeWidget(bottom)
        self.runs.setObjectName("runs")
        self.runs.setHeaderLabels(["Run", "Status", "Epochs", "Best mAP", "Device", "Started"])
        self.runs.setRootIsDecorated(False)
        self.runs.setAlternatingRowColors(True)
        self.runs.setSortingEnabled(False)
        self.runs.currentItemChanged.connect(self._on_run_selected)
        for col, width in enumerate((160, 66, 62, 82, 60)):
            self.runs.setColumnWidth(col, width)
        bottom.addWidget(self.runs)
        self.log = QPlainTextEdit(bottom)
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setPlaceholderText("The selected run's log appears here.")
        self.log.setStyleSheet("font-family: monospace; font-size: 9pt")
        bottom.addWidget(self.log)
        bottom.setSizes([660, 340])  # the six columns fit beside the log at the default size
        vsplit.addWidget(bottom)
        vsplit.setSizes([460, 220])
        rv.addWidget(vsplit, 1)
        split.addWidget(right)
        split.setSizes([420, 900])
        split.setStretchFactor(1, 1)
        self._build_form()
        self._update_buttons()

    def _build_form(self) -> None:
        """The form needs ``TrainConfig``; build it lazily (the trainer may land later)."""
        if self.form is not None:
            return
        try:
            training = _training_module()
            preload_heavy_modules()
            cls = importlib.import_module("idstudio.services.train_config").TrainConfig
        except (ImportError, AttributeError) as exc:
            label = QLabel(f"Training is not available: {exc}.", self)
            label.setWordWrap(True)
            self.form_scroll.setWidget(label)
            return
        from idstudio.gui.config_form import ConfigForm

        skip = tuple(n for n in ("resume",) if n in {f.name for f in dataclasses.fields(cls)})
        self.form = ConfigForm(cls, skip=skip, preset_kind="train")
        self.form_scroll.setWidget(self.form)
        self._build_choosers()
        from idstudio.gui.form_resolution import FormResolution
        from idstudio.services import recipe

        self.resolution = FormResolution(self.session, self.form, recipe.resolve_job, self)
        self.resolution.resolved.connect(self._show_resolved)
        self.resolution.failed.connect(lambda message: self.resolved_label.setText(f"Cannot tell what will run: {message}"))
        self.session.project_opened.connect(lambda *_: self._build_choosers())
        self.session.data_changed.connect(lambda area: area == "runs" and self._build_choosers())
        self.preset_box.clear()
        self.preset_box.addItems(list(self.form.presets()))
        self.preset_box.setCurrentText("Default")
        self.preset_box.textActivated.connect(self.form.apply_preset)

    def prepare_screenshot(self, process_events, timeout_s: float = 120.0) -> None:
        """Wait (pumping events) until the form shows what will run (gui/screenshots.py)."""
        end = time.monotonic() + timeout_s
        resolution = getattr(self, "resolution", None)
        if resolution is None or self.session.root is None:
            return
        while (resolution.busy or (resolution.last is None and not resolution.error)) and time.monotonic() < end:
            process_events()
            time.sleep(0.02)

    def _build_choosers(self) -> None:
        """Weights and Init: the valid words, the runs and registered models, a file button; checked as typed."""
        if self.form is None:
            return
        from idstudio.services import recipe

        self.form.set_chooser("weights", list(recipe.WEIGHT_CHOICES), check=recipe.check_weights,
                              file_filter=recipe.WEIGHT_FILES)
        project = getattr(self.session, "project", None)
        self.form.set_chooser("init", [("", "none: the start comes from Weights")] + recipe.start_choices(project),
                              check=lambda text: recipe.check_start(getattr(self.session, "project", None), text),
                              file_filter="Checkpoints (*.pt *.onnx);;All files (*)", placeholder="none")

    def _show_resolved(self, res) -> None:
        """One line above Start: the model, input size, start and recipe that will run."""
        cfg = res.config
        start = (f"from {cfg.init}" if cfg.init else
                 {"imagenet": "from ImageNet", "none": "from random"}.get(res.values.get("weights", cfg.weights),
                                                                          f"from {cfg.weights}"))
        recipe = {"cross-camera": "cross-camera recipe", "real-video": "real-video recipe",
                  "init": "start checkpoint", "default": "settings as given"}.get(res.recipe, res.recipe)
        why = res.reasons.get("arch") or res.reasons.get("colour", "")
        links = res.values.get("links", cfg.links)
        links_why = res.reasons.get("links")
        self.resolved_label.setText(f"Start will train {cfg.arch} at {cfg.height}x{cfg.width} {start}, colour part "
                                    f"{cfg.colour}: {recipe}" + (f" ({why.removeprefix('cross-camera recipe: ')})"
                                                                 if why else "") + "."
                                    + f" Cross-camera links {links}" + (f": {links_why}." if links_why else ".")
                                    + (" The site's cameras' colour casts come out of the colour part."
                                       if res.values.get("colour_cast", cfg.colour_cast) == "on" else "")
                                    + (f" Each link round takes {cfg.link_directions} camera direction"
                                       f"{'s' if cfg.link_directions != 1 else ''}"
                                       f"{' a part' if res.values.get('colour', cfg.colour) == 'on' else ''} out of "
                                       "the embedding." if links == "on" and cfg.link_directions > 0 else ""))

    # ---- actions -----------------------------------------------------------------------
    def _save_preset(self) -> None:
        if self.form is None:
            return
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if ok and name.strip():
            try:
                self.form.save_user_preset(name.strip())
            except UserError as exc:
                QMessageBox.warning(self, "Save preset", str(exc))
                return
            self.preset_box.clear()
            self.preset_box.addItems(list(self.form.presets()))
            self.preset_box.setCurrentText(name.strip())

    def _show_error(self, message: str) -> None:
        self.form_error.setText(message)
        self.form_error.show()
        self.log.appendPlainText(f"error: {message}")
        if not getattr(self, "quiet_errors", False):
            QMessageBox.warning(self, "Training", message)

    def start(self, resume_run: str | None = None) -> None:
        if self.handle is not None and self.handle.running:
            return
        if self.session.root is None:
            self._show_error("Open a project first (File ▸ Open).")
            return
        if self.form is None:
            self._build_form()
            if self.form is None:
                return
        self.form_error.hide()
        try:
            config = self.form.config()
        except UserError as exc:
            self._show_error(str(exc))
            return
        training = _training_module()
        args: tuple[Any, ...] = (Path(self.session.root), config)
        fn = training.train
        if resume_run:
            fn, args = self._resume_call(training, config, resume_run)
        self.plots.clear_all()
        self.log.clear()
        self.job_run_id = resume_run
        self.shown_run = resume_run
        self._phase = None
        self._job_started = time.monotonic()
        self._known_runs = {r["id"] for r in self._query_runs()}
        if resume_run:
            self._load_run(resume_run, plots=True)
        self.run_title.setText(f"Resuming {resume_run}…" if resume_run else "Starting a new run…")
        self.handle = self.session.start_job("Resume training" if resume_run else "Training", fn, *args,
                                             changes=("runs", "evaluations"))
        self.progress.setFormat("starting… %p%")
        self.progress.setValue(0)
        self._poll_timer.start()
        self._update_buttons()
        self.refresh_runs()

    def _resume_call(self, training, config, run_id: str):
        """How the trainer resumes: a ``resume`` config field, a ``resume=`` argument or a
        ``resume(project_root, run_id, ctx)`` function."""
        root = Path(self.session.root)
        names = {f.name for f in dataclasses.fields(config)}
        if "resume" in names:
            return training.train, (root, dataclasses.replace(config, resume=run_id))
        if hasattr(training, "resume"):
            return training.resume, (root, run_id)
        if "resume" in inspect.signature(training.train).parameters:
            def run(root, config, ctx, _run=run_id):
                return training.train(root, config, ctx, resume=_run)
            return run, (root, config)
        raise UserError("This trainer cannot resume runs.")

    def stop_early(self) -> None:
        if self.handle is not None and self.handle.running:
            self.handle.stop()
            self.log.appendPlainText("Stopping after the current step: the run is saved and evaluated.")
            self.progress.setFormat("stopping… %p%")
            self.stop_btn.setEnabled(False)

    def cancel(self) -> None:
        if self.handle is not None and self.handle.running:
            self.handle.cancel()
            self.log.appendPlainText("Cancelling: the run is discarded.")
            self.progress.setFormat("cancelling… %p%")
            self.stop_btn.setEnabled(False)
            self.cancel_btn.setEnabled(False)

    def resume(self) -> None:
        run_id = self.selected_run()
        if run_id is None:
            return
        row = self._run_row(run_id)
        if row is not None:
            try:
                self.form.set_values({k: v for k, v in json.loads(row["config"]).items() if k in self.form.widgets})
            except (ValueError, TypeError):
                pass
        self.start(resume_run=run_id)

    def _update_buttons(self) -> None:
        running = self.handle is not None and self.handle.running
        self.start_btn.setEnabled(not running and self.form is not None)
        self.stop_btn.setEnabled(running)
        self.cancel_btn.setEnabled(running)
        run = self.selected_run()
        row = self._run_row(run) if run else None
        resumable = (row is not None and self._status(row) in ("stopped", "cancelled", "failed", "interrupted", "finished")
                     and self.session.root is not None
                     and (Path(self.session.root) / "runs" / run / "last.pt").is_file())
        self.resume_btn.setEnabled(not running and resumable)

    # ---- runs --------------------------------------------------------------------------
    def _query_runs(self) -> list[dict[str, Any]]:
        project = getattr(self.session, "project", None)
        if project is None:
            return []
        try:
            rows = project.query("SELECT * FROM runs WHERE kind = 'train' ORDER BY created_at DESC")
        except Exception:  # noqa: BLE001 - a locked or half-migrated DB: show nothing now
            return []
        return [dict(r) for r in rows]

    def _run_row(self, run_id: str | None) -> dict[str, Any] | None:
        if run_id is None or getattr(self.session, "project", None) is None:
            return None
        rows = self.session.project.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return dict(rows[0]) if rows else None

    def _status(self, row: dict[str, Any]) -> str:
        """A run marked running that no job runs was interrupted (crash, kill); one whose
        metrics file moved in the last minute runs elsewhere (the CLI, torchrun)."""
        status = row["status"]
        if status != "running":
            return status
        ours = self.handle is not None and self.handle.running
        if ours and (row["id"] == self.job_run_id or self.job_run_id is None):
            return status
        if self.session.root is not None:
            metrics = Path(self.session.root) / "runs" / row["id"] / "metrics.jsonl"
            try:
                if time.time() - metrics.stat().st_mtime < 60:
                    return "running elsewhere"
            except OSError:
                pass
        return "interrupted"

    def refresh_runs(self) -> None:
        current = self.selected_run()
        rows = self._query_runs()
        if self.handle is not None and self.handle.running and self.job_run_id is None:
            new = [r for r in rows if r["id"] not in getattr(self, "_known_runs", set())]
            if new:
                self.job_run_id = new[0]["id"]
                self.shown_run = self.job_run_id
                current = self.job_run_id
                self.run_title.setText(f"Run {self.job_run_id} (live)")
                device = new[0].get("device")
                if device:
                    self._device = device
        self.runs.blockSignals(True)
        self.runs.clear()
        select = None
        for row in rows:
            summary = {}
            try:
                summary = json.loads(row["summary"]) if row.get("summary") else {}
            except (ValueError, TypeError):
                pass
            best = summary.get("mAP_end")
            ck = self.session.project.query(
                "SELECT metrics FROM checkpoints WHERE run_id = ? AND name = 'best'", (row["id"],))
            if ck:
                try:
                    best = json.loads(ck[0]["metrics"] or "{}").get("mAP", best)
                except (ValueError, TypeError):
                    pass
            status = self._status(row)
            started = time.strftime("%d %b %H:%M", time.localtime(row["created_at"]))
            item = QTreeWidgetItem([row["id"], status, str(row.get("epochs_done") or 0),
                                    f"{100 * best:.1f}" if isinstance(best, (int, float)) else "—",
                                    row.get("device") or "—", started])
            item.setData(0, Qt.ItemDataRole.UserRole, row["id"])
            item.setForeground(1, pg.mkColor(STATUS_COLOURS.get(status, "#333")))
            if row.get("error"):
                item.setToolTip(1, row["error"])
            self.runs.addTopLevelItem(item)
            if row["id"] == current:
                select = item
        self.runs.blockSignals(False)
        running = self.handle is not None and self.handle.running
        if select is None and current is None and not running and self.runs.topLevelItemCount():
            select = self.runs.topLevelItem(0)  # the latest run, so its plots show on opening
            current = select.data(0, Qt.ItemDataRole.UserRole)
        if select is not None:
            self.runs.setCurrentItem(select)
            if self.shown_run != current or not self.plots.series:
                self._on_run_selected(select, None)
        self._update_buttons()

    def selected_run(self) -> str | None:
        item = self.runs.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def select_run(self, run_id: str) -> None:
        for i in range(self.runs.topLevelItemCount()):
            item = self.runs.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == run_id:
                self.runs.setCurrentItem(item)
                return

    def _on_run_selected(self, item, _previous) -> None:
        self._update_buttons()
        if item is None:
            return
        run_id = item.data(0, Qt.ItemDataRole.UserRole)
        live = self.handle is not None and self.handle.running and run_id == self.job_run_id
        if live and self.shown_run == run_id and self.plots.series:
            return  # the live plots already show it
        self._load_run(run_id, plots=True)

    def _load_run(self, run_id: str, plots: bool) -> None:
        """Rebuild the plots and the log from ``runs/<id>/metrics.jsonl``."""
        self.shown_run = run_id
        if self.session.root is None:
            return
        events = read_events(Path(self.session.root) / "runs" / run_id / "metrics.jsonl")
        if plots:
            series = metric_series(events)
            self.plots.load(series)
            self._refresh_reliability(run_id, series.get("mine/n_pairs", []))
        lines = [e["message"] for e in events if e.get("type") == "log"]
        row = self._run_row(run_id)
        if row is not None and row.get("error"):
            lines.append(f"error: {row['error']}")
        self.log.setPlainText("\n".join(lines[-5000:]))
        self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())
        if row is not None:
            status = self._status(row)
            full_start = _training_module().saved_start(Path(self.session.root) / "runs" / run_id)
            start = short_start(full_start)
            self.run_title.setText(f"Run {run_id} — {status}, {row.get('epochs_done') or 0} epoch(s)"
                                   + (f" · {start}" if start else ""))
            self.run_title.setToolTip(full_start)
            self.device_label.setText(f"Device {row.get('device') or '—'}")

    def _refresh_reliability(self, run_id: str | None, rounds: list[tuple[float, float]] | None = None) -> None:
        """Mean reliability per mining round, from the run's pairs in the database."""
        project = getattr(self.session, "project", None)
        if project is None or run_id is None:
            return
        rows = project.query(
            "SELECT r.id, AVG(p.reliability) FROM mining_rounds r JOIN pairs p ON p.round_id = r.id"
            " WHERE r.run_id = ? GROUP BY r.id ORDER BY r.id", (run_id,))
        if rounds is None:
            xs, _ = self.plots.series.get("mine/n_pairs", ([], []))
        else:
            xs = [x for x, _ in rounds]
        points = [(xs[i] if i < len(xs) else i, float(row[1])) for i, row in enumerate(rows) if row[1] is not None]
        if points:
            self.plots.set_series(MEAN_RELIABILITY, points)
            self.plots.redraw()

    # ---- live events ---------------------------------------------------------------------
    def _mine(self, job_id: str) -> bool:
        return self.handle is not None and job_id == self.handle.job_id

    def _on_metric(self, job_id: str, name: str, step: float, value: float) -> None:
        if self._mine(job_id) and self.shown_run in (None, self.job_run_id):
            self.plots.add(name, step, value)
            if name == "mine/n_pairs":
                if self.job_run_id is None:
                    self.refresh_runs()
                self._refresh_reliability(self.job_run_id)

    def _on_log(self, job_id: str, message: str) -> None:
        if self._mine(job_id):
            if self.shown_run in (None, self.job_run_id):
                self.log.appendPlainText(message.rstrip())

    def _on_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        if not self._mine(job_id):
            return
        now = time.monotonic()
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.progress.setFormat(f"{message[:60]}  %p%" if message else "%p%")
        m = re.match(r"epoch (\d+)/(\d+)", message or "")
        if m and total > 0:
            # the whole run: finished epochs plus this one's share
            epoch, epochs = int(m.group(1)), int(m.group(2))
            fraction = ((epoch - 1) + done / total) / max(epochs, 1)
            if self._phase is None:
                self._phase = (0, now, fraction)  # (unused, t0, fraction at t0)
            _, t0, f0 = self._phase
            if fraction > f0 and now - t0 > 1.0:
                eta = (now - t0) / (fraction - f0) * (1 - fraction)
                self.eta_label.setText(f"ETA {_fmt_duration(eta)}")
        self.eta_label.setToolTip(f"elapsed {_fmt_duration(now - self._job_started)}; the ETA counts training "
                                  "steps, mining and evaluation between epochs included")

    def _poll(self) -> None:
        """While training: find the new run's id, show the device and CUDA memory."""
        if self.job_run_id is None or not self.runs.topLevelItemCount():
            self.refresh_runs()
        device = None
        row = self._run_row(self.job_run_id) if self.job_run_id else None
        if row is not None:
            device = row.get("device")
        text = f"Device {device}" if device else self.device_label.text()
        torch = sys.modules.get("torch")  # never import torch on the GUI thread just for this
        if torch is not None and device and str(device).startswith("cuda"):
            try:
                used = torch.cuda.memory_allocated() / 2**20
                reserved = torch.cuda.memory_reserved() / 2**20
                text = f"Device {device} · {used:.0f} MiB in use ({reserved:.0f} MiB reserved)"
            except Exception:  # noqa: BLE001
                pass
        self.device_label.setText(text)

    def _ended(self, job_id: str, status_text: str) -> None:
        self._poll_timer.stop()
        self.plots.redraw()
        self.progress.setFormat(status_text)
        self.eta_label.setText("ETA —")
        self._update_buttons()
        self.refresh_runs()
        if self.job_run_id:
            self.select_run(self.job_run_id)

    def _on_finished(self, job_id: str, result: Any) -> None:
        if not self._mine(job_id):
            return
        if isinstance(result, dict) and result.get("run_id"):
            self.job_run_id = str(result["run_id"])
        self.progress.setValue(self.progress.maximum())
        stopped = self.handle.ctx.should_stop if self.handle is not None else False
        self._ended(job_id, "stopped early — saved" if stopped else "finished")
        summary = ""
        if isinstance(result, dict):
            figures = [f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)][:6]
            summary = ", ".join(figures)
        self.log.appendPlainText(f"Training finished{': ' + summary if summary else ''}.")

    def _on_failed(self, job_id: str, message: str) -> None:
        if not self._mine(job_id):
            return
        self._ended(job_id, "failed")
        self._show_error(message)

    def _on_cancelled(self, job_id: str) -> None:
        if not self._mine(job_id):
            return
        self._ended(job_id, "cancelled")
        self.log.appendPlainText("Training cancelled.")

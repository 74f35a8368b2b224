"""The main window: the four views behind a sidebar, menus, and the running jobs in the status bar."""

from __future__ import annotations

import csv
import importlib
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from idstudio.core.errors import UserError
from idstudio.gui import shortcuts
from idstudio.gui.session import Session
from idstudio.gui.wording import counted

RESOURCES = Path(__file__).resolve().parents[2] / "resources"

# (module, class, sidebar label, icon)
VIEWS = (
    ("data", "DataView", "Data", "data"),
    ("pairs", "PairsView", "Pairs", "pairs"),
    ("train", "TrainView", "Train", "train"),
    ("retrieval", "RetrievalView", "Retrieval", "retrieval"),
)


def icon(name: str) -> QIcon:
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


class PlaceholderView(QWidget):
    """Stands in for a view whose module is not there (yet) or failed to load."""

    def __init__(self, title: str, reason: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        layout = QVBoxLayout(self)
        label = QLabel(f"<h2>{title}</h2><p>{reason}</p>", self)
        label.setObjectName("Placeholder")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(label)


class JobWidget(QWidget):
    """One running job in the status bar: title, progress, cancel."""

    def __init__(self, handle, parent: QWidget | None = None):
        super().__init__(parent)
        self.handle = handle
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(6)
        self.label = QLabel(handle.title, self)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(140)
        self.bar.setFixedHeight(12)
        self.bar.setRange(0, 0)  # busy until the first progress
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setIcon(icon("cancel"))
        self.cancel_button.setToolTip(f"Cancel {handle.title}")
        self.cancel_button.setAutoRaise(True)
        self.cancel_button.clicked.connect(self._cancel)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)

    def _cancel(self) -> None:
        self.handle.cancel()
        self.label.setText(f"{self.handle.title}: cancelling…")
        self.cancel_button.setEnabled(False)

    def set_progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        self.bar.setToolTip(message)
        text = f"{self.handle.title}" + (f" — {message}" if message else "")
        self.label.setText(text[:60])


class ShortcutsDialog(QDialog):
    """Help ▸ Keyboard shortcuts: lists every key, and lets the user change them."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(620, 560)
        layout = QVBoxLayout(self)
        hint = QLabel("Click a key field and press the new key to change it; it is kept between launches.", self)
        hint.setObjectName("Muted")
        layout.addWidget(hint)
        names = list(shortcuts.DEFAULTS)
        self.table = QTableWidget(len(names), 3, self)
        self.table.setHorizontalHeaderLabels(["Area", "Action", "Key"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.edits: dict[str, QKeySequenceEdit] = {}
        from PySide6.QtWidgets import QTableWidgetItem

        for row, name in enumerate(names):
            _, text, area = shortcuts.DEFAULTS[name]
            self.table.setItem(row, 0, QTableWidgetItem(area))
            self.table.setItem(row, 1, QTableWidgetItem(text))
            edit = QKeySequenceEdit(QKeySequence(", ".join(shortcuts.key_strings(name))), self.table)
            edit.setMaximumSequenceLength(1) if hasattr(edit, "setMaximumSequenceLength") else None
            # show every alternative key
            edit.setKeySequence(QKeySequence(shortcuts.key_strings(name)[0]) if shortcuts.key_strings(name) else QKeySequence())
            edit.setToolTip("Also: " + shortcuts.describe(name))
            self.edits[name] = edit
            self.table.setCellWidget(row, 2, edit)
            self.table.item(row, 1).setToolTip(shortcuts.describe(name))
        self.table.resizeColumnToContents(0)
        self.table.setColumnWidth(2, 170)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
                                   | QDialogButtonBox.StandardButton.RestoreDefaults, self)
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self._defaults)
        layout.addWidget(buttons)

    def _save(self) -> None:
        for name, edit in self.edits.items():
            seq = edit.keySequence().toString()
            current = shortcuts.key_strings(name)
            if seq and (not current or seq != current[0]):
                shortcuts.set_keys(name, [seq] + [k for k in current[1:] if k != seq])
        self.accept()

    def _defaults(self) -> None:
        shortcuts.reset_all()
        for name, edit in self.edits.items():
            edit.setKeySequence(QKeySequence(shortcuts.key_strings(name)[0]))


class MainWindow(QMainWindow):
    def __init__(self, session: Session | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session or Session(self)
        self.setWindowTitle("idstudio")
        self.setWindowIcon(icon("app"))
        self.job_widgets: dict[str, JobWidget] = {}
        self.job_logs: dict[str, list[str]] = {}
        self.errors: list[str] = []  # every job failure shown, newest last (tests read it)

        central = QWidget(self)
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = QListWidget(central)
        self.sidebar.setObjectName("Sidebar")
        self.sidebar.setFixedWidth(100)
        self.sidebar.setIconSize(QSize(26, 26))
        self.sidebar.setViewMode(QListWidget.ViewMode.IconMode)
        self.sidebar.setMovement(QListWidget.Movement.Static)
        self.sidebar.setFlow(QListWidget.Flow.TopToBottom)
        self.sidebar.setSpacing(2)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stack = QStackedWidget(central)
        row.addWidget(self.sidebar)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.views: dict[str, QWidget] = {}
        for module, cls_name, label, icon_name in VIEWS:
            view = self._make_view(module, cls_name, label)
            self.views[module] = view
            self.stack.addWidget(view)
            item = QListWidgetItem(icon(icon_name), label)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setSizeHint(QSize(88, 64))
            self.sidebar.addItem(item)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)

        self._build_menus()
        # the project summary is a permanent widget (right): temporary messages (showMessage)
        # are drawn in the space left of the permanent widgets, so the two never overlap
        self.status_label = QLabel("No project open — File ▸ Open project or Import ▸ Demo world", self)
        self.status_label.setObjectName("StatusSummary")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.statusBar().addPermanentWidget(self.status_label)
        self.statusBar().setSizeGripEnabled(False)
        self._status_timer = QTimer(self)  # coalesces data_changed bursts (one per review keypress)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(250)
        self._status_timer.timeout.connect(self._update_status)

        runner = self.session.runner
        runner.started.connect(self._job_started)
        runner.progress.connect(self._job_progress)
        runner.log.connect(lambda job_id, msg: self.job_logs.setdefault(job_id, []).append(msg))
        runner.finished.connect(self._job_finished)
        runner.failed.connect(self._job_failed)
        runner.cancelled.connect(self._job_cancelled)
        self.session.project_opened.connect(self._project_opened)
        self.session.data_changed.connect(lambda area: self._status_timer.start())
        shortcuts.notifier.changed.connect(self._bind_shortcuts)
        self._bind_shortcuts()
        self._restore_settings()

    # ---- views ---------------------------------------------------------------------------
    def _make_view(self, module: str, cls_name: str, label: str) -> QWidget:
        try:
            mod = importlib.import_module(f"idstudio.gui.views.{module}")
            cls = getattr(mod, cls_name)
        except ModuleNotFoundError as exc:
            if exc.name != f"idstudio.gui.views.{module}":
                return PlaceholderView(label, f"This view could not load: {exc}.")
            return PlaceholderView(label, "This view is not built yet.")
        except Exception as exc:  # noqa: BLE001 - the app must still start
            return PlaceholderView(label, f"This view could not load: {type(exc).__name__}: {exc}.")
        try:
            return cls(self.session)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            return PlaceholderView(label, f"This view failed to start: {type(exc).__name__}: {exc}.")

    def show_view(self, name: str) -> QWidget:
        index = [v[0] for v in VIEWS].index(name)
        self.sidebar.setCurrentRow(index)
        return self.views[name]

    def current_view_name(self) -> str:
        return VIEWS[max(self.stack.currentIndex(), 0)][0]

    def open_in_data_view(self, video_id: int, frame: int, instance_id: int | None = None) -> None:
        view = self.show_view("data")
        if hasattr(view, "show_frame"):
            view.show_frame(video_id, frame, instance_id)

    # ---- menus ----------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, icon_name: str | None = None, shortcut: str | None = None) -> QAction:
        action = QAction(icon(icon_name) if icon_name else QIcon(), text, self)
        action.triggered.connect(slot)
        if shortcut:
            self._shortcut_actions[shortcut] = action
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        self._shortcut_actions: dict[str, QAction] = {}
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&New project…", self.new_project, "new", "project.new")
        self._action(file_menu, "&Open project…", self.open_project_dialog, "open", "project.open")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        quit_action = self._action(file_menu, "&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        import_menu = bar.addMenu("&Import")
        for text, kind in (("&Video…", "video"), ("&MOT sequence…", "mot"), ("Market-1501 &folder…", "market"),
                           ("&Tracklets folder…", "tracklets"), ("&Demo world", "demo")):
            self._action(import_menu, text, lambda _=False, k=kind: self.start_import(k), "import")

        export_menu = bar.addMenu("&Export")
        self._action(export_menu, "Review &decisions (CSV)…", self.export_decisions, "export")

        view_menu = bar.addMenu("&View")
        group = QActionGroup(self)
        for module, _, label, icon_name in VIEWS:
            action = self._action(view_menu, label, lambda _=False, m=module: self.show_view(m), icon_name, f"view.{module}")
            group.addAction(action)

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "keyboard", "help.shortcuts")
        self._action(help_menu, "&Doctor (check the set-up)…", self.show_doctor)
        self._action(help_menu, "&About idstudio", self.show_about)

    def _bind_shortcuts(self) -> None:
        for name, action in self._shortcut_actions.items():
            action.setShortcuts(shortcuts.keys(name))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = Session.recent()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_project(p))

    # ---- project ----------------------------------------------------------------------------
    def open_project(self, path: Path | str, create: bool = False) -> bool:
        try:
            self.session.open(path, create=create)
        except UserError as exc:
            self.show_error("Cannot open the project", str(exc))
            return False
        return True

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an idstudio project folder", str(self.session.root or Path.home()))
        if folder:
            self.open_project(folder)

    def new_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose or create an empty folder for the new project", str(Path.home()))
        if folder:
            self.open_project(folder, create=True)

    def _project_opened(self, root: Path) -> None:
        self.setWindowTitle(f"{root.name} — idstudio")
        QSettings().setValue("last_project", str(root))
        self._update_status()

    def _update_status(self) -> None:
        project = self.session.project
        if project is None:
            return
        try:
            n_tracklet_cams = project.count("videos", "kind = 'tracklets'")
            n_videos = project.count("videos") - n_tracklet_cams
            n_instances = project.count("instances", "video_id IS NOT NULL")  # as the Data view counts them
            n_pairs = project.count("pairs")
            n_reviews = project.scalar(  # pairs with a current decision (undone ones do not count)
                "SELECT COUNT(*) FROM reviews r JOIN (SELECT MAX(id) AS id FROM reviews GROUP BY a, b) m"
                " ON m.id = r.id WHERE r.decision != 'none'") or 0
        except Exception:  # noqa: BLE001 - the status line must never break the window
            return
        self.status_label.setText(
            f"{self.session.root.name}  ·  {counted(n_videos, 'video')}  ·  "
            + (f"{counted(n_tracklet_cams, 'tracklet camera')}  ·  " if n_tracklet_cams else "")
            + f"{counted(n_instances, 'instance')}  ·  {counted(n_pairs, 'pair')}  ·  {n_reviews:,} reviewed"
        )
        self.status_label.setToolTip(str(self.session.root))

    def start_import(self, kind: str) -> None:
        view = self.show_view("data")
        if hasattr(view, "start_import"):
            view.start_import(kind)
        else:
            self.show_error("Import", "The Data view is not available in this build.")

    def export_decisions(self) -> None:
        if self.session.project is None:
            self.show_error("Export", "Open a project first (File ▸ Open project).")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export review decisions", str(self.session.root / "decisions.csv"), "CSV (*.csv)")
        if path:
            self.write_decisions_csv(Path(path))

    def write_decisions_csv(self, path: Path) -> int:
        from idstudio.services import review

        decisions = review.current_decisions(self.session.project)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["a", "b", "decision"])
            for (a, b), d in sorted(decisions.items()):
                writer.writerow([a, b, d])
        self.statusBar().showMessage(f"Wrote {len(decisions)} decisions to {path}", 5000)
        return len(decisions)

    # ---- help ----------------------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        ShortcutsDialog(self).exec()

    def show_doctor(self) -> None:
        from idstudio.gui.doctor_dialog import show_doctor

        self._doctor_dialog = show_doctor(self)

    def show_about(self) -> None:
        from idstudio import __version__

        QMessageBox.about(self, "About idstudio", f"<b>idstudio {__version__}</b><p>Train and inspect person "
                          "re-identification models learned from unlabeled video (ISR, ICCV 2023).</p>")

    # ---- jobs ------------------------------------------------------------------------------------
    def _job_started(self, job_id: str, title: str) -> None:
        handle = self.session.runner.handle(job_id)
        if handle is not None and handle.quiet:  # a background look-up: its view shows the outcome
            return
        widget = JobWidget(handle, self)
        self.job_widgets[job_id] = widget
        self.statusBar().addPermanentWidget(widget)

    def _job_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        widget = self.job_widgets.get(job_id)
        if widget is not None:
            widget.set_progress(done, total, message)

    def _remove_job(self, job_id: str) -> None:
        widget = self.job_widgets.pop(job_id, None)
        if widget is not None:
            self.statusBar().removeWidget(widget)
            widget.deleteLater()

    def _job_finished(self, job_id: str, result: Any) -> None:
        handle = self.session.runner.handle(job_id)
        self._remove_job(job_id)
        if handle is not None and handle.quiet:
            return
        self.statusBar().showMessage(f"{handle.title if handle else 'Job'} finished.", 6000)
        self._update_status()

    def _job_cancelled(self, job_id: str) -> None:
        handle = self.session.runner.handle(job_id)
        self._remove_job(job_id)
        if handle is not None and handle.quiet:
            return
        self.statusBar().showMessage(f"{handle.title if handle else 'Job'} cancelled; nothing was kept from it.", 6000)

    def _job_failed(self, job_id: str, message: str) -> None:
        handle = self.session.runner.handle(job_id)
        self._remove_job(job_id)
        if handle is not None and handle.quiet:
            return
        title = f"{handle.title} failed" if handle else "A job failed"
        details = "\n".join(self.job_logs.get(job_id, [])[-20:])
        self.show_error(title, message, details)

    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """A non-blocking message box (the event loop keeps running; tests can find it)."""
        self.errors.append(message)
        self.statusBar().showMessage(message, 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("ErrorBox")
        if details.strip():
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # ---- settings ------------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        settings = QSettings()
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = settings.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self.sidebar.setCurrentRow(int(settings.value("window/view", 0) or 0))

    def save_settings(self) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/view", self.stack.currentIndex())
        for view in self.views.values():
            if hasattr(view, "save_settings"):
                view.save_settings()
        settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802
        running = [h for h in self.session.runner.running() if not h.quiet]
        if running:
            answer = QMessageBox.question(
                self, "Jobs are running",
                f"{len(running)} job(s) are running ({', '.join(h.title for h in running)}). Cancel them and quit?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.save_settings()
        for view in self.views.values():
            if hasattr(view, "shutdown"):
                view.shutdown()
        self.session.runner.shutdown()
        self.session.close()
        super().closeEvent(event)

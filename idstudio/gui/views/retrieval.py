"""The Retrieval view: where a model fails, query by query.

Choose a checkpoint (and optionally a second one to compare) and a labelled dataset, then
Evaluate (a job in a worker thread). The view shows the summary figures (Rank-1/5/10, mAP,
mINP) and the CMC curve; a sortable query list with per-query AP ("Worst first" = lowest AP
first); the selected query's ranked gallery with green (right), red (wrong) and grey
(ignored by the Market-1501 protocol: same identity and camera, or junk) borders and
cosine scores; with a second checkpoint, its ranked list beneath and how each query's
first correct match moved; a 2-D PCA projection of the embeddings linked to the selection;
and search by an image file dropped on the view. Clicking a result opens its source frame
in the Data view when it has one.

Its parts: the query list in ``gui/query_list.py``, the figures and model cards in
``gui/retrieval_panels.py``, the ranked grid in ``gui/ranked_grid.py``, and what it browses
(with the worker jobs that build it) in ``gui/retrieval_jobs.py``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from idstudio.core.errors import UserError
from idstudio.gui.query_list import ORDERS, QueryModel, QueryProxy
from idstudio.gui.ranked_grid import IGNORED, QUERY, RIGHT, WRONG, RankedGrid, ThumbnailLoader, Tile
from idstudio.gui.retrieval_jobs import BrowseResult, add_model_job, browse_job, prepare_overlays_job, search_job
from idstudio.gui.retrieval_panels import CmcPlot, ModelCardPanel, PcaPlot, SummaryBar

TOP_K = 50
# The B choice "A, centralized": the same model as A, its features centralized (Pose2ID's
# neighbour part, core.centralize) with the k of the spin box beside it.
CENTRALIZED = "__centralized__"
DEFAULT_CENTRALIZE_K = 5  # the README's measurement: the best k across the labelled sets
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class RetrievalView(QWidget):
    title = "Retrieval"

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.results: dict[str, BrowseResult | None] = {"A": None, "B": None}
        self.overlay_loaders: dict[str, ThumbnailLoader] = {}
        self.jobs: dict[str, Any] = {}  # "A" | "B" | "search" -> JobHandle
        self.current_row = -1
        self.search_tiles: list[Tile] | None = None
        self.quiet_errors = False
        self.setAcceptDrops(True)
        self.loader = ThumbnailLoader(parent=self)
        self._build()
        runner = session.runner
        runner.progress.connect(self._on_progress)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_cancelled)
        session.project_opened.connect(lambda *_: self.refresh_choices())
        session.data_changed.connect(
            lambda area: area in ("runs", "datasets", "evaluations", "models") and self.refresh_choices())
        if getattr(session, "project", None) is not None:
            self.refresh_choices()

    # ---- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        v = QVBoxLayout(self)
        v.setContentsMargins(6, 6, 6, 6)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Checkpoint"))
        self.ckpt_a = QComboBox(self)
        self.ckpt_a.setObjectName("checkpoint_a")
        self.ckpt_a.setMinimumWidth(220)
        self.ckpt_a.setToolTip("A: the model to audit (a run's best checkpoint, a registered model from elsewhere, "
                               "the random init or the colour histogram).")
        bar.addWidget(self.ckpt_a)
        bar.addWidget(QLabel("compare with"))
        self.ckpt_b = QComboBox(self)
        self.ckpt_b.setObjectName("checkpoint_b")
        self.ckpt_b.setMinimumWidth(180)
        self.ckpt_b.setToolTip("B: optional second model, or A itself with feature centralization; the query list "
                               "shows how each query's rank moved.")
        bar.addWidget(self.ckpt_b)
        self.central_k = QSpinBox(self)
        self.central_k.setObjectName("centralize_k")
        self.central_k.setRange(1, 50)
        self.central_k.setValue(DEFAULT_CENTRALIZE_K)
        self.central_k.setPrefix("k = ")
        self.central_k.setMaximumWidth(80)
        self.central_k.setToolTip("Feature centralization (Pose2ID): each query and gallery feature is averaged with "
                                  "its tracklet, or with its mutual k nearest neighbours among query + gallery, "
                                  "then compared (idstudio eval --centralize k).")
        self.central_k.setVisible(False)
        bar.addWidget(self.central_k)
        self.add_model_btn = QPushButton("+ Model…", self)
        self.add_model_btn.setObjectName("add_model")
        self.add_model_btn.setToolTip("Register a model from elsewhere: ONNX, TorchScript, the ISR release "
                                      "(idstudio model add).")
        self.add_model_btn.clicked.connect(self.add_model)
        bar.addWidget(self.add_model_btn)
        bar.addWidget(QLabel("Dataset"))
        self.dataset_box = QComboBox(self)
        self.dataset_box.setObjectName("dataset")
        self.dataset_box.setMinimumWidth(160)
        bar.addWidget(self.dataset_box)
        self.eval_btn = QPushButton("Evaluate", self)
        self.eval_btn.setObjectName("evaluate")
        self.eval_btn.setToolTip("Embed the dataset with the chosen checkpoint(s) and rank the gallery (F5).")
        self.eval_btn.setShortcut("F5")
        self.eval_btn.clicked.connect(self.evaluate)
        bar.addWidget(self.eval_btn)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        bar.addWidget(self.progress)
        bar.addStretch(1)
        v.addLayout(bar)

        self.cards = ModelCardPanel(self)
        v.addWidget(self.cards)
        self.ckpt_a.currentIndexChanged.connect(self.update_cards)
        self.ckpt_b.currentIndexChanged.connect(self.update_cards)
        self.ckpt_b.currentIndexChanged.connect(
            lambda *_: self.central_k.setVisible(self.ckpt_b.currentData() == CENTRALIZED))
        self.central_k.valueChanged.connect(self.update_cards)

        self.summary = SummaryBar(self)
        v.addWidget(self.summary)

        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter = split
        v.addWidget(split, 1)

        # queries
        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        order_row = QHBoxLayout()
        order_row.addWidget(QLabel("Order"))
        self.order_box = QComboBox(left)
        self.order_box.setObjectName("order")
        self.order_box.addItems(list(ORDERS)[:4])
        self.order_box.setToolTip("Worst first: queries with the lowest average precision at the top.")
        self.order_box.currentTextChanged.connect(self.apply_order)
        order_row.addWidget(self.order_box, 1)
        lv.addLayout(order_row)
        self.query_model = QueryModel(self)
        self.query_proxy = QueryProxy(self)
        self.query_proxy.setSourceModel(self.query_model)
        self.query_table = QTableView(left)
        self.query_table.setObjectName("queries")
        self.query_table.setModel(self.query_proxy)
        self.query_table.setSortingEnabled(True)
        self.query_table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.query_table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.query_table.verticalHeader().setVisible(False)
        self.query_table.verticalHeader().setDefaultSectionSize(20)
        self.query_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.query_table.setAlternatingRowColors(True)
        self.query_table.selectionModel().currentRowChanged.connect(self._on_query_row)
        lv.addWidget(self.query_table, 1)
        split.addWidget(left)

        # ranked lists
        middle = QWidget(split)
        mv = QVBoxLayout(middle)
        mv.setContentsMargins(0, 0, 0, 0)
        self.query_title = QLabel("No query selected", middle)
        self.query_title.setStyleSheet("font-weight: bold")
        self.query_title.setWordWrap(True)
        mv.addWidget(self.query_title)
        head = QHBoxLayout()
        self.query_tile = RankedGrid(self.loader, middle, wrap=False)
        self.query_tile.setObjectName("query_tile")
        self.query_tile.setFixedWidth(96)
        self.query_tile.setToolTip("The query")
        head.addWidget(self.query_tile)
        legend = QLabel(
            "<span style='color:#23a13a'>■</span> right &nbsp; <span style='color:#d63a2f'>■</span> wrong &nbsp; "
            "<span style='color:#9a9a9a'>■</span> ignored by the protocol (same person, same camera; or junk)"
            "<br>Click a result to open its source frame in the Data view. Drop an image file here to search with it.",
            middle)
        legend.setWordWrap(True)
        legend.setStyleSheet("color: #555; font-size: 8pt")
        # legend and the activation box stacked beside the query: side by side they squeezed
        # the legend into a column a word wide once the query table took its width (A/B)
        side = QVBoxLayout()
        side.addWidget(legend)
        self.look_box = QCheckBox("Where the model looks", middle)
        self.look_box.setObjectName("activation")
        self.look_box.setToolTip("Overlay each crop with its model's activation map (the mean of the last feature "
                                 "map's squared activations; red strongest): does a match rest on the person or on "
                                 "the background? For idstudio models and the ISR release.")
        self.look_box.toggled.connect(self.show_activation)
        side.addWidget(self.look_box)
        side.addStretch(1)
        head.addLayout(side, 1)
        mv.addLayout(head)
        self.label_a = QLabel("A", middle)
        self.label_a.setStyleSheet("color: #2f7ed8; font-weight: 600")
        mv.addWidget(self.label_a)
        self.grid_a = RankedGrid(self.loader, middle)
        self.grid_a.setObjectName("grid_a")
        self.grid_a.tile_activated.connect(self.open_source)
        mv.addWidget(self.grid_a, 2)
        self.label_b = QLabel("B", middle)
        self.label_b.setStyleSheet("color: #e4572e; font-weight: 600")
        mv.addWidget(self.label_b)
        self.grid_b = RankedGrid(self.loader, middle, wrap=False)
        self.grid_b.setObjectName("grid_b")
        self.grid_b.tile_activated.connect(self.open_source)
        mv.addWidget(self.grid_b)
        self.label_b.hide()
        self.grid_b.hide()
        split.addWidget(middle)

        # plots
        right = QSplitter(Qt.Orientation.Vertical, split)
        self.cmc = CmcPlot(right)
        self.pca = PcaPlot(right)
        self.pca.query_clicked.connect(self.select_query_row)
        right.addWidget(self.cmc)
        right.addWidget(self.pca)
        split.addWidget(right)
        split.setSizes([380, 640, 330])
        split.setStretchFactor(1, 1)

    def prepare_screenshot(self, process_events, timeout: float = 300.0) -> None:
        """For the README pictures: evaluate the first checkpoint (blocking, events pumped)."""
        import time

        if self.results["A"] is not None or self.dataset_box.count() == 0:
            return
        self.quiet_errors = True
        self.evaluate()
        end = time.monotonic() + timeout
        while getattr(self, "_pending", None) and time.monotonic() < end:
            process_events()
            time.sleep(0.01)
        end = time.monotonic() + 10
        while self.loader.pending() and time.monotonic() < end:
            process_events()
            time.sleep(0.01)

    # ---- choices --------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        project = getattr(self.session, "project", None)
        keep_a, keep_b, keep_d = self.ckpt_a.currentData(), self.ckpt_b.currentData(), self.dataset_box.currentData()
        self.ckpt_a.clear()
        self.ckpt_b.clear()
        self.dataset_box.clear()
        self.ckpt_b.addItem("(none)", None)
        self.ckpt_b.addItem("A, centralized (Pose2ID)", CENTRALIZED)
        if project is None:
            return
        self.loader.set_fetch(project.crop_jpegs)
        runs = [dict(r) for r in project.query(
            "SELECT id, status, epochs_done, summary FROM runs WHERE kind = 'train' ORDER BY created_at DESC")]
        for run in runs:
            if not any((project.runs_dir / run["id"] / n).is_file() for n in ("best.pt", "last.pt")):
                continue
            label = f"{run['id']} ({run['status']}, {run['epochs_done'] or 0} ep)"
            self.ckpt_a.addItem(label, run["id"])
            self.ckpt_b.addItem(label, run["id"])
        from idstudio.services import model_registry

        for m in model_registry.list_models(project):
            card = m["card"]
            label = f"{m['name']} ({m['kind']}, {card['height']}x{card['width']}, {card['dim']}-d)"
            self.ckpt_a.addItem(label, m["ref"])
            self.ckpt_b.addItem(label, m["ref"])
        for label, ref in (("init (random, seed 0)", "init"), ("colour histogram (no learning)", "colorhist")):
            self.ckpt_a.addItem(label, ref)
            self.ckpt_b.addItem(label, ref)
        for d in project.datasets():
            if (d.get("n_query") or 0) and (d.get("n_gallery") or 0):
                self.dataset_box.addItem(f"{d['name']} ({d['n_query']} q / {d['n_gallery']} g)", d["id"])
        for box, keep in ((self.ckpt_a, keep_a), (self.ckpt_b, keep_b), (self.dataset_box, keep_d)):
            i = box.findData(keep)
            if keep is not None and i >= 0:
                box.setCurrentIndex(i)
        self.eval_btn.setEnabled(self.dataset_box.count() > 0)
        self.update_cards()
        if self.dataset_box.count() == 0:
            self.summary.note.setText("This project has no labelled dataset with query and gallery images; "
                                      "import one in the Data view (Market-1501 folder).")

    def update_cards(self, *_args) -> None:
        """The model card panel follows the A and B choices (read from the project, nothing run)."""
        project = getattr(self.session, "project", None)
        from idstudio.services import evaluation

        for row, box in enumerate((self.ckpt_a, self.ckpt_b)):
            ref = box.currentData()
            centralized = ref == CENTRALIZED
            if centralized:
                ref = self.ckpt_a.currentData()
            card = None
            if project is not None and (ref is not None or centralized or (row == 0 and box.count())):
                try:
                    card = dict(evaluation.describe_model(project, ref))
                except UserError as exc:
                    card = {"kind": str(exc), "input": "", "colour": "", "normalisation": "", "output": ""}
                if centralized:
                    card["kind"] = f"A, centralized: k = {self.central_k.value()} mutual neighbours"
                    card["note"] = ("A's features, each averaged with its tracklet or its mutual nearest neighbours "
                                    "(Pose2ID), then renormalised")
            self.cards.set_card(row, card)

    def add_model(self) -> None:
        """Ask for a model file and its card, and register it in a worker (it is run once)."""
        if self.session.root is None:
            return
        from idstudio.gui.model_dialog import AddModelDialog

        dialog = AddModelDialog(self, start_dir=str(self.session.root))
        if dialog.exec() != AddModelDialog.DialogCode.Accepted:
            return
        try:
            kwargs = dialog.arguments()
        except UserError as exc:
            self._error(str(exc))
            return
        self.register_model(kwargs)

    def register_model(self, kwargs: dict[str, Any]):
        self.add_model_btn.setEnabled(False)

        def done(info: dict[str, Any]) -> None:
            self.refresh_choices()
            i = self.ckpt_a.findData(info["ref"])
            if i >= 0:
                self.ckpt_a.setCurrentIndex(i)

        handle = self.session.start_job(f"Register {Path(kwargs['file']).name}", add_model_job,
                                        Path(self.session.root), kwargs, changes=("models",), on_finished=done)
        self.jobs["add"] = handle
        runner = self.session.runner

        def ended(job_id, *_):
            if job_id == handle.job_id:
                self.add_model_btn.setEnabled(True)
        for sig in (runner.finished, runner.failed, runner.cancelled):
            sig.connect(ended)
        return handle

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self) -> None:
        if self.session.root is None:
            return
        if any(h is not None and h.running for slot, h in self.jobs.items() if slot in ("A", "B")):
            return
        dataset = self.dataset_box.currentData()
        if dataset is None:
            self._error("Import a labelled dataset (Market-1501 folder) first: the Retrieval view needs queries and a gallery.")
            return
        wanted = {"A": (self.ckpt_a.currentData(), 0)}
        if self.ckpt_b.currentData() == CENTRALIZED:
            wanted["B"] = (self.ckpt_a.currentData(), self.central_k.value())
        elif self.ckpt_b.currentData() is not None:
            wanted["B"] = (self.ckpt_b.currentData(), 0)
        self.results = {"A": None, "B": None}
        self.search_tiles = None
        self.look_box.setChecked(False)  # new models: their maps are made when asked for again
        self.overlay_loaders = {}
        self._pending = set(wanted)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.eval_btn.setEnabled(False)
        for slot, (ckpt, k) in wanted.items():
            job = functools.partial(browse_job, centralize=k) if k else browse_job
            handle = self.session.start_job(
                f"Evaluate {ckpt}" + (f", centralized k={k}" if k else ""), job, Path(self.session.root), ckpt,
                dataset, TOP_K, changes=("evaluations",), on_finished=lambda res, s=slot: self._on_result(s, res))
            self.jobs[slot] = handle

    def _on_result(self, slot: str, result: BrowseResult) -> None:
        self.results[slot] = result
        self._pending.discard(slot)
        if not self._pending:
            self.progress.setVisible(False)
            self.eval_btn.setEnabled(True)
            self.show_results()

    def _mine(self, job_id: str) -> str | None:
        for slot, h in self.jobs.items():
            if h is not None and h.job_id == job_id:
                return slot
        return None

    def _on_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        if self._mine(job_id) in ("A", "B"):
            self.progress.setMaximum(max(total, 1))
            self.progress.setValue(done)
            self.progress.setFormat(f"{message[:30]} %p%" if message else "%p%")

    def _on_failed(self, job_id: str, message: str) -> None:
        slot = self._mine(job_id)
        if slot is None:
            return
        if slot in ("add", "search", "look-A", "look-B"):
            self.jobs[slot] = None
            if slot == "look-B":  # a note beside B's results, not an error: A's maps are shown
                self.label_b.setText(f"{self._names()[1]} · no activation maps: only idstudio models and the ISR "
                                     "release have a feature map to look at")
                return
            if slot == "look-A":
                self.look_box.setChecked(False)
            self._error(message)
            return
        self.jobs[slot] = None
        self._pending = set()
        self.progress.setVisible(False)
        self.eval_btn.setEnabled(True)
        self._error(message)

    def _on_cancelled(self, job_id: str) -> None:
        if self._mine(job_id) is not None:
            self._pending = set()
            self.progress.setVisible(False)
            self.eval_btn.setEnabled(True)

    def _error(self, message: str) -> None:
        self.query_title.setText(f"Error: {message}")
        if not self.quiet_errors:
            QMessageBox.warning(self, "Retrieval", message)

    def _names(self) -> tuple[str, str]:
        b = self.results.get("B")
        if b is not None and b.extra.get("centralize"):
            return (f"A: {self.ckpt_a.currentText()}", f"B: A, centralized (k = {b.extra['centralize']})")
        return (f"A: {self.ckpt_a.currentText()}", f"B: {self.ckpt_b.currentText()}")

    def show_results(self) -> None:
        a, b = self.results["A"], self.results["B"]
        names = self._names()
        self.summary.set_results(a, b, names=("A", "B"))
        self.query_model.set_results(a, b)
        self.label_a.setText(names[0])
        self.label_b.setText(names[1])
        self.label_b.setVisible(b is not None)
        self.grid_b.setVisible(b is not None)
        self.cmc.set_results([(n, r) for n, r in zip(("A", "B"), (a, b)) if r is not None])
        self.pca.set_result(a)
        # orderings that need B
        current = self.order_box.currentText()
        self.order_box.blockSignals(True)
        self.order_box.clear()
        self.order_box.addItems([k for k in ORDERS if b is not None or "in B" not in k])
        self.order_box.setCurrentText(current if self.order_box.findText(current) >= 0 else list(ORDERS)[0])
        self.order_box.blockSignals(False)
        self.apply_order(self.order_box.currentText())
        self._fit_query_table()
        if a is not None and len(a.q_ids):
            self.select_query_row(self._source_row(0))

    def _fit_query_table(self) -> None:
        """Widen the query panel so every column shows (the grid gives up the space)."""
        table = self.query_table
        table.resizeColumnsToContents()
        wanted = table.horizontalHeader().length() + table.verticalScrollBar().sizeHint().width() + 2 * table.frameWidth() + 4
        sizes = self.splitter.sizes()
        if sum(sizes) and sizes[0] < wanted:
            grow = wanted - sizes[0]
            # the plots give up their spare width first (down to 260), then the ranked lists
            from_plots = min(grow, max(0, sizes[2] - 260))
            self.splitter.setSizes([wanted, max(300, sizes[1] - (grow - from_plots)), sizes[2] - from_plots])

    def apply_order(self, name: str) -> None:
        if name not in ORDERS or self.query_model.a is None:
            return
        key, order = ORDERS[name]
        if key == "delta" and self.query_model.b is None:
            return
        self.query_table.sortByColumn(self.query_model.column_of(key), order)
        self.query_table.scrollToTop()

    def _source_row(self, view_row: int) -> int:
        return self.query_proxy.mapToSource(self.query_proxy.index(view_row, 0)).row()

    def select_query_row(self, source_row: int) -> None:
        """Select a query by its row in the result (the table, PCA and grids follow)."""
        index = self.query_proxy.mapFromSource(self.query_model.index(source_row, 0))
        if index.isValid():
            self.query_table.setCurrentIndex(index)
            self.query_table.scrollTo(index)

    def _on_query_row(self, current: QModelIndex, _previous=None) -> None:
        if not current.isValid():
            return
        row = self.query_proxy.mapToSource(current).row()
        self.show_query(row)

    def _tiles(self, res: BrowseResult, row: int) -> list[Tile]:
        tiles = []
        for rank, (g, score, st) in enumerate(zip(res.ranked[row], res.scores[row], res.status[row]), start=1):
            tiles.append(Tile(int(res.g_ids[g]), int(st), float(score), rank,
                              f"identity {int(res.g_identity[g])}, camera {res.g_camera[g]}"))
        return tiles

    def show_query(self, row: int) -> None:
        a = self.results["A"]
        if a is None or row < 0:
            return
        self.current_row = row
        self.search_tiles = None
        qid = int(a.q_ids[row])
        self.query_tile.set_tiles([Tile(qid, QUERY, None, None, f"identity {int(a.q_identity[row])}")])
        ap = a.ap[row]
        ap_text = "skipped by the protocol (no correct match left)" if np.isnan(ap) else f"AP {100 * ap:.1f}"
        hit = int(a.first_hit[row])
        text = (f"Query {qid} · identity {int(a.q_identity[row])} · camera {a.q_camera[row]} · {ap_text}"
                + (f" · first correct match at rank {hit}" if hit else ""))
        b = self.results["B"]
        if b is not None:
            hb = int(b.first_hit[row])
            if hit and hb:
                moved = hit - hb
                text += f" · in B at rank {hb} ({'up' if moved > 0 else 'down' if moved < 0 else 'same'}"\
                        f"{f' {abs(moved)}' if moved else ''})"
        self.query_title.setText(text)
        self.grid_a.set_tiles(self._tiles(a, row))
        if b is not None:
            self.grid_b.set_tiles(self._tiles(b, row))
        self.pca.select(row)

    # ---- where the model looks -------------------------------------------------------------
    def _use_loader(self, grid: RankedGrid, loader: ThumbnailLoader) -> None:
        if grid.loader is loader:
            return
        try:
            grid.loader.ready.disconnect(grid.viewport().update)
        except (RuntimeError, TypeError):
            pass
        grid.loader = loader
        grid.itemDelegate().loader = loader
        loader.ready.connect(grid.viewport().update)
        grid.viewport().update()

    def _apply_loaders(self) -> None:
        on = self.look_box.isChecked()
        if not on:
            self.label_b.setText(self._names()[1])
        a = self.overlay_loaders.get("A") if on else None
        b = self.overlay_loaders.get("B") if on else None
        self._use_loader(self.grid_a, a or self.loader)
        self._use_loader(self.query_tile, a or self.loader)
        self._use_loader(self.grid_b, b or self.loader)

    def show_activation(self, on: bool) -> None:
        """Overlay the tiles with their model's activation map (a model is prepared once, in a
        worker); off: the plain crops again."""
        if not on:
            self._apply_loaders()
            return
        wanted = [slot for slot in ("A", "B") if self.results.get(slot) is not None
                  and slot not in getattr(self, "overlay_loaders", {})]
        if self.results.get("A") is None:
            self.look_box.setChecked(False)
            self._error("Evaluate a model first: its activation maps are drawn over its ranked results.")
            return
        if not wanted:
            self._apply_loaders()
            return
        from idstudio.services import evaluation

        self.overlay_loaders = getattr(self, "overlay_loaders", {})
        for slot in wanted:
            overlays = evaluation.ActivationOverlays(self.session.project, self.results[slot].checkpoint)

            def ready(prepared, s=slot) -> None:
                loader = ThumbnailLoader(fetch=prepared, parent=self)
                self.overlay_loaders[s] = loader
                self._apply_loaders()

            self.jobs[f"look-{slot}"] = self.session.start_job(
                f"Activation maps ({slot})", prepare_overlays_job, overlays, on_finished=ready)

    # ---- search by image ------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_image(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.search_image(path)

    @staticmethod
    def _dropped_image(mime) -> Path | None:
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile() and url.toLocalFile().lower().endswith(IMAGE_SUFFIXES):
                return Path(url.toLocalFile())
        return None

    def search_image(self, path: Path) -> None:
        a = self.results["A"]
        if a is None:
            self._error("Evaluate a checkpoint on a dataset first: a dropped image is searched in its gallery.")
            return
        if self.jobs.get("search") is not None and self.jobs["search"].running:
            return
        self.query_title.setText(f"Searching with {path.name}…")
        self.jobs["search"] = self.session.start_job(
            f"Search {path.name}", search_job, Path(self.session.root), a.checkpoint, a.dataset_id, path, TOP_K,
            on_finished=lambda res, p=path: self._on_search(p, res))

    def _on_search(self, path: Path, result: dict[str, Any]) -> None:
        status_of = {"right": RIGHT, "wrong": WRONG}
        tiles = [Tile(int(h["instance_id"]), status_of.get(h.get("status"), IGNORED), float(h["score"]), int(h["rank"]),
                      f"identity {h.get('identity')}, camera {h.get('camera')}")
                 for h in result["hits"]]
        self.search_tiles = tiles
        self.query_tile.set_tiles([])
        self.query_title.setText(f"Search results for {path.name} (a dropped image has no ground truth: all grey)")
        self.grid_a.set_tiles(tiles)
        self.grid_b.hide()
        self.label_b.hide()

    # ---- open in the Data view ------------------------------------------------------------
    def source_frame(self, instance_id: int) -> tuple[int, int, int] | None:
        """(video_id, frame, instance_id) of an instance's source frame, if the project has it.

        Gallery images have no video; for a Market-style name (``PPPP_cCsS_FFFFFF_NN.jpg``)
        the same person in frame FFFFFF of camera C's video is used when it exists."""
        project = self.session.project
        if project is None:
            return None
        inst = project.instance(instance_id)
        if inst.get("video_id") is not None:
            return int(inst["video_id"]), int(inst["frame"]), instance_id
        name = project.scalar("SELECT filename FROM dataset_items WHERE instance_id = ?", (instance_id,))
        m = re.match(r"^(-?\d+)_c(\d+)s\d+_(\d+)", name or "")
        if not m:
            return None
        person, camera, frame = int(m.group(1)), m.group(2), int(m.group(3))
        for video in project.videos():
            cam = str(video.get("camera") or "")
            if re.sub(r"\D", "", cam).lstrip("0") != camera.lstrip("0"):
                continue
            rows = project.query(
                "SELECT id FROM instances WHERE video_id = ? AND frame = ? AND identity = ? LIMIT 1",
                (video["id"], frame, person))
            if rows:
                return int(video["id"]), frame, int(rows[0]["id"])
        return None

    def open_source(self, tile: Tile) -> None:
        try:
            where = self.source_frame(tile.instance_id)
        except UserError as exc:
            self._error(str(exc))
            return
        if where is None:
            self.query_title.setText(f"Instance {tile.instance_id} is a gallery image without a source video "
                                     "in this project.")
            return
        window = self.window()
        opener = getattr(window, "open_in_data_view", None)
        if opener is None:
            self.query_title.setText(f"Instance {tile.instance_id}: video {where[0]}, frame {where[1]}.")
            return
        opener(*where)

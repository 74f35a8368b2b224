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
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
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
from idstudio.gui.ranked_grid import IGNORED, QUERY, RIGHT, WRONG, RankedGrid, ThumbnailLoader, Tile

TOP_K = 50
# The B choice "A, centralized": the same model as A, its features centralized (Pose2ID's
# neighbour part, core.centralize) with the k of the spin box beside it.
CENTRALIZED = "__centralized__"
DEFAULT_CENTRALIZE_K = 5  # the README's measurement: the best k across the labelled sets
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# ---- the data the view browses (built in a worker) ------------------------------------------
@dataclass
class BrowseResult:
    checkpoint: str  # checkpoint key
    dataset_id: int
    dataset_name: str
    q_ids: np.ndarray  # instance ids of the queries
    g_ids: np.ndarray  # instance ids of the gallery
    q_identity: np.ndarray
    g_identity: np.ndarray
    q_camera: list
    g_camera: list
    ap: np.ndarray  # per query, NaN when skipped by the protocol
    first_hit: np.ndarray  # 1-based rank of the first right match, 0 when skipped
    ranked: np.ndarray  # (n_query, k) gallery rows
    scores: np.ndarray
    status: np.ndarray  # RIGHT / WRONG / IGNORED
    cmc: np.ndarray
    summary: dict[str, Any]
    q_feat: np.ndarray | None = None
    g_feat: np.ndarray | None = None
    pca_q: np.ndarray | None = None  # (n_query, 2)
    pca_g: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _pca2(*blocks: np.ndarray) -> list[np.ndarray]:
    """A shared 2-D PCA of the stacked blocks (centred SVD)."""
    x = np.concatenate(blocks).astype(np.float64)
    if len(x) < 2:
        return [np.zeros((len(b), 2), np.float32) for b in blocks]
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    y = (x @ vt[:2].T).astype(np.float32)
    if y.shape[1] < 2:
        y = np.pad(y, ((0, 0), (0, 2 - y.shape[1])))
    out, start = [], 0
    for b in blocks:
        out.append(y[start:start + len(b)])
        start += len(b)
    return out


def browse_job(root: Path, checkpoint: str | None, dataset: str | int | None, top_k: int, ctx,
               centralize: int = 0) -> BrowseResult:
    """Evaluate a checkpoint on a dataset (stored in ``evaluations``, embeddings cached) and
    gather what the view browses: ranked lists, per-query AP, features and their PCA (worker).
    ``centralize`` k > 0: with feature centralization (the PCA stays on the plain features)."""
    from idstudio.core.store import Project
    from idstudio.services import evaluation

    with Project.open(root) as project:
        figures = evaluation.evaluate(project, checkpoint, dataset, ctx=ctx, centralize=centralize)
        ctx.check_cancelled()
        split, res, loaded = evaluation.evaluation_details(project, checkpoint, dataset, k=top_k, ctx=ctx,
                                                           centralize=centralize)
        qf, gf = evaluation.dataset_features(project, loaded, split, ctx=ctx)
        qf, gf = np.asarray(qf, np.float32), np.asarray(gf, np.float32)
    ctx.check_cancelled()
    pca_q, pca_g = _pca2(qf, gf)
    summary = res.summary()
    summary["evaluation_id"] = figures.get("evaluation_id")
    return BrowseResult(
        checkpoint=str(checkpoint), dataset_id=int(split.dataset["id"]), dataset_name=split.dataset["name"],
        q_ids=split.query.id, g_ids=split.gallery.id, q_identity=split.query.identity,
        g_identity=split.gallery.identity, q_camera=list(split.query.camera), g_camera=list(split.gallery.camera),
        ap=res.ap, first_hit=res.first_hit, ranked=res.ranked, scores=res.scores, status=res.status,
        cmc=np.asarray(res.cmc), summary=summary, q_feat=qf, g_feat=gf, pca_q=pca_q, pca_g=pca_g,
        extra={"checkpoint_key": loaded.ref_key, "centralize": int(centralize)})


def add_model_job(root: Path, kwargs: dict[str, Any], ctx) -> dict[str, Any]:
    """Register a model file (runs it once: a worker's job)."""
    from idstudio.core.store import Project
    from idstudio.services import model_registry

    with Project.open(root) as project:
        return model_registry.add(project, **kwargs)


def prepare_overlays_job(overlays, ctx):
    """Load the model behind activation overlays and check it has a feature map (worker)."""
    overlays.model()
    return overlays


def search_job(root: Path, checkpoint: str | None, dataset: str | int | None, image_path: Path, top_k: int, ctx):
    """Embed an image file with a checkpoint and search the dataset's gallery (worker)."""
    from idstudio.core.store import Project
    from idstudio.services import evaluation

    with Project.open(root) as project:
        return evaluation.search(project, checkpoint, image=Path(image_path), k=top_k, dataset=dataset, ctx=ctx)[0]


# ---- the query table ------------------------------------------------------------------------
ORDERS = {
    "Worst first (lowest AP)": ("ap", Qt.SortOrder.AscendingOrder),
    "Best first (highest AP)": ("ap", Qt.SortOrder.DescendingOrder),
    "Latest first correct match first": ("first_hit", Qt.SortOrder.DescendingOrder),
    "Query order": ("row", Qt.SortOrder.AscendingOrder),
    "Most worsened in B": ("delta", Qt.SortOrder.AscendingOrder),
    "Most improved in B": ("delta", Qt.SortOrder.DescendingOrder),
}


class QueryModel(QAbstractTableModel):
    BASE = ["Query", "ID", "Cam", "AP", "1st hit"]
    COMPARE = ["AP B", "1st B", "Moved"]
    SortRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.a: BrowseResult | None = None
        self.b: BrowseResult | None = None

    def set_results(self, a: BrowseResult | None, b: BrowseResult | None) -> None:
        self.beginResetModel()
        self.a, self.b = a, b
        self.endResetModel()

    def columns(self) -> list[str]:
        return self.BASE + (self.COMPARE if self.b is not None else [])

    def column_of(self, key: str) -> int:
        return {"row": 0, "ap": 3, "first_hit": 4, "delta": 7}[key]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() or self.a is None else len(self.a.q_ids)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns())

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns()[section]
        if role == Qt.ItemDataRole.ToolTipRole and orientation == Qt.Orientation.Horizontal:
            tips = {"Query": "instance id of the query image", "ID": "ground-truth identity", "Cam": "camera",
                    "AP": "average precision of this query with A, in % (— : skipped by the protocol)",
                    "1st hit": "rank of A's first correct match",
                    "AP B": "average precision with B, in %", "1st B": "rank of B's first correct match",
                    "Moved": "first-hit rank in A minus in B: positive (green) = B finds the person earlier"}
            return tips.get(self.columns()[section])
        return None

    def _delta(self, row: int) -> float | None:
        if self.b is None:
            return None
        fa, fb = int(self.a.first_hit[row]), int(self.b.first_hit[row])
        if fa == 0 or fb == 0:
            return None
        return float(fa - fb)

    def value(self, row: int, col: int) -> Any:
        a = self.a
        name = self.columns()[col]
        if name == "Query":
            return int(a.q_ids[row])
        if name == "ID":
            return int(a.q_identity[row])
        if name == "Cam":
            return a.q_camera[row]
        if name == "AP":
            return None if np.isnan(a.ap[row]) else float(a.ap[row])
        if name == "1st hit":
            return int(a.first_hit[row]) or None
        if name == "AP B":
            return None if np.isnan(self.b.ap[row]) else float(self.b.ap[row])
        if name == "1st B":
            return int(self.b.first_hit[row]) or None
        if name == "Moved":
            return self._delta(row)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.a is None:
            return None
        value = self.value(index.row(), index.column())
        name = self.columns()[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "—"
            if name.startswith("AP"):
                return f"{100 * value:.1f}"
            if name == "Moved":
                return f"{value:+.0f}" if value else "0"
            return str(value)
        if role == self.SortRole:
            if value is None:  # skipped queries sort after every real value
                return float("inf") if name != "Moved" else 0.0
            return value if not isinstance(value, str) else value
        if role == Qt.ItemDataRole.TextAlignmentRole and name != "Cam":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            if name == "Moved" and value:
                return QColor("#23a13a") if value > 0 else QColor("#d63a2f")
            if name.startswith("AP") and value is not None:
                return QColor("#d63a2f") if value < 0.3 else (QColor("#b8860b") if value < 0.7 else QColor("#23a13a"))
        return None


class QueryProxy(QSortFilterProxyModel):
    def lessThan(self, left, right) -> bool:  # noqa: N802
        a = left.data(QueryModel.SortRole)
        b = right.data(QueryModel.SortRole)
        try:
            if a == b:
                return left.row() < right.row()
            return a < b
        except TypeError:
            return str(a) < str(b)


# ---- figures: summary and CMC -----------------------------------------------------------------
class SummaryBar(QFrame):
    FIGURES = (("rank1", "Rank-1"), ("rank5", "Rank-5"), ("rank10", "Rank-10"), ("mAP", "mAP"), ("mINP", "mINP"))

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 8, 4)
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(0)
        self.row_labels = [QLabel("A"), QLabel("B")]
        self.values: list[dict[str, QLabel]] = [{}, {}]
        for col, (_, title) in enumerate(self.FIGURES, start=1):
            head = QLabel(title)
            head.setStyleSheet("color: #666; font-size: 8pt")
            grid.addWidget(head, 0, col, Qt.AlignmentFlag.AlignHCenter)
        for r in range(2):
            self.row_labels[r].setStyleSheet("color: #666")
            grid.addWidget(self.row_labels[r], r + 1, 0)
            for col, (key, _) in enumerate(self.FIGURES, start=1):
                label = QLabel("—")
                label.setObjectName(f"figure_{key}_{'ab'[r]}")
                label.setStyleSheet("font-size: 15pt; font-weight: 600")
                grid.addWidget(label, r + 1, col, Qt.AlignmentFlag.AlignHCenter)
                self.values[r][key] = label
        self.note = QLabel("")
        self.note.setStyleSheet("color: #666; font-size: 8pt")
        grid.addWidget(self.note, 0, len(self.FIGURES) + 1, 3, 1)
        grid.setColumnStretch(len(self.FIGURES) + 1, 1)
        self.set_results(None, None)

    def set_results(self, a: BrowseResult | None, b: BrowseResult | None, names=("A", "B")) -> None:
        for r, res in enumerate((a, b)):
            visible = res is not None or r == 0
            self.row_labels[r].setVisible(visible)
            self.row_labels[r].setText(names[r])
            for key, label in self.values[r].items():
                label.setVisible(visible)
                if res is None:
                    label.setText("—")
                    continue
                value = float(res.summary.get(key, float("nan")))
                text = f"{100 * value:.1f}"
                if r == 1 and a is not None:
                    delta = 100 * (value - float(a.summary.get(key, 0)))
                    colour = "#23a13a" if delta > 0.05 else ("#d63a2f" if delta < -0.05 else "#666")
                    text += f" <span style='font-size:9pt; color:{colour}'>({delta:+.1f})</span>"
                label.setText(text)
        if a is not None:
            self.note.setText(f"{a.summary.get('n_queries', len(a.q_ids))} queries used, "
                              f"{a.summary.get('n_skipped', 0)} skipped · gallery {len(a.g_ids)} · "
                              f"dataset {a.dataset_name}\nfigures in %, Market-1501 protocol")
        else:
            self.note.setText("Choose a checkpoint and a labelled dataset, then Evaluate.")


def _style_plot(plot: pg.PlotItem, title: str) -> None:
    plot.setTitle(title, size="9pt", color="#333")
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMenuEnabled(False)
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTextPen("#555")
        plot.getAxis(axis).setPen("#999")


class CmcPlot(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        _style_plot(self.getPlotItem(), "CMC curve")
        self.setLabel("bottom", "rank", color="#555")
        self.setLabel("left", "matched (%)", color="#555")
        self.setYRange(0, 100)
        self.addLegend(offset=(-6, -6), labelTextColor="#333", labelTextSize="8pt")
        self.curves: list[pg.PlotDataItem] = []

    def set_results(self, results: list[tuple[str, BrowseResult]]) -> None:
        for c in self.curves:
            self.removeItem(c)
            self.getPlotItem().legend.removeItem(c)
        self.curves = []
        colours = ["#2f7ed8", "#e4572e"]
        for (name, res), colour in zip(results, colours):
            y = 100 * np.asarray(res.cmc, dtype=float)
            x = np.arange(1, len(y) + 1)
            curve = self.plot(x, y, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=4,
                              symbolBrush=colour, symbolPen=None, name=name)
            self.curves.append(curve)
        if results:
            self.setXRange(1, max(len(r.cmc) for _, r in results))
            self.setYRange(min(min(100 * r.cmc.min() for _, r in results), 100) - 5, 101)


class PcaPlot(pg.PlotWidget):
    """Gallery (grey), queries (blue); the selected query and its top results highlighted."""

    query_clicked = Signal(int)  # query row

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        _style_plot(self.getPlotItem(), "Embeddings (PCA, 2-D)")
        self.getPlotItem().hideAxis("left")
        self.getPlotItem().hideAxis("bottom")
        self.gallery = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(150, 150, 150, 110))
        self.queries = pg.ScatterPlotItem(size=7, pen=None, brush=pg.mkBrush(47, 126, 216, 170))
        self.results = pg.ScatterPlotItem(size=10, brush=None)
        self.selected = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("#000", width=1),
                                           brush=pg.mkBrush("#2f7ed8"))
        for item in (self.gallery, self.queries, self.results, self.selected):
            self.addItem(item)
        self.queries.sigClicked.connect(self._clicked)
        self.result: BrowseResult | None = None

    def set_result(self, res: BrowseResult | None) -> None:
        self.result = res
        if res is None or res.pca_q is None:
            for item in (self.gallery, self.queries, self.results, self.selected):
                item.setData([], [])
            return
        self.gallery.setData(pos=res.pca_g)
        self.queries.setData(pos=res.pca_q, data=np.arange(len(res.pca_q)))
        self.results.setData([], [])
        self.selected.setData([], [])
        self.autoRange()

    def select(self, row: int, top: int = 10) -> None:
        res = self.result
        if res is None or res.pca_q is None or row < 0:
            return
        self.selected.setData(pos=res.pca_q[row:row + 1])
        rows = res.ranked[row, :top]
        colours = {RIGHT: "#23a13a", WRONG: "#d63a2f", IGNORED: "#9a9a9a"}
        pens = [pg.mkPen(colours.get(int(s), "#999"), width=2) for s in res.status[row, :top]]
        self.results.setData(pos=res.pca_g[rows], pen=pens, brush=None)

    def _clicked(self, _item, points, *_) -> None:
        if len(points):
            self.query_clicked.emit(int(points[0].data()))


# ---- the view -----------------------------------------------------------------------------------
class ModelCardPanel(QFrame):
    """What models A and B expect and give: kind, input size and resize, colour order,
    normalisation, output; fields a registered model took from defaults are marked."""

    FIELDS = (("kind", "Model"), ("input", "Input"), ("colour", "Colour"), ("normalisation", "Normalisation"),
              ("output", "Output"))

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("model_cards")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 3, 8, 3)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(1)
        for col, (_, title) in enumerate(self.FIELDS, start=1):
            head = QLabel(title)
            head.setStyleSheet("color: #666; font-size: 8pt")
            grid.addWidget(head, 0, col)
        self.rows: list[QLabel] = []
        self.cells: list[dict[str, QLabel]] = [{}, {}]
        for r, (name, colour) in enumerate((("A", "#2f7ed8"), ("B", "#e4572e"))):
            label = QLabel(name)
            label.setStyleSheet(f"color: {colour}; font-weight: 600")
            grid.addWidget(label, r + 1, 0)
            self.rows.append(label)
            for col, (key, _) in enumerate(self.FIELDS, start=1):
                cell = QLabel("")
                cell.setObjectName(f"card_{key}_{'ab'[r]}")
                cell.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                grid.addWidget(cell, r + 1, col)
                self.cells[r][key] = cell
        grid.setColumnStretch(len(self.FIELDS), 1)
        self.cards: list[dict[str, Any] | None] = [None, None]

    def set_card(self, row: int, card: dict[str, Any] | None) -> None:
        self.cards[row] = card
        visible = card is not None
        self.rows[row].setVisible(visible)
        assumed = set((card or {}).get("assumed") or [])
        if "resize" in assumed:
            assumed.add("input")
        for key, cell in self.cells[row].items():
            cell.setVisible(visible)
            if card is None:
                continue
            text = str(card.get(key, ""))
            if key in assumed:
                cell.setText(f"{text} <span style='color:#c27c0e'>(default, assumed)</span>")
                cell.setToolTip("Taken from the defaults when the model was registered: check it against the "
                                "model's documentation (idstudio model add --help).")
            else:
                cell.setText(text)
                cell.setToolTip(str(card.get("note", "")) if key == "kind" else "")


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

"""The Retrieval view's figures beside the ranked lists: the summary bar (Rank-1/5/10, mAP,
mINP for A and B, B's change beside it), the CMC curve, the PCA plot of the embeddings linked
to the selected query, and the model card panel (what models A and B expect and give).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel

from idstudio.gui.ranked_grid import IGNORED, RIGHT, WRONG
from idstudio.gui.retrieval_jobs import BrowseResult

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

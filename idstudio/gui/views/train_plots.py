"""The Train view's plots: six small pyqtgraph plots fed by metric events (buffered, redrawn
on a timer) or rebuilt from a run's ``metrics.jsonl``. An empty plot shows "no data yet" on
plain linear axes, the log-scaled ones included: log ticks (2..9) over no data said nothing."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

PALETTE = ["#2f7ed8", "#e4572e", "#2e9d3a", "#8e44ad", "#b8860b", "#17a2b8"]

# plot key -> (title, log-scale y)
PLOTS = {
    "loss": ("Loss (per step)", False),
    "lr": ("Learning rate", True),
    "pairs": ("Pairs per mining round", False),
    "quality": ("Pair quality per round", False),
    "component": ("Largest component share per round", False),
    "eval": ("mAP / Rank-1 per epoch (%)", False),
}
# metric name -> (plot, legend label, scale)
KNOWN = {
    "train/loss": ("loss", "loss", 1.0),
    "train/lr": ("lr", "lr", 1.0),
    "mine/n_pairs": ("pairs", "pairs", 1.0),
    "mine/mean_reliability": ("quality", "mean reliability", 1.0),
    "mine/precision": ("quality", "precision vs ground truth", 1.0),
    "mine/recall": ("quality", "recall vs ground truth", 1.0),
    "mine/largest_component_share": ("component", "largest component", 1.0),
    "eval/mAP": ("eval", "mAP", 100.0),
    "eval/rank1": ("eval", "Rank-1", 100.0),
}
# With several labelled datasets the trainer also logs eval/<dataset>/mAP (and rank1): one
# mAP curve per dataset; eval/mAP is then their mean.
PER_DATASET_PREFIX = "eval/"
MEAN_RELIABILITY = "mine/mean_reliability"


def metric_info(name: str) -> tuple[str, str, float] | None:
    """(plot, legend label, scale) of a metric name; None: not plotted."""
    if name in KNOWN:
        return KNOWN[name]
    if name.startswith(PER_DATASET_PREFIX) and name.endswith("/mAP") and name.count("/") == 2:
        return "eval", name.split("/")[1], 100.0
    return None


def plot_for(name: str) -> str | None:
    """Which plot a metric name belongs to (None: not plotted)."""
    entry = metric_info(name)
    return entry[0] if entry else None



class TrainPlots(pg.GraphicsLayoutWidget):
    """Six small plots; ``add(name, step, value)`` buffers, ``redraw()`` paints."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setBackground("w")
        self.ci.layout.setSpacing(4)
        self.plots: dict[str, pg.PlotItem] = {}
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.empty_labels: dict[str, pg.TextItem] = {}
        self.log_y: dict[str, bool] = {}
        self._dirty: set[str] = set()
        for i, (key, (title, log)) in enumerate(PLOTS.items()):
            plot = self.addPlot(row=i // 3, col=i % 3)
            plot.setTitle(title, size="9pt", color="#333")
            plot.showGrid(x=True, y=True, alpha=0.25)
            self.log_y[key] = log  # set when the first curve arrives (redraw): empty, all axes look alike
            plot.setMenuEnabled(False)
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setTextPen("#555")
                plot.getAxis(axis).setPen("#999")
            # mAP rises towards the top right: its legend goes bottom right, out of the way
            corner = (-4, -4) if key == "eval" else (-4, 4)
            plot.addLegend(offset=corner, labelTextSize="8pt", labelTextColor="#333")
            empty = pg.TextItem("no data yet", color="#aaa", anchor=(0.5, 0.5))
            plot.addItem(empty, ignoreBounds=True)
            empty.setPos(0.5, 0.5)
            self.empty_labels[key] = empty
            self.plots[key] = plot

    def _per_dataset(self) -> bool:
        return any(n.count("/") == 2 for n in self.series if n.startswith(PER_DATASET_PREFIX))

    def _label(self, name: str) -> str:
        """Legend label; beside per-dataset mAP curves, the plain mAP is their mean."""
        label = metric_info(name)[1]
        if name == "eval/mAP" and self._per_dataset():
            label = "mean"
        return label

    def clear_all(self) -> None:
        for curve in self.curves.values():
            for plot in self.plots.values():
                if curve in plot.items:
                    plot.removeItem(curve)
                    plot.legend.removeItem(curve)
        self.curves.clear()
        self.series.clear()
        self._dirty.clear()
        for key, label in self.empty_labels.items():
            label.setVisible(True)
            self.plots[key].setLogMode(y=False)
            self.plots[key].setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)

    def add(self, name: str, step: float, value: float) -> None:
        if plot_for(name) is None:
            return
        xs, ys = self.series.setdefault(name, ([], []))
        xs.append(step)
        ys.append(value * metric_info(name)[2])
        self._dirty.add(name)

    def set_series(self, name: str, points: list[tuple[float, float]]) -> None:
        """Replace one series (e.g. mean reliability, read from the database)."""
        if plot_for(name) is None:
            return
        self.series[name] = ([p[0] for p in points], [p[1] * metric_info(name)[2] for p in points])
        self._dirty.add(name)

    def load(self, series: dict[str, list[tuple[float, float]]]) -> None:
        self.clear_all()
        for name, points in series.items():
            for step, value in points:
                self.add(name, step, value)
        self.redraw()

    def redraw(self) -> None:
        for name in sorted(self._dirty):
            key = plot_for(name)
            if key is None or (name == "eval/rank1" and self._per_dataset()):
                continue  # with one mAP curve per dataset, the mean Rank-1 would crowd the plot
            xs, ys = self.series[name]
            curve = self.curves.get(name)
            if curve is None:
                plot = self.plots[key]
                colour = PALETTE[sum(1 for n in self.curves if plot_for(n) == key) % len(PALETTE)]
                many = key in ("loss", "lr")
                curve = plot.plot([], [], pen=pg.mkPen(colour, width=1.5), name=self._label(name),
                                  symbol=None if many else "o", symbolSize=5, symbolBrush=colour, symbolPen=None)
                if many:
                    curve.setDownsampling(auto=True, method="peak")
                    curve.setClipToView(True)
                self.curves[name] = curve
                self.empty_labels[key].setVisible(False)
                if self.log_y[key]:
                    plot.setLogMode(y=True)
                plot.enableAutoRange()
                n_in_plot = sum(1 for n in self.curves if plot_for(n) == key)
                plot.legend.setVisible(n_in_plot > 1)
                if n_in_plot > 3:  # many datasets: a see-through legend keeps the curves under it visible
                    plot.legend.setBrush(pg.mkBrush(255, 255, 255, 150))
            curve.setData(xs, ys)
        self._dirty.clear()

    def points(self, key: str) -> int:
        """How many points the plot ``key`` shows (tests)."""
        return sum(len(self.series[n][0]) for n in self.curves if plot_for(n) == key)

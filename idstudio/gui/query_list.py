"""The Retrieval view's query list: one row per query with its AP and first correct match,
and with a second checkpoint B, B's figures and how far the first correct match moved.

``ORDERS`` names the list's sort orders ("Worst first (lowest AP)" ...); ``QueryProxy`` sorts
by ``QueryModel.SortRole`` (skipped queries last, ties in query order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from idstudio.gui.retrieval_jobs import BrowseResult

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

"""The Pairs view's own widgets: the review card, the grid of pairs, and pair-key lookups.

``PairCard`` (both crops large, both source frames with the pair highlighted), grid mode's
``PairGridModel`` and ``PairDelegate`` (two crops a tile, framed by the decision), and
``PairKeys`` (pair keys -> queue positions by binary search over packed keys).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStyle, QStyledItemDelegate, QVBoxLayout, QWidget

from idstudio.gui.imaging import ThumbnailLoader
from idstudio.gui.review_widgets import CropLabel, card_header, show_decision
from idstudio.gui.views.data import FrameCanvas
from idstudio.services import review

DECISION_COLORS = {"accept": QColor(46, 157, 87), "reject": QColor(209, 69, 59), "none": QColor(200, 207, 215)}


# ---- the pair card -----------------------------------------------------------------------------------
class PairCard(QWidget):
    """Both crops large, both source frames with the boxes highlighted, the figures."""

    candidate_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("Card")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        self.title, self.badge, self.figures = card_header(self, layout, "No pairs yet")
        body = QHBoxLayout()
        self.crop_a, self.crop_b = CropLabel(self), CropLabel(self)
        frames = QVBoxLayout()
        self.frame_a, self.frame_b = FrameCanvas(self), FrameCanvas(self)
        for canvas in (self.frame_a, self.frame_b):
            canvas.setMinimumSize(300, 170)
            canvas.message = ""
        self.frame_b.box_clicked.connect(self.candidate_clicked)
        self.caption_a, self.caption_b = QLabel("", self), QLabel("", self)
        for c in (self.caption_a, self.caption_b):
            c.setObjectName("Muted")
        frames.addWidget(self.caption_a)
        frames.addWidget(self.frame_a, 1)
        frames.addWidget(self.caption_b)
        frames.addWidget(self.frame_b, 1)
        body.addWidget(self.crop_a, 2)
        body.addWidget(self.crop_b, 2)
        body.addLayout(frames, 5)
        layout.addLayout(body, 1)
        self.hint = QLabel("", self)
        self.hint.setObjectName("Muted")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

    def set_decision(self, decision: str) -> None:
        show_decision(self.badge, decision)


# ---- grid mode -----------------------------------------------------------------------------------------
class PairGridModel(QAbstractListModel):
    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.queue: review.ReviewQueue | None = None
        loader.loaded.connect(self._loaded)

    def set_queue(self, queue) -> None:
        self.beginResetModel()
        self.queue = queue
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() or self.queue is None else len(self.queue)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.queue is None:
            return None
        row = index.row()
        if role == Qt.ItemDataRole.UserRole:
            return (int(self.queue.a[row]), int(self.queue.b[row]), self.queue.decision[row])
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"pair {self.queue.pair_id[row]} · similarity {self.queue.similarity[row]:.3f} · "
                    f"reliability {self.queue.reliability[row]:.3f} · {self.queue.decision[row]}")
        return None

    def refresh(self) -> None:
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1))

    def _loaded(self, items) -> None:
        self.refresh()


class PairDelegate(QStyledItemDelegate):
    TILE = QSize(112, 118)

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return self.TILE

    def paint(self, painter: QPainter, option, index) -> None:
        a, b, decision = index.data(Qt.ItemDataRole.UserRole)
        rect = option.rect.adjusted(3, 3, -3, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.fillRect(rect, QColor(214, 228, 251) if selected else QColor(255, 255, 255))
        half = (rect.width() - 6) // 2
        for k, iid in enumerate((a, b)):
            image = self.loader.cache.get(iid)
            target = QRect(rect.left() + 2 + k * (half + 2), rect.top() + 2, half, rect.height() - 4)
            if image is None:
                self.loader.request(iid)
                painter.fillRect(target, QColor(232, 236, 241))
            else:
                scaled = image.scaled(target.size(), Qt.AspectRatioMode.KeepAspectRatio)
                painter.drawImage(target.left() + (target.width() - scaled.width()) // 2,
                                  target.top() + (target.height() - scaled.height()) // 2, scaled)
        painter.setPen(QPen(DECISION_COLORS[decision], 4 if decision != "none" else 1))
        painter.drawRoundedRect(rect, 4, 4)
        painter.restore()


class PairKeys:
    """Pair keys (min, max of the two ids) -> queue positions (``get``) or their number
    (``counts=True``), by binary search over packed keys: a round of millions of pairs is two
    numpy arrays, not a dict of millions of tuples built on the GUI thread."""

    def __init__(self, a: np.ndarray, b: np.ndarray, counts: bool = False):
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        packed = np.minimum(a, b) * (1 << 32) + np.maximum(a, b)
        self.order = np.argsort(packed, kind="stable")
        self.sorted = packed[self.order]
        self.counts = counts

    def get(self, key: tuple[int, int], default: Any = None) -> Any:
        packed = min(key) * (1 << 32) + max(key)
        lo, hi = np.searchsorted(self.sorted, packed), np.searchsorted(self.sorted, packed, side="right")
        if self.counts:
            return int(hi - lo) if hi > lo else default
        return self.order[lo:hi].tolist() if hi > lo else default

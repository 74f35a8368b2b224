"""A virtualised grid of instance crops with coloured borders, decoded lazily off the GUI thread.

``ThumbnailLoader`` fetches JPEG crops from the project and decodes/scales them into
``QImage``s on a worker thread (``QImage`` is safe off the GUI thread, ``QPixmap`` is not);
the GUI thread turns them into pixmaps held in a bounded LRU cache. Only the tiles the
view actually paints ask for a thumbnail, and the newest requests win when the user scrolls
faster than the decoder.

``RankedGrid`` is a ``QListView`` in icon mode over ``RankedModel``: one tile per ranked
gallery item, border green (right), red (wrong) or grey (ignored by the protocol), with
its rank and score.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

RIGHT, WRONG, IGNORED, QUERY = 1, 0, -1, 2
STATUS_COLOURS = {RIGHT: QColor("#23a13a"), WRONG: QColor("#d63a2f"), IGNORED: QColor("#9a9a9a"),
                  QUERY: QColor("#2f7ed8")}
STATUS_NAMES = {RIGHT: "right", WRONG: "wrong", IGNORED: "ignored by the protocol", QUERY: "query"}
THUMB_H = 128
THUMB_W = 64


class _Signals(QObject):
    decoded = Signal(object)  # dict[int, QImage]


class _DecodeTask(QRunnable):
    def __init__(self, fetch: Callable[[list[int]], list[bytes]], ids: list[int], size: QSize, signals: _Signals):
        super().__init__()
        self.fetch, self.ids, self.size, self.signals = fetch, ids, size, signals

    def run(self) -> None:  # worker thread
        out: dict[int, QImage] = {}
        try:
            blobs = self.fetch(self.ids)
        except Exception:  # noqa: BLE001 - a missing crop shows as an empty tile, never a crash
            blobs = []
            for i in self.ids:
                try:
                    blobs.extend(self.fetch([i]))
                except Exception:  # noqa: BLE001
                    blobs.append(b"")
        for instance_id, blob in zip(self.ids, blobs):
            image = QImage.fromData(blob) if blob else QImage()
            if not image.isNull():
                image = image.scaled(self.size, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
            out[instance_id] = image
        self.signals.decoded.emit(out)


class ThumbnailLoader(QObject):
    """Thumbnails by instance id: ``get(id)`` returns a pixmap or None (and queues a decode)."""

    ready = Signal()

    def __init__(self, fetch: Callable[[list[int]], list[bytes]] | None = None, size: QSize = QSize(THUMB_W, THUMB_H),
                 capacity: int = 4000, batch: int = 48, parent: QObject | None = None):
        super().__init__(parent)
        self.fetch = fetch
        self.size = size
        self.capacity = capacity
        self.batch = batch
        self.cache: OrderedDict[int, QPixmap] = OrderedDict()
        self.wanted: OrderedDict[int, None] = OrderedDict()  # newest last
        self.in_flight: set[int] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.signals = _Signals(self)
        self.signals.decoded.connect(self._on_decoded, Qt.ConnectionType.QueuedConnection)
        self._kick = QTimer(self, singleShot=True, interval=0)
        self._kick.timeout.connect(self._dispatch)
        self._lock = threading.Lock()

    def set_fetch(self, fetch: Callable[[list[int]], list[bytes]] | None) -> None:
        self.fetch = fetch
        self.cache.clear()
        self.wanted.clear()

    def get(self, instance_id: int) -> QPixmap | None:
        pix = self.cache.get(instance_id)
        if pix is not None:
            self.cache.move_to_end(instance_id)
            return pix
        if self.fetch is not None and instance_id not in self.in_flight:
            self.wanted.pop(instance_id, None)
            self.wanted[instance_id] = None
            while len(self.wanted) > 4 * self.batch:  # latest requests win
                self.wanted.popitem(last=False)
            if not self._kick.isActive():
                self._kick.start()
        return None

    def pending(self) -> int:
        return len(self.wanted) + len(self.in_flight)

    def _dispatch(self) -> None:
        if not self.wanted or self.fetch is None or self.in_flight:
            return
        ids = list(self.wanted)[-self.batch:][::-1]  # newest first
        for i in ids:
            self.wanted.pop(i, None)
        self.in_flight.update(ids)
        self.pool.start(_DecodeTask(self.fetch, ids, self.size, self.signals))

    def _on_decoded(self, images: dict[int, QImage]) -> None:
        for instance_id, image in images.items():
            self.in_flight.discard(instance_id)
            self.cache[instance_id] = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)
        self.in_flight.clear()
        self.ready.emit()
        if self.wanted:
            self._dispatch()


@dataclass
class Tile:
    instance_id: int
    status: int  # RIGHT | WRONG | IGNORED | QUERY
    score: float | None = None
    rank: int | None = None  # 1-based position in the ranked list
    label: str = ""


class RankedModel(QAbstractListModel):
    TileRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.tiles: list[Tile] = []

    def set_tiles(self, tiles: list[Tile]) -> None:
        self.beginResetModel()
        self.tiles = list(tiles)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.tiles)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        tile = self.tiles[index.row()]
        if role == self.TileRole:
            return tile
        if role == Qt.ItemDataRole.ToolTipRole:
            parts = [f"instance {tile.instance_id}", STATUS_NAMES.get(tile.status, "")]
            if tile.rank is not None:
                parts.insert(0, f"rank {tile.rank}")
            if tile.score is not None:
                parts.append(f"cosine {tile.score:.3f}")
            if tile.label:
                parts.append(tile.label)
            return " · ".join(p for p in parts if p)
        if role == Qt.ItemDataRole.DisplayRole:
            return str(tile.rank or "")
        return None


class TileDelegate(QStyledItemDelegate):
    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None):
        super().__init__(parent)
        self.loader = loader
        self.font = QFont()
        self.font.setPointSizeF(7.5)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(THUMB_W + 14, THUMB_H + 26)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        tile: Tile = index.data(RankedModel.TileRole)
        if tile is None:
            return
        painter.save()
        r = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.fillRect(option.rect, QColor("#dbe8fb") if selected else QColor("#ffffff"))
        colour = STATUS_COLOURS.get(tile.status, QColor("#999"))
        border = 4
        image_rect = QRect(r.left() + border, r.top() + border, r.width() - 2 * border, THUMB_H)
        pix = self.loader.get(tile.instance_id)
        painter.fillRect(image_rect, QColor("#eeeeee"))
        if pix is not None and not pix.isNull():
            scaled = pix.size().scaled(image_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(image_rect.center())
            painter.drawPixmap(target, pix)
        pen = QPen(colour, border)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        frame = QRect(r.left() + border // 2, r.top() + border // 2, r.width() - border, THUMB_H + border)
        painter.drawRect(frame)
        painter.setFont(self.font)
        painter.setPen(QColor("#222"))
        text_rect = QRect(r.left(), image_rect.bottom() + border + 1, r.width(), r.bottom() - image_rect.bottom() - border)
        if tile.status == QUERY:
            text = "query"
        else:
            text = f"#{tile.rank}" if tile.rank is not None else ""
            if tile.score is not None:
                text += f"  {tile.score:.3f}"
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
        painter.restore()


class RankedGrid(QListView):
    """The ranked gallery: ``set_tiles(tiles)``; ``tile_activated(Tile)`` on click/Enter."""

    tile_activated = Signal(object)

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None, wrap: bool = True):
        super().__init__(parent)
        self.loader = loader
        self.model_ = RankedModel(self)
        self.setModel(self.model_)
        self.setItemDelegate(TileDelegate(loader, self))
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(wrap)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setSpacing(2)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setMouseTracking(True)
        if not wrap:
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.setFixedHeight(THUMB_H + 26 + 6 + self.horizontalScrollBar().sizeHint().height() + 4)
        loader.ready.connect(self.viewport().update)
        self.clicked.connect(self._activated)
        self.activated.connect(self._activated)

    def set_tiles(self, tiles: list[Tile]) -> None:
        self.model_.set_tiles(tiles)
        self.scrollToTop()

    def tiles(self) -> list[Tile]:
        return self.model_.tiles

    def _activated(self, index: QModelIndex) -> None:
        tile = index.data(RankedModel.TileRole)
        if tile is not None:
            self.tile_activated.emit(tile)

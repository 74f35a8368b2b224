"""The Data view: import, the videos and datasets, a frame viewer and a thumbnail grid.

Nothing slow runs on the GUI thread: imports are jobs (``gui/workers.py``), frames are
decoded by a :class:`FrameDecoder` (latest request wins, bounded cache, sequential decode)
and thumbnails by a :class:`ThumbnailLoader` (lazy, LIFO, bounded cache). The grid is a
``QListView`` over a model holding only a numpy array of ids, so 100,000 instances cost
one array, and only the visible tiles are ever decoded.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelectionModel,
    QModelIndex,
    QPointF,
    QRectF,
    QSettings,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSlider,
    QSplitter,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from idstudio.gui import shortcuts
from idstudio.gui.crop_cache_panel import CropCachePanel
from idstudio.gui.imaging import FrameDecoder, ThumbnailLoader, identity_color
from idstudio.gui.import_dialog import (
    ImportDialog,
    _job_demo,
    _job_market,
    _job_mot,
    _job_tracklets,
    _job_video,
)
from idstudio.gui.sites_panel import SitesBar
from idstudio.gui.wording import counted

SITE_COLUMN = 1  # the sources list's Site column (double-click a video's cell to change it)


# ---- frame viewer ---------------------------------------------------------------------------------
class FrameCanvas(QWidget):
    """Paints one frame scaled to fit, with its boxes coloured by identity."""

    box_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.source_size = QSize(1, 1)
        self.boxes: list[tuple[int, float, float, float, float, int]] = []  # id, x, y, w, h, identity
        self.highlight: set[int] = set()
        self.message = "Open a project and choose a video"
        self.setMinimumSize(320, 200)
        self._scaled: QPixmap | None = None  # the frame scaled to the widget, redone only on a new frame or size
        self._scaled_key: tuple[int, int, int] | None = None

    def set_frame(self, image: QImage | None, source_size: QSize, boxes, highlight=()) -> None:
        if image is None or self.image is None or image.cacheKey() != self.image.cacheKey():
            self._scaled, self._scaled_key = None, None
        self.image, self.source_size, self.boxes, self.highlight = image, source_size, list(boxes), set(highlight)
        self.update()

    def _scaled_pixmap(self, width: int, height: int) -> QPixmap:
        dpr = self.devicePixelRatioF()
        w, h = max(1, round(width * dpr)), max(1, round(height * dpr))
        key = (self.image.cacheKey(), w, h)
        if self._scaled_key != key:
            scaled = self.image.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
            self._scaled = QPixmap.fromImage(scaled)
            self._scaled.setDevicePixelRatio(dpr)
            self._scaled_key = key
        return self._scaled

    def _geometry(self) -> tuple[float, float, float]:
        sw, sh = max(self.source_size.width(), 1), max(self.source_size.height(), 1)
        scale = min(self.width() / sw, self.height() / sh)
        return scale, (self.width() - sw * scale) / 2, (self.height() - sh * scale) / 2

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 30, 38))
        if self.image is None or self.image.isNull():
            p.setPen(QColor(160, 170, 180))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            return
        scale, ox, oy = self._geometry()
        width, height = round(self.source_size.width() * scale), round(self.source_size.height() * scale)
        p.drawPixmap(round(ox), round(oy), self._scaled_pixmap(width, height))
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(p.font())
        font.setPointSizeF(8)
        p.setFont(font)
        for iid, x, y, w, h, identity in self.boxes:
            color = identity_color(identity)
            hot = iid in self.highlight
            p.setPen(QPen(QColor(255, 214, 0) if hot else color, 3.5 if hot else 1.8))
            rect = QRectF(ox + x * scale, oy + y * scale, w * scale, h * scale)
            p.drawRect(rect)
            if identity is not None and identity >= 0:
                label = f"{identity}"
                p.fillRect(QRectF(rect.left(), rect.top() - 14, 8 + 7 * len(label), 14), color)
                p.setPen(QColor(0, 0, 0))
                p.drawText(QPointF(rect.left() + 4, rect.top() - 3), label)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        scale, ox, oy = self._geometry()
        x, y = (event.position().x() - ox) / scale, (event.position().y() - oy) / scale
        for iid, bx, by, bw, bh, _ in self.boxes:
            if bx <= x <= bx + bw and by <= y <= by + bh:
                self.box_clicked.emit(iid)
                return


# ---- thumbnail grid ------------------------------------------------------------------------------
class FrameBoxes:
    """A video's boxes by frame, as the table's columns sorted by frame: ``get(frame)`` slices
    them out when a frame is drawn (no Python object per instance is built when a video with
    millions of instances is opened)."""

    def __init__(self, table):
        order = np.argsort(table.frame, kind="stable")
        self.frame = table.frame[order]
        self.id, self.boxes, self.identity = table.id[order], table.boxes[order], table.identity[order]
        self.tracklet = table.tracklet[order] if getattr(table, "tracklet", None) is not None else None

    def tracklet_of(self, frame: int) -> int | None:
        """The imported tracklet a crop belongs to (``frame`` is a crop's number), or None."""
        if self.tracklet is None:
            return None
        pos = int(np.searchsorted(self.frame, frame))
        if pos >= len(self.frame) or self.frame[pos] != frame or self.tracklet[pos] < 0:
            return None
        return int(self.tracklet[pos])

    def get(self, frame: int, default=None) -> list:
        lo, hi = np.searchsorted(self.frame, frame), np.searchsorted(self.frame, frame, side="right")
        return [(int(i), float(x), float(y), float(w), float(h), int(ident))
                for i, (x, y, w, h), ident in zip(self.id[lo:hi], self.boxes[lo:hi], self.identity[lo:hi])] or (default or [])


class InstanceModel(QAbstractListModel):
    """Instances as one numpy array of ids (plus frame and identity for tooltips)."""

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.ids = np.zeros(0, dtype=np.int64)
        self.frames = np.zeros(0, dtype=np.int64)
        self.identities = np.zeros(0, dtype=np.int64)
        self.videos = np.zeros(0, dtype=np.int64)
        self._row_of: tuple[np.ndarray, np.ndarray] | None = None
        self._placeholder = QImage(loader.size, QImage.Format.Format_RGB888)
        self._placeholder.fill(QColor(232, 236, 241))
        loader.loaded.connect(self._loaded)

    def set_instances(self, ids, videos, frames, identities) -> None:
        self.beginResetModel()
        self.ids, self.videos = np.asarray(ids, dtype=np.int64), np.asarray(videos, dtype=np.int64)
        self.frames, self.identities = np.asarray(frames, dtype=np.int64), np.asarray(identities, dtype=np.int64)
        self._row_of = None
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.ids)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        row = index.row()
        if not index.isValid() or row >= len(self.ids):
            return None
        iid = int(self.ids[row])
        if role == Qt.ItemDataRole.DecorationRole:
            image = self.loader.cache.get(iid)
            if image is None:
                self.loader.request(iid)
                return self._placeholder
            return image
        if role == Qt.ItemDataRole.ToolTipRole:
            ident = int(self.identities[row])
            where = f"video {self.videos[row]}, frame {self.frames[row]}" if self.videos[row] >= 0 else "gallery image"
            return f"instance {iid} · {where} · identity {ident if ident >= 0 else 'unknown'}"
        if role == Qt.ItemDataRole.UserRole:
            return iid
        return None

    def row_of(self, iid: int) -> int | None:
        if self._row_of is None:  # ids sorted once (numpy), then binary search: no dict of a million
            order = np.argsort(self.ids, kind="stable")
            self._row_of = (order, self.ids[order])
        order, ids = self._row_of
        pos = int(np.searchsorted(ids, int(iid)))
        return int(order[pos]) if pos < len(ids) and ids[pos] == int(iid) else None

    def _loaded(self, items: list) -> None:
        rows = [r for r in (self.row_of(iid) for iid, _ in items) if r is not None]
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), [Qt.ItemDataRole.DecorationRole])


def _video_tip(v: dict[str, Any]) -> str:
    if v["kind"] == "tracklets":
        return f"{v['path']}\ntracklets of camera {v['camera']}: one crop per frame, up to {v['width']}x{v['height']}"
    fps = f" @ {v['fps']:.1f} fps" if v.get("fps") else ""
    return f"{v['path']}\ndetector {v['detector']}, stride {v['stride']}, {v['width']}x{v['height']}{fps}"


# ---- the view ----------------------------------------------------------------------------------
class DataView(QWidget):
    title = "Data"

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.video: dict[str, Any] | None = None
        self.frame_numbers: list[int] = []
        self.boxes_by_frame: FrameBoxes | dict[int, list] = {}
        self.highlight: set[int] = set()
        self.current_frame: int | None = None
        self._waiting = False
        self._listed_root: Path | None = None  # the project the sources list shows (its selection is kept)

        self.decoder = FrameDecoder(parent=self)
        self.decoder.frame_ready.connect(self._frame_ready)
        self.decoder.start()
        self.loader = ThumbnailLoader(parent=self)
        self.loader.start()

        outer = QHBoxLayout(self)
        outer.setContentsMargins(10, 10, 10, 10)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        outer.addWidget(split)

        # left: import buttons and the sources list
        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        heading = QLabel("Sources", left)
        heading.setObjectName("Heading")
        lv.addWidget(heading)
        buttons = QHBoxLayout()
        for text, kind in (("Video", "video"), ("MOT", "mot"), ("Market", "market"), ("Tracklets", "tracklets"),
                           ("Demo", "demo")):
            b = QPushButton(f"+ {text}", left)
            b.setToolTip(ImportDialog.TITLES[kind])
            b.clicked.connect(partial(self.start_import, kind))
            buttons.addWidget(b)
        lv.addLayout(buttons)
        self.sources = QTreeWidget(left)
        self.sources.setHeaderLabels(["Name", "Site", "Frames", "Instances", "Status"])
        self.sources.headerItem().setToolTip(SITE_COLUMN, "Where a video was filmed: links join the cameras of one site. "
                                             "Double-click a video's cell, or select videos and press Site….")
        self.sources.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.sources.setRootIsDecorated(True)
        self.sources.setAlternatingRowColors(True)
        from PySide6.QtWidgets import QHeaderView

        header = self.sources.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.sources.itemSelectionChanged.connect(self._source_selected)
        self.sources.itemDoubleClicked.connect(self._source_double_clicked)
        lv.addWidget(self.sources, 1)
        self.sites = SitesBar(session, self.selected_video_ids, left)
        lv.addWidget(self.sites)
        self.summary = QLabel("", left)
        self.summary.setObjectName("Muted")
        self.summary.setWordWrap(True)
        lv.addWidget(self.summary)
        self.crop_cache = CropCachePanel(session, left)
        lv.addWidget(self.crop_cache)

        # right: frame viewer above, thumbnail grid below
        right = QSplitter(Qt.Orientation.Vertical, split)
        viewer = QWidget(right)
        vv = QVBoxLayout(viewer)
        vv.setContentsMargins(6, 0, 0, 0)
        self.frame_title = QLabel("No video selected", viewer)
        self.frame_title.setObjectName("Heading")
        vv.addWidget(self.frame_title)
        self.canvas = FrameCanvas(viewer)
        self.canvas.box_clicked.connect(self._box_clicked)
        vv.addWidget(self.canvas, 1)
        controls = QHBoxLayout()
        from idstudio.gui.main_window import icon

        self.play_button = QToolButton(viewer)
        self.play_button.setIcon(icon("play"))
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause (K)")
        self.play_button.toggled.connect(self._toggle_play)
        self.scrubber = QSlider(Qt.Orientation.Horizontal, viewer)
        self.scrubber.setEnabled(False)
        self.scrubber.valueChanged.connect(self._scrubbed)
        self.frame_label = QLabel("—", viewer)
        self.frame_label.setMinimumWidth(150)
        controls.addWidget(self.play_button)
        controls.addWidget(self.scrubber, 1)
        controls.addWidget(self.frame_label)
        vv.addLayout(controls)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_tick)

        grid_box = QWidget(right)
        gv = QVBoxLayout(grid_box)
        gv.setContentsMargins(6, 6, 0, 0)
        self.grid_title = QLabel("Instances", grid_box)
        self.grid_title.setObjectName("Heading")
        gv.addWidget(self.grid_title)
        self.grid = QListView(grid_box)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(2000)
        self.grid.setIconSize(self.loader.size)
        self.grid.setGridSize(QSize(self.loader.size.width() + 8, self.loader.size.height() + 8))
        self.grid.setSpacing(2)
        self.grid.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.model = InstanceModel(self.loader, self)
        self.grid.setModel(self.model)
        self.grid.doubleClicked.connect(self._grid_activated)
        gv.addWidget(self.grid, 1)

        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([520, 880])  # wide enough for the source names next to their site and figures
        right.setSizes([520, 300])

        self._actions = []
        self._bind_keys()
        shortcuts.notifier.changed.connect(self._bind_keys)
        session.project_opened.connect(lambda _root: self.reload())
        session.project_closed.connect(self.reload)
        session.data_changed.connect(self._data_changed)
        self.reload()

    # ---- keys ------------------------------------------------------------------------------------
    def _bind_keys(self) -> None:
        self._actions = shortcuts.bind(self, {"data.play": lambda: self.play_button.toggle(),
                                              "data.next": lambda: self.step(1), "data.prev": lambda: self.step(-1)},
                                       self._actions)

    # ---- data ------------------------------------------------------------------------------------
    def _data_changed(self, area: str) -> None:
        if area in ("videos", "datasets"):
            self.reload()

    def reload(self) -> None:
        project = self.session.project
        self.loader.set_root(self.session.root)
        keep = set(self.selected_video_ids()) if self._listed_root == self.session.root else set()
        self._listed_root = self.session.root
        self.sources.clear()
        self.crop_cache.refresh()
        self.sites.refresh()
        if project is None:
            self.summary.setText("No project open.")
            self.model.set_instances([], [], [], [])
            return
        videos_item = QTreeWidgetItem(["Videos"])
        datasets_item = QTreeWidgetItem(["Labelled datasets"])
        for item in (videos_item, datasets_item):
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
        self.sources.addTopLevelItems([videos_item, datasets_item])
        for item in (videos_item, datasets_item):
            item.setFirstColumnSpanned(True)  # the group names read across the columns
        videos = project.videos()
        tracklet_sets = any(v["kind"] == "tracklets" for v in videos)
        films = any(v["kind"] != "tracklets" for v in videos)
        # the group says what it holds: a tracklet set's cameras are no videos (the summary counts them apart)
        videos_item.setText(0, "Videos and tracklet cameras" if films and tracklet_sets else
                            "Tracklet cameras" if tracklet_sets else "Videos")
        for v in videos:
            name = v["name"] if str(v["name"]).endswith(str(v["camera"])) else f"{v['name']}  ({v['camera']})"
            child = QTreeWidgetItem([name, v.get("site") or "—", f"{v['n_frames'] or 0:,}", f"{v['n_instances']:,}",
                                     v["status"]])
            child.setData(0, Qt.ItemDataRole.UserRole, ("video", v["id"]))
            child.setToolTip(0, _video_tip(v))
            child.setToolTip(SITE_COLUMN, f"site {v['site']!r}: double-click to change" if v.get("site") else
                             "at no site (links skip it): double-click to put it at one")
            videos_item.addChild(child)
        datasets = project.datasets()
        for d in datasets:
            n = (d["n_query"] or 0) + (d["n_gallery"] or 0) + (d["n_train"] or 0)
            child = QTreeWidgetItem([d["name"], "", "", f"{n:,}", f"{d['n_query'] or 0} q / {d['n_gallery'] or 0} g"])
            child.setData(0, Qt.ItemDataRole.UserRole, ("dataset", d["id"]))
            child.setToolTip(0, d["name"])
            datasets_item.addChild(child)
        self.sources.expandAll()
        n_inst = sum(v["n_instances"] for v in videos)
        n_cams = sum(v["kind"] == "tracklets" for v in videos)
        cams = f"{counted(n_cams, 'tracklet camera')} · " if n_cams else ""
        self.summary.setText(f"{counted(len(videos) - n_cams, 'video')} · {cams}"
                             f"{counted(sum(v['n_frames'] or 0 for v in videos), 'frame')} · "
                             f"{counted(n_inst, 'instance')} · {counted(len(datasets), 'labelled dataset')}")
        ids = [v["id"] for v in videos]
        shown = self.video["id"] if self.video is not None and self.video["id"] in ids else (ids[0] if ids else None)
        self.sources.blockSignals(True)  # the selection comes back as it was: one set_video below, not one per row
        for i, vid in enumerate(ids):
            videos_item.child(i).setSelected(vid in keep or vid == shown)
        if shown is not None:
            self.sources.setCurrentItem(videos_item.child(ids.index(shown)), 0, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.sources.blockSignals(False)
        if shown is not None:
            same = self.video is not None and self.video["id"] == shown
            self.set_video(shown, self.current_frame if same else None)
        if not videos and not datasets:
            self.canvas.message = ("This project is empty: import a video, a MOT sequence, a folder of tracklets or the "
                                   "demo world (buttons on the left).")
            self.canvas.update()

    def selected_video_ids(self) -> list[int]:
        data = [item.data(0, Qt.ItemDataRole.UserRole) for item in self.sources.selectedItems()]
        return [d[1] for d in data if d and d[0] == "video"]

    def _source_double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if column == SITE_COLUMN and data and data[0] == "video":
            self.sites.edit([data[1]])

    def _source_selected(self) -> None:
        items = self.sources.selectedItems()
        if not items:
            return
        current = self.sources.currentItem()
        data = (current if current in items else items[0]).data(0, Qt.ItemDataRole.UserRole)
        if not data:
            return
        kind, ident = data
        if kind == "video":
            self.set_video(ident)
        else:
            self.set_dataset(ident)

    def set_video(self, video_id: int, frame: int | None = None) -> None:
        project = self.session.project
        video = project.video(video_id)
        video["frame_paths"] = project.frame_paths(video_id)
        self.video = video
        self.frame_numbers = sorted(video["frame_paths"])
        table = project.instance_table(video_id=video_id)
        self.boxes_by_frame = FrameBoxes(table)
        self.model.set_instances(table.id, table.video_id, table.frame, table.identity)
        site = f" · site {video['site']!r}" if video.get("site") else ""
        if video["kind"] == "tracklets":
            n_tracklets = len(np.unique(table.tracklet[table.tracklet >= 0]))
            self.grid_title.setText(f"Crops of {video['name']} ({len(table):,} in {n_tracklets:,} tracklets)")
            self.frame_title.setText(f"{video['name']} · tracklets of camera {video['camera']}{site} · "
                                     f"{len(self.frame_numbers):,} crops")
        else:
            self.grid_title.setText(f"Instances of {video['name']} ({len(table):,})")
            self.frame_title.setText(f"{video['name']} · camera {video['camera']}{site} · "
                                     f"{len(self.frame_numbers):,} frames")
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(0, max(len(self.frame_numbers) - 1, 0))
        self.scrubber.setEnabled(bool(self.frame_numbers))
        self.scrubber.blockSignals(False)
        self.current_frame = None
        if self.frame_numbers:
            self.go_to_frame(frame if frame is not None else self.frame_numbers[0])
        else:
            self.canvas.message = "This video has no frames yet."
            self.canvas.set_frame(None, QSize(1, 1), [])

    def set_dataset(self, dataset_id: int) -> None:
        project = self.session.project
        table = project.instance_table(dataset_id=dataset_id)
        self.model.set_instances(table.id, table.video_id, table.frame, table.identity)
        name = project.scalar("SELECT name FROM datasets WHERE id = ?", (dataset_id,))
        self.grid_title.setText(f"Images of {name} ({len(table):,})")

    def go_to_frame(self, frame: int) -> None:
        if not self.frame_numbers or self.video is None:
            return
        index = int(np.searchsorted(self.frame_numbers, frame))
        index = min(max(index, 0), len(self.frame_numbers) - 1)
        self.scrubber.blockSignals(True)
        self.scrubber.setValue(index)
        self.scrubber.blockSignals(False)
        self._request(self.frame_numbers[index])

    def step(self, delta: int) -> None:
        if self.frame_numbers:
            self.scrubber.setValue(min(max(self.scrubber.value() + delta, 0), len(self.frame_numbers) - 1))

    def _scrubbed(self, index: int) -> None:
        if 0 <= index < len(self.frame_numbers):
            self._request(self.frame_numbers[index])

    def _request(self, frame: int) -> None:
        self.current_frame = frame
        where = f"{self.scrubber.value() + 1}/{len(self.frame_numbers)}"
        tracklet = self.boxes_by_frame.tracklet_of(frame) if isinstance(self.boxes_by_frame, FrameBoxes) else None
        self.frame_label.setText(f"crop {frame} · tracklet {tracklet}  ({where})" if tracklet is not None
                                 else f"frame {frame}  ({where})")
        self._waiting = True
        self.decoder.request(self.video, frame)

    def _frame_ready(self, video_id: int, frame: int, image: QImage) -> None:
        if self.video is None or video_id != self.video["id"] or frame != self.current_frame:
            return  # a stale answer: the latest request wins
        self._waiting = False
        if self.video["kind"] == "tracklets":  # each "frame" is one crop image, at its own size
            size = QSize(image.width(), image.height())
        else:
            size = QSize(int(self.video["width"] or image.width()), int(self.video["height"] or image.height()))
        self.canvas.set_frame(image, size, self.boxes_by_frame.get(frame, []), self.highlight)

    def _toggle_play(self, playing: bool) -> None:
        from idstudio.gui.main_window import icon

        self.play_button.setIcon(icon("pause" if playing else "play"))
        if playing and self.video is not None:
            fps = float(self.video.get("fps") or 25.0) / max(int(self.video.get("stride") or 1), 1)
            self.play_timer.start(int(1000 / min(max(fps, 1.0), 30.0)))
        else:
            self.play_timer.stop()

    def _play_tick(self) -> None:
        if self._waiting:
            return  # never queue frames faster than they decode
        if self.scrubber.value() >= len(self.frame_numbers) - 1:
            self.play_button.setChecked(False)
            return
        self.step(1)

    def _box_clicked(self, instance_id: int) -> None:
        row = self.model.row_of(instance_id)
        if row is not None:
            self.grid.setCurrentIndex(self.model.index(row))
            self.grid.scrollTo(self.model.index(row))
        self.highlight = {instance_id}
        self.canvas.highlight = self.highlight
        self.canvas.update()

    def _grid_activated(self, index: QModelIndex) -> None:
        row = index.row()
        vid = int(self.model.videos[row])
        if vid >= 0:
            self.show_frame(vid, int(self.model.frames[row]), int(self.model.ids[row]))

    # ---- contract: the Retrieval view opens a source frame here ----------------------------------
    def show_frame(self, video_id: int, frame: int, instance_id: int | None = None) -> None:
        self.highlight = {int(instance_id)} if instance_id is not None else set()
        if self.video is None or self.video["id"] != video_id:
            self.set_video(video_id, frame)
        else:
            self.go_to_frame(frame)
        if instance_id is not None:
            row = self.model.row_of(instance_id)
            if row is not None:
                self.grid.setCurrentIndex(self.model.index(row))
                self.grid.scrollTo(self.model.index(row))

    # ---- import --------------------------------------------------------------------------------------
    def start_import(self, kind: str, params: dict[str, Any] | None = None):
        """Show the import dialog (unless ``params`` are given) and run the import as a job."""
        if self.session.project is None:
            folder = QFileDialog.getExistingDirectory(self, "No project is open: choose a folder for a new project")
            if not folder:
                return None
            self.window().open_project(folder, create=True) if hasattr(self.window(), "open_project") else self.session.open(folder, create=True)
            if self.session.project is None:
                return None
        if params is None:
            dialog = ImportDialog(kind, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            params = dialog.params()
        root = self.session.root
        if kind == "video":
            args = (_job_video, root, params["path"], params.get("detector", "motion"), params.get("det_file"),
                    int(params.get("stride", 1)), params.get("camera"))
            title = f"Import {Path(params['path']).name}"
        elif kind == "mot":
            args = (_job_mot, root, params["path"], params.get("boxes", "gt"))
            title = f"Import {Path(params['path']).name}"
        elif kind == "market":
            args = (_job_market, root, params["path"], params.get("name"))
            title = f"Import {Path(params['path']).name}"
        elif kind == "tracklets":
            args = (_job_tracklets, root, params["path"], params.get("site"))
            title = f"Import tracklets {Path(params['path']).name}"
        else:
            args = (_job_demo, root, bool(params.get("small", True)))
            title = "Import demo world"
        return self.session.start_job(title, *args, changes=("videos", "datasets"))

    def save_settings(self) -> None:
        QSettings().setValue("data/last_video", self.video["id"] if self.video else None)

    def shutdown(self) -> None:
        self.play_timer.stop()
        self.decoder.stop()
        self.loader.stop()

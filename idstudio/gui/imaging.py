"""Off-GUI-thread image loading shared by the views.

- :class:`ThumbnailLoader`: crops (JPEG blobs) -> scaled QImages, LIFO (what was asked for
  last, i.e. what is on screen now, loads first), bounded queue, bounded LRU cache.
- :class:`FrameDecoder`: video frames in a worker thread, latest request wins, bounded LRU
  cache. Video files are decoded sequentially (grab forward from the current position; a
  backward jump reopens and reads forward) -- container seeking is never trusted. Frame
  folders (and MOT ``img1/``) read the image file listed in the ``frames`` table.

Both open their own ``Project`` in their thread; QImage (not QPixmap) crosses threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QThread, Signal
from PySide6.QtGui import QColor, QImage


def identity_color(identity: int | None) -> QColor:
    """A stable, distinct colour per identity; grey where unknown."""
    if identity is None or identity < 0:
        return QColor(150, 160, 170)
    hue = (int(identity) * 0.618033988749895) % 1.0
    return QColor.fromHsvF(hue, 0.75, 0.95)


def bgr_to_qimage(image: np.ndarray) -> QImage:
    h, w = image.shape[:2]
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class LRU:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.data: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
            return None

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.capacity:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


class _Worker(QThread):
    """A thread that sleeps on a condition until there is work."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.cond = threading.Condition()
        self.quit_flag = False

    def stop(self) -> None:
        with self.cond:
            self.quit_flag = True
            self.cond.notify_all()
        self.wait(5000)


class ThumbnailLoader(_Worker):
    loaded = Signal(list)  # [(instance_id, QImage)]

    def __init__(self, size: QSize = QSize(64, 128), cache: int = 4000, max_pending: int = 600,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self.cache = LRU(cache)
        self.max_pending = max_pending
        self.pending: OrderedDict[int, None] = OrderedDict()  # newest last
        self.root: Path | None = None
        self._project = None
        self._project_root: Path | None = None

    def set_root(self, root: Path | None) -> None:
        """Serve another project's crops. The same project again keeps what is asked and cached:
        views share the loader, and the one that opens second must not drop the first one's requests."""
        with self.cond:
            if root == self.root:
                return
            self.root = root
            self.pending.clear()
        self.cache.clear()

    def request(self, instance_id: int) -> None:
        with self.cond:
            self.pending.pop(instance_id, None)
            self.pending[instance_id] = None
            while len(self.pending) > self.max_pending:
                self.pending.popitem(last=False)
            self.cond.notify()

    def run(self) -> None:
        from idstudio.core.store import Project

        while True:
            with self.cond:
                while not self.pending and not self.quit_flag:
                    self.cond.wait()
                if self.quit_flag:
                    break
                batch = []
                while self.pending and len(batch) < 48:
                    batch.append(self.pending.popitem(last=True)[0])  # newest first
                root = self.root
            if root is None:
                continue
            try:
                if self._project_root != root:
                    if self._project is not None:
                        self._project.close()
                    self._project, self._project_root = Project.open(root), root
                found = dict(self._project.crops_conn.execute(
                    f"SELECT instance_id, jpeg FROM crops WHERE instance_id IN ({','.join('?' * len(batch))})", batch
                ).fetchall())
            except Exception:  # noqa: BLE001 - a missing crop shows as an empty tile, never a crash
                continue
            out = []
            for iid in batch:
                data = found.get(iid)
                image = QImage()
                if data is not None:
                    image.loadFromData(data, "JPEG")
                if image.isNull():
                    image = QImage(self.size, QImage.Format.Format_RGB888)
                    image.fill(QColor(220, 225, 230))
                else:
                    image = image.scaled(self.size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
                self.cache.put(iid, image)
                out.append((iid, image))
            self.loaded.emit(out)
        if self._project is not None:
            self._project.close()


class FrameDecoder(_Worker):
    """Decodes one video's frames; emits ``frame_ready(video_id, frame, QImage)``."""

    frame_ready = Signal(int, int, QImage)
    failed = Signal(int, int, str)

    def __init__(self, cache: int = 48, max_width: int = 1280, parent: QObject | None = None):
        super().__init__(parent)
        self.cache = LRU(cache)
        self.max_width = max_width
        self.request_: tuple[int, int, dict] | None = None  # (video_id, frame, video row + paths)
        self._capture = None
        self._capture_video: int | None = None
        self._position = 0  # frames read from the capture so far (1-based number of the last one)

    def request(self, video: dict, frame: int) -> None:
        """Ask for a frame; a newer request replaces one not yet started (latest wins)."""
        key = (int(video["id"]), int(frame))
        cached = self.cache.get(key)
        if cached is not None:
            self.frame_ready.emit(key[0], key[1], cached)
            return
        with self.cond:
            self.request_ = (key[0], key[1], video)
            self.cond.notify()

    def _newer(self, current: tuple[int, int]) -> bool:
        with self.cond:
            return self.request_ is not None and (self.request_[0], self.request_[1]) != current

    def run(self) -> None:
        while True:
            with self.cond:
                while self.request_ is None and not self.quit_flag:
                    self.cond.wait()
                if self.quit_flag:
                    break
                video_id, frame, video = self.request_
                self.request_ = None
            try:
                image = self._decode(video_id, frame, video)
            except Exception as exc:  # noqa: BLE001
                self.failed.emit(video_id, frame, f"Cannot decode frame {frame}: {exc}")
                continue
            if image is None:
                continue  # superseded by a newer request, or past the end
            self.cache.put((video_id, frame), image)
            self.frame_ready.emit(video_id, frame, image)
        if self._capture is not None:
            self._capture.release()

    def _scaled(self, image: np.ndarray) -> QImage:
        q = bgr_to_qimage(image)
        if q.width() > self.max_width:
            q = q.scaledToWidth(self.max_width, Qt.TransformationMode.SmoothTransformation)
        return q

    def _decode(self, video_id: int, frame: int, video: dict) -> QImage | None:
        import cv2

        paths = video.get("frame_paths") or {}
        path = paths.get(frame)
        if path:
            full = Path(path)
            if not full.is_absolute():
                full = Path(video["path"]) / full
            data = np.fromfile(str(full), dtype=np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"{full} is not a readable image")
            return self._scaled(image)
        # a video file: sequential decode from the current position
        if self._capture is None or self._capture_video != video_id or frame <= self._position:
            if self._capture is not None:
                self._capture.release()
            self._capture = cv2.VideoCapture(str(video["path"]))
            self._capture_video = video_id
            self._position = 0
        while self._position < frame - 1:
            if not self._capture.grab():
                return None
            self._position += 1
            if self._position % 16 == 0 and self._newer((video_id, frame)):
                return None  # a newer request wins; keep the position for it
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        self._position += 1
        return self._scaled(image)

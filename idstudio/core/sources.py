"""Frame sources: video files and folders of frame images (MOT ``img1/`` included).

Videos are decoded sequentially: seeking is unreliable in many containers, and the frame
count comes from decoding, never from the container header (``caviar/hallway.mpg`` claims
5 frames and holds 485). Frames are numbered from 1, as in MOT files.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from idstudio.core.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Frame:
    number: int  # 1-based
    image: np.ndarray  # BGR uint8
    path: str | None  # the image file for folder sources


def read_image(path: Path) -> np.ndarray | None:
    """cv2.imread that also works with non-ASCII paths on every platform."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def file_fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: the same file imported twice is caught
    without reading gigabytes."""
    size = path.stat().st_size
    digest = hashlib.sha1(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if size > 2 << 20:
            handle.seek(-(1 << 20), 2)
            digest.update(handle.read(1 << 20))
    return "file:" + digest.hexdigest()


def folder_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha1()
    for f in files:
        digest.update(f"{f.name}:{f.stat().st_size};".encode())
    return "folder:" + digest.hexdigest()


class VideoSource:
    kind = "video"

    def __init__(self, path: Path, stride: int = 1):
        self.path = Path(path)
        self.stride = max(1, int(stride))
        if not self.path.is_file():
            raise UserError(f"Video {self.path} does not exist or is not a file.")
        capture = cv2.VideoCapture(str(self.path))
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok or first is None:
            capture.release()
            if self.path.stat().st_size == 0:
                raise UserError(f"Video {self.path.name} is empty (0 bytes); nothing to import.")
            raise UserError(
                f"Cannot decode {self.path.name}: it is not a video OpenCV's FFmpeg can read, or it has no frames "
                f"(`idstudio doctor` shows whether FFmpeg support is present)."
            )
        self.height, self.width = first.shape[:2]
        # Never trusted as the count, only to notice a file that ends before it says it does.
        self.header_frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.decoded_frames: int | None = None  # set when a pass reaches the end of the file
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 25.0
        capture.release()

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)

    def ends_early(self) -> tuple[int, int] | None:
        """(frames decoded, frames the header announces) when the last full pass stopped
        clearly before the header's count — a truncated file; None otherwise. A header that
        claims fewer frames than there are (caviar/hallway.mpg: 5 of 485) is no problem."""
        if self.decoded_frames is None or self.header_frames <= 0:
            return None
        missing = self.header_frames - self.decoded_frames
        return (self.decoded_frames, self.header_frames) if missing > max(1, self.header_frames // 100) else None

    def frames(self, start_after: int = 0) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path))
        number = 0
        try:
            while True:
                number += 1
                wanted = number > start_after and (number - 1) % self.stride == 0
                if wanted:
                    ok, image = capture.read()
                    if not ok or image is None:
                        self.decoded_frames = number - 1
                        return
                    yield Frame(number, image, None)
                elif not capture.grab():  # skip without converting the frame
                    self.decoded_frames = number - 1
                    return
        finally:
            capture.release()


class FolderSource:
    """A folder of frame images in name order; frame numbers from the digits in the names
    when every name has them (MOT's 000001.jpg), else 1, 2, 3, ..."""

    kind = "frames"

    def __init__(self, folder: Path, stride: int = 1, fps: float = 25.0):
        self.path = Path(folder)
        self.stride = max(1, int(stride))
        self.fps = fps
        if not self.path.is_dir():
            raise UserError(f"{self.path} is not a folder of frame images.")
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise UserError(f"{self.path} holds no frame images ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
        numbers = [re.findall(r"\d+", p.stem) for p in files]
        if all(numbers) and len({int(n[-1]) for n in numbers}) == len(files):
            pairs = sorted((int(n[-1]), p) for n, p in zip(numbers, files))
        else:
            pairs = list(enumerate(files, start=1))
        self.files = [(n, p) for i, (n, p) in enumerate(pairs) if i % self.stride == 0]
        first = read_image(self.files[0][1])
        if first is None:
            raise UserError(f"Cannot read the first frame image {self.files[0][1].name}; it is not an image.")
        self.height, self.width = first.shape[:2]

    def fingerprint(self) -> str:
        return folder_fingerprint([p for _, p in self.files])

    def frames(self, start_after: int = 0) -> Iterator[Frame]:
        for number, path in self.files:
            if number <= start_after:
                continue
            image = read_image(path)
            if image is None:
                raise UserError(f"Frame image {path.name} cannot be read; it is corrupt or not an image.")
            yield Frame(number, image, str(path))


def open_source(path: Path, stride: int = 1) -> VideoSource | FolderSource:
    path = Path(path)
    if path.is_dir():
        return FolderSource(path, stride)
    return VideoSource(path, stride)


def prefetch(iterator: Iterator, size: int = 8) -> Iterator:
    """Run ``iterator`` in a background thread, ``size`` items ahead. OpenCV releases the GIL
    while decoding, so decoding overlaps the consumer's work on another core."""
    items: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                if stop.is_set():
                    return
                items.put(item)
            items.put(done)
        except BaseException as exc:  # handed to the consumer, never lost
            items.put(exc)

    thread = threading.Thread(target=produce, daemon=True, name="prefetch")
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def decode_frame(video_path: Path, frame_number: int) -> np.ndarray | None:
    """One frame of a video by sequential decoding (reliable where seeking is not)."""
    for frame in VideoSource(video_path).frames(start_after=frame_number - 1):
        return frame.image
    return None

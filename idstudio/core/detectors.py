"""Person detectors behind one small interface: ``detect(image, frame_number) -> (k, 5)``
rows of ``x, y, w, h, score``.

- ``file``: detections read from a MOT ``det.txt`` (MOT17's public detections, the
  synthetic world's noisy detections), with a score threshold.
- ``motion``: background-subtraction blobs (MOG2) with size and aspect filters. The
  default for static cameras: it finds small and partly occluded walkers that HOG misses,
  costs a fraction of HOG's time, and needs no model file.
- ``hog``: OpenCV's HOG people detector, with upscaling for small people; for moving
  cameras, where background subtraction cannot work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from idstudio.core.boxes import nms
from idstudio.core.errors import UserError
from idstudio.core.mot import read_mot_file

DETECTORS = ("motion", "hog", "file")
DEFAULT_DETECTOR = "motion"


class Detector(Protocol):
    """A detector with state across frames (motion) also has ``warm(image, frame_number)``,
    which advances that state as ``detect`` would, without detecting."""

    name: str
    source: str  # the instances' `source` column

    def detect(self, image: np.ndarray, frame_number: int) -> np.ndarray: ...


class FileDetector:
    name = "file"
    source = "det"

    def __init__(self, det_file: Path, min_score: float | None = None):
        self.rows = read_mot_file(det_file, "det", min_score=min_score)
        if len(self.rows) == 0:
            raise UserError(f"{Path(det_file).name} holds no detections (above the score threshold); nothing to import.")
        table = np.concatenate([self.rows.boxes, self.rows.score[:, None]], axis=1)
        self.by_frame = {frame: table[rows] for frame, rows in self.rows.by_frame().items()}
        self.empty = np.zeros((0, 5), dtype=np.float32)

    def detect(self, image: np.ndarray, frame_number: int) -> np.ndarray:
        return self.by_frame.get(frame_number, self.empty)


class MotionDetector:
    name = "motion"
    source = "motion"

    def __init__(self, min_height: int = 24, max_height_share: float = 0.9, min_aspect: float = 1.1,
                 max_aspect: float = 5.0, history: int = 200, var_threshold: float = 24.0, warmup: int = 10):
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold, detectShadows=True)
        self.min_height, self.max_height_share = min_height, max_height_share
        self.min_aspect, self.max_aspect = min_aspect, max_aspect
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 9))
        self.warmup = warmup
        self.seen = 0

    def warm(self, image: np.ndarray, frame_number: int) -> None:
        """Feed a frame to the background model without detecting: a resumed import replays
        the frames before its resume point, so its boxes equal an uninterrupted import's."""
        self.subtractor.apply(image)
        self.seen += 1

    def detect(self, image: np.ndarray, frame_number: int) -> np.ndarray:
        mask = self.subtractor.apply(image)
        self.seen += 1
        if self.seen <= self.warmup:  # the background model is still forming
            return np.zeros((0, 5), dtype=np.float32)
        mask = (mask == 255).astype(np.uint8)  # 127 marks shadows
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self.close_kernel)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        height = image.shape[0]
        boxes = []
        for x, y, w, h, area in stats[1:count]:
            aspect = h / max(w, 1)
            if h < self.min_height or h > self.max_height_share * height:
                continue
            if not (self.min_aspect <= aspect <= self.max_aspect):
                continue
            fill = area / float(w * h)
            boxes.append((x, y, w, h, min(1.0, fill * 1.5)))
        return np.array(boxes, dtype=np.float32).reshape(-1, 5)


class HogDetector:
    name = "hog"
    source = "hog"

    def __init__(self, min_height: int = 96, hit_threshold: float = 0.0, nms_iou: float = 0.4):
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_height = min_height
        self.hit_threshold = hit_threshold
        self.nms_iou = nms_iou

    def detect(self, image: np.ndarray, frame_number: int) -> np.ndarray:
        # HOG's window is 128 px tall: upscale small frames so small people reach it.
        scale = max(1.0, min(3.0, 480.0 / image.shape[0]))
        work = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale > 1 else image
        rects, weights = self.hog.detectMultiScale(work, hitThreshold=self.hit_threshold, winStride=(8, 8),
                                                   padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.asarray(rects, dtype=np.float32) / scale
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float32).reshape(-1)))
        keep = nms(boxes, scores, self.nms_iou)
        return np.concatenate([boxes[keep], scores[keep, None]], axis=1)


def make_detector(name: str, det_file: Path | None = None, min_score: float | None = None) -> Detector:
    if det_file is not None:
        return FileDetector(det_file, min_score)
    if name == "motion":
        return MotionDetector()
    if name == "hog":
        return HogDetector()
    if name == "file":
        raise UserError("The 'file' detector needs a detections file: pass --det DET_TXT.")
    raise UserError(f"Unknown detector {name!r}; choose one of {', '.join(DETECTORS)}.")

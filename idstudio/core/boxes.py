"""Box arithmetic on (x, y, w, h) arrays, vectorised."""

from __future__ import annotations

import numpy as np


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_size: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Clip xywh boxes to the frame. Returns (clipped boxes, keep mask); boxes left smaller
    than ``min_size`` pixels on a side (entirely outside the frame) are dropped."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    clipped = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    keep = (clipped[:, 2] >= min_size) & (clipped[:, 3] >= min_size)
    return clipped, keep


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (n, 4) and of ``b`` (m, 4), xywh."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-np.asarray(scores))
    ious = iou_matrix(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ious[i] > threshold
    return np.array(keep, dtype=np.int64)


def assign_identities(dets: np.ndarray, gt_boxes: np.ndarray, gt_ids: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """Each detection takes the identity of the ground-truth box it overlaps best, when that
    IoU is at least ``min_iou``; else -1 (unknown)."""
    ids = np.full(len(dets), -1, dtype=np.int64)
    if len(dets) == 0 or len(gt_boxes) == 0:
        return ids
    ious = iou_matrix(dets, gt_boxes)
    best = ious.argmax(axis=1)
    ok = ious[np.arange(len(dets)), best] >= min_iou
    ids[ok] = np.asarray(gt_ids)[best[ok]]
    return ids

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


def assign_identities_by_frame(det_frames: np.ndarray, dets: np.ndarray, gt_frames: np.ndarray, gt_boxes: np.ndarray,
                               gt_ids: np.ndarray, min_iou: float = 0.5, chunk: int = 1 << 20) -> np.ndarray:
    """``assign_identities`` for the detections of every frame at once (a whole det file in
    a few numpy calls, not a Python loop over frames): each detection takes the identity of
    the gt box of its own frame it overlaps best (the first in file order on a tie, as
    argmax), when that IoU is at least ``min_iou``; else -1. Pairs go ``chunk`` at a time."""
    det_frames, gt_frames = np.asarray(det_frames), np.asarray(gt_frames)
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    ids = np.full(len(dets), -1, dtype=np.int64)
    if len(dets) == 0 or len(gt_boxes) == 0:
        return ids
    gt_order = np.argsort(gt_frames, kind="stable")
    sorted_frames = gt_frames[gt_order]
    first = np.searchsorted(sorted_frames, det_frames, "left")
    counts = np.searchsorted(sorted_frames, det_frames, "right") - first
    ends = np.cumsum(counts)
    lo = 0
    while lo < len(dets):  # a run of detections with about ``chunk`` candidate pairs
        hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - counts[lo] + chunk, "right")))
        hi = min(hi, len(dets))
        n = counts[lo:hi]
        det_of_pair = np.repeat(np.arange(lo, hi), n)
        if len(det_of_pair):
            offsets = np.arange(len(det_of_pair)) - np.repeat(np.cumsum(n) - n, n)
            gt_of_pair = gt_order[np.repeat(first[lo:hi], n) + offsets]
            a, b = dets[det_of_pair], gt_boxes[gt_of_pair]
            # The same float32 arithmetic as iou_matrix, one pair per element.
            iw = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
            ih = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
            inter = iw * ih
            union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
            with_gt = np.flatnonzero(n)
            best = np.maximum.reduceat(iou, (np.cumsum(n) - n)[with_gt])
            winners = np.flatnonzero(iou == np.repeat(best, n[with_gt]))
            won, first_win = np.unique(det_of_pair[winners], return_index=True)
            winner = winners[first_win]
            ok = iou[winner] >= min_iou
            ids[won[ok]] = np.asarray(gt_ids)[gt_of_pair[winner[ok]]]
        lo = hi
    return ids

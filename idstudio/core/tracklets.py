"""Tracklet-level positives and certain negatives (the sampler that fits real video).

Adjacent mined pairs (gaps of 1-8 frames) are near-duplicates: on real footage they teach
nothing, and most in-batch "negatives" drawn from other frames of the same video are the
same person. Here a round's pseudo-tracklets (the connected components of its pairs) are
the unit instead:

* **positives**: an anchor and another member of its tracklet, far from it in time (by
  default from the farther half of the members), so the two views differ as the person
  moves, turns and is lit differently;
* **certain negatives** only: another person in the *same frame* as the anchor (two boxes
  of one frame are two people), or anyone from *another video*. Every other entry (same
  video, other frame) may be the same person and is masked out of the loss.

A batch is filled frame by frame (frames in random order over all videos), taking each
frame's instances that belong to a tracklet, at most one element per tracklet. Human
decisions apply before tracklets are formed: a rejected pair never joins one, an accepted
pair that mining missed is a two-member tracklet of weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idstudio.core.mining import components


@dataclass
class Tracklets:
    """Pseudo-tracklets over crop-store rows."""

    members: list[np.ndarray]  # rows of each tracklet, ordered by frame
    weight: np.ndarray  # (k,) mean reliability of each tracklet's pairs
    row_tracklets: dict[int, list[int]]  # row -> tracklets it belongs to
    pair_tracklet: np.ndarray | None = None  # per input pair: its tracklet, -1 when dropped

    def __len__(self) -> int:
        return len(self.members)


def build_tracklets(a: np.ndarray, b: np.ndarray, reliability: np.ndarray, component: np.ndarray,
                    positive: np.ndarray, frame: np.ndarray) -> Tracklets:
    """Tracklets from a round's pairs (``a``/``b`` crop-store rows, ``component`` from
    mining, -1 for pairs outside any component, ``positive`` False for rejected pairs) and
    each row's frame. A pair with component -1 that is positive (an accepted pair mining
    did not find, or a pair below the component cut) forms its own two-member tracklet;
    components are recomputed over the positive pairs, so a rejected pair never joins two
    tracklets."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    keep = np.asarray(positive, bool)
    comp = np.asarray(component, np.int64).copy()
    # Pairs without a component get fresh ids (a tracklet of their own); then recompute
    # connectivity among the kept pairs sharing a component, so removing a rejected pair
    # can split a component in two.
    free = keep & (comp < 0)
    comp[free] = comp.max(initial=-1) + 1 + np.arange(int(free.sum()))
    pair_tracklet = np.full(len(keep), -1, np.int64)
    a, b, rel, comp = a[keep], b[keep], np.asarray(reliability, np.float32)[keep], comp[keep]
    if len(a) == 0:
        return Tracklets([], np.zeros(0, np.float32), {}, pair_tracklet)
    # node = (row, component): an instance may sit in two windowed components
    keys, inv = np.unique(np.concatenate([np.stack([a, comp], 1), np.stack([b, comp], 1)]), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    labels = components(len(keys), inv[:len(a)], inv[len(a):])
    pair_label = labels[inv[:len(a)]]
    pair_tracklet[keep] = pair_label
    n_labels = int(labels.max()) + 1
    weight = np.bincount(pair_label, weights=rel, minlength=n_labels) / np.maximum(np.bincount(pair_label, minlength=n_labels), 1)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0, True])
    members: list[np.ndarray] = []
    row_tracklets: dict[int, list[int]] = {}
    for t in range(len(bounds) - 1):
        rows = np.unique(keys[order[bounds[t]:bounds[t + 1]], 0])
        rows = rows[np.argsort(frame[rows], kind="stable")]
        members.append(rows)
        for r in rows.tolist():
            row_tracklets.setdefault(r, []).append(t)
    return Tracklets(members, weight.astype(np.float32), row_tracklets, pair_tracklet)


def frame_groups(rows: np.ndarray, frame_key: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """``rows`` sorted by ``frame_key`` and the bounds of each key's group (group g is
    ``rows[bounds[g]:bounds[g + 1]]``). Computed once a sampler, not each epoch: at a million
    rows the sort alone cost more than an epoch's batches."""
    rows = np.asarray(rows, np.int64)
    keys = frame_key[rows]
    order = np.argsort(keys, kind="stable")
    rows, keys = rows[order], keys[order]
    return rows, np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True]).tolist()


def tracklet_batches(tracklets: Tracklets, frame_key: np.ndarray, frame: np.ndarray, batch_size: int,
                     n_batches: int, rng: np.random.Generator, far: bool = True,
                     groups: tuple[np.ndarray, list[int]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_batches`` batches of (anchor row, positive row, tracklet) triples, filled frame
    by frame. ``frame_key`` groups rows by (video, frame); ``frame`` orders a tracklet's
    members in time; ``groups``: ``frame_groups`` of the tracklets' rows, where the caller
    keeps it. Returns three (n_batches * batch_size,) arrays; batch i is the slice
    [i * batch_size, (i + 1) * batch_size)."""
    if groups is None:
        groups = frame_groups(np.fromiter(tracklets.row_tracklets.keys(), dtype=np.int64), frame_key)
    rows, bounds = groups
    if len(rows) == 0:
        raise ValueError("no tracklets")
    anchors: list[int] = []
    positives: list[int] = []
    owners: list[int] = []
    in_batch: set[int] = set()
    total = n_batches * batch_size
    while len(anchors) < total:
        added = 0
        for g in rng.permutation(len(bounds) - 1):
            for row in rng.permutation(rows[bounds[g]:bounds[g + 1]]).tolist():
                t = tracklets.row_tracklets[row]
                t = t[int(rng.integers(len(t)))] if len(t) > 1 else t[0]
                if t in in_batch:
                    continue
                members = tracklets.members[t]
                others = members[members != row]
                if len(others) == 0:
                    continue
                if far and len(others) > 1:  # the farther half in time
                    dist = np.abs(frame[others] - frame[row])
                    others = others[dist >= np.median(dist)]
                anchors.append(row)
                positives.append(int(others[int(rng.integers(len(others)))]))
                owners.append(t)
                in_batch.add(t)
                added += 1
                if len(anchors) % batch_size == 0:
                    in_batch.clear()
                    if len(anchors) >= total:
                        break
            if len(anchors) >= total:
                break
        if not anchors:
            raise ValueError("no tracklet has two members")
        if not added:  # fewer usable tracklets than a batch holds: they repeat (the loss masks a tracklet against itself)
            in_batch.clear()
    return np.array(anchors[:total]), np.array(positives[:total]), np.array(owners[:total])


def certain_negatives(video: np.ndarray, frame_key: np.ndarray, other_videos: bool = True,
                      owner: np.ndarray | None = None, cameras: np.ndarray | None = None) -> np.ndarray:
    """(n, n) bool: batch elements i, j (by their anchors' video and frame) are certainly
    different people: two boxes of one frame, (``other_videos``) anyone in another video,
    or two tracklets holding imported tracklets of one camera (``cameras``: (n, c) bool, the
    imported cameras each element's tracklet holds). The video-ReID layouts give one folder
    per person and camera, and two of a camera's tracklets in a batch drawn from hundreds
    are two people far more often than not; a linked tracklet holds both cameras' sides, so
    it is a negative of every other tracklet of either camera. Never two elements of one
    tracklet (``owner``). The diagonal is False."""
    video, frame_key = np.asarray(video), np.asarray(frame_key)
    certain = frame_key[:, None] == frame_key[None, :]
    if other_videos:
        certain |= video[:, None] != video[None, :]
    if cameras is not None:
        held = np.asarray(cameras, np.float32)
        certain |= (held @ held.T) > 0
    if owner is not None:
        owner = np.asarray(owner)
        certain &= owner[:, None] != owner[None, :]
    np.fill_diagonal(certain, False)
    return certain

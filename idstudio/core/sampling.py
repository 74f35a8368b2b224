"""How the trainer turns a mining round into batches and a loss: one class per sampler.

* ``pairs`` (ISR as published): the mined adjacent pairs are the positives, batches are
  grouped by frame, every other element of the batch is a negative except pairs of the
  same pseudo-tracklet (``reliability_info_nce``). Works on the synthetic world, where
  in-batch elements of other frames are mostly other people.
* ``tracklet`` (real video): positives far apart inside a pseudo-tracklet, certain
  negatives only (``core.tracklets``, ``masked_info_nce``). Real clips hold 10-30 people:
  most in-batch "negatives" of other frames of one video are the same person.

Both take crop-store rows, aligned with the instance table the crops were loaded for.
"""

from __future__ import annotations

import numpy as np
import torch

from idstudio.core.data import CropStore, PairDataset
from idstudio.core.losses import masked_info_nce, reliability_info_nce
from idstudio.core.tracklets import build_tracklets, certain_negatives, frame_groups, tracklet_batches

SAMPLERS = ("tracklet", "pairs")


def frame_batches(groups: tuple[np.ndarray, list[int]], batch_size: int, rng: np.random.Generator,
                  n_batches: int | None = None) -> list[np.ndarray]:
    """Pair indices grouped by their earlier frame (``frame_groups``: same-frame pairs are
    free negatives of each other), groups in random order, packed into batches of
    ``batch_size``; cycles through the pairs until ``n_batches`` batches exist (one pass
    when None)."""
    order, bounds = groups
    batches: list[np.ndarray] = []
    while True:
        # Only the groups the batches still need are shuffled: an epoch of 400 batches takes a
        # tenth of a million pairs, and shuffling every group cost 3 us a crop (bench/datapath.py).
        wanted = None if n_batches is None else (n_batches - len(batches)) * batch_size
        pieces, held = [], 0
        for g in rng.permutation(len(bounds) - 1).tolist():
            pieces.append(rng.permutation(order[bounds[g]:bounds[g + 1]]))
            held += len(pieces[-1])
            if wanted is not None and held >= wanted:
                break
        flat = np.concatenate(pieces)
        full = len(flat) // batch_size
        for i in range(full):
            batches.append(flat[i * batch_size:(i + 1) * batch_size])
            if n_batches is not None and len(batches) >= n_batches:
                return batches
        if n_batches is None or full == 0:
            return batches


class PairSampler:
    """ISR's adjacent pairs with in-batch negatives (same-tracklet entries masked)."""

    name = "pairs"

    def __init__(self, crops: CropStore, video: np.ndarray, frame: np.ndarray, a: np.ndarray, b: np.ndarray,
                 weight: np.ndarray, component: np.ndarray, positive: np.ndarray, tau: float, **_: object):
        self.dataset = PairDataset(crops, a, b, weight)
        self.pair_video = np.asarray(video, np.int64)[a]
        self.frame_key = self.pair_video * 10_000_000 + frame[a]
        self.groups = frame_groups(np.arange(len(self.frame_key)), self.frame_key)
        self.component = torch.from_numpy(np.asarray(component, np.int64))
        self.positive = torch.from_numpy(np.asarray(positive, bool))
        self.tau = tau

    def natural_steps(self, batch: int) -> int:
        return max(1, len(self.dataset) // batch)

    def epoch(self, batch_size: int, n_batches: int, rng: np.random.Generator) -> tuple[PairDataset, list[np.ndarray]]:
        return self.dataset, frame_batches(self.groups, batch_size, rng, n_batches)

    def video_of(self, idx: torch.Tensor) -> np.ndarray:
        """The video of each pair of a batch."""
        return self.pair_video[idx.numpy()]

    def loss(self, za: torch.Tensor, zb: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        device = za.device
        return reliability_info_nce(za, zb, weight.to(device), tau=self.tau, component=self.component[idx].to(device),
                                    positive=self.positive[idx].to(device))


class TrackletSampler:
    """Far-apart positives inside pseudo-tracklets, certain negatives only."""

    name = "tracklet"

    def __init__(self, crops: CropStore, video: np.ndarray, frame: np.ndarray, a: np.ndarray, b: np.ndarray,
                 weight: np.ndarray, component: np.ndarray, positive: np.ndarray, tau: float,
                 other_video_negatives: bool = True, imported: np.ndarray | None = None, link_share: float = 0.0):
        self.other_video_negatives = other_video_negatives
        imported = np.zeros(len(video), bool) if imported is None else np.asarray(imported, bool)
        self.crops = crops
        self.video = np.asarray(video, np.int64)
        self.frame = np.asarray(frame, np.int64)
        self.frame_key = self.video * 10_000_000 + self.frame
        self.tracklets = build_tracklets(a, b, weight, component, positive, self.frame)
        if not len(self.tracklets):
            raise ValueError("no tracklets")
        self.cameras = tracklet_cameras(self.tracklets, self.video, imported)
        self.groups = frame_groups(np.fromiter(self.tracklets.row_tracklets.keys(), np.int64), self.frame_key)
        # tracklets that links made span videos: ``link_share`` more elements in each batch
        self.spanning = np.array([t for t, m in enumerate(self.tracklets.members) if len(np.unique(self.video[m])) > 1],
                                 np.int64)
        self.link_share = float(link_share)
        self.tau = tau
        self._anchor_video = np.zeros(0, np.int64)
        self._anchor_key = np.zeros(0, np.int64)
        self._anchor_owner = np.zeros(0, np.int64)
        self._anchor_cameras = np.zeros((0, self.cameras.shape[1]), bool)

    def natural_steps(self, batch: int) -> int:
        return max(1, len(self.tracklets.row_tracklets) // batch)

    def epoch(self, batch_size: int, n_batches: int, rng: np.random.Generator) -> tuple[PairDataset, list[np.ndarray]]:
        # Time is the frame key: a member in another video (a cross-video link) counts as the farthest.
        anchors, positives, owners = tracklet_batches(self.tracklets, self.frame_key, self.frame_key, batch_size,
                                                      n_batches, rng, groups=self.groups)
        batches = [np.arange(i * batch_size, (i + 1) * batch_size) for i in range(n_batches)]
        if self.link_share > 0 and len(self.spanning):
            anchors, positives, owners, batches = add_linked(anchors, positives, owners, batch_size, self.tracklets,
                                                             self.spanning, self.video, self.link_share, rng)
        self._anchor_video, self._anchor_key, self._anchor_owner = self.video[anchors], self.frame_key[anchors], owners
        self._anchor_cameras = self.cameras[owners]
        dataset = PairDataset(self.crops, anchors, positives, self.tracklets.weight[owners])
        return dataset, batches

    def video_of(self, idx: torch.Tensor) -> np.ndarray:
        """The video of each pair of a batch (its anchor's: a linked positive may be in another)."""
        return self._anchor_video[idx.numpy()]

    def loss(self, za: torch.Tensor, zb: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        rows = idx.numpy()
        certain = torch.from_numpy(certain_negatives(self._anchor_video[rows], self._anchor_key[rows],
                                                     self.other_video_negatives, self._anchor_owner[rows],
                                                     self._anchor_cameras[rows]))
        return masked_info_nce(za, zb, certain, weight.to(za.device), tau=self.tau)


def linked_per_batch(share: float, batch_size: int) -> int:
    """How many linked elements ``add_linked`` puts on top of a batch of ``batch_size``."""
    return int(round(share * batch_size))


def add_linked(anchors: np.ndarray, positives: np.ndarray, owners: np.ndarray, batch_size: int, tracklets,
               spanning: np.ndarray, video: np.ndarray, share: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Each batch of ``batch_size`` elements grows by ``share`` of it: elements of tracklets
    that span videos (linked across cameras), each with its positive in another video.
    Linked tracklets are a few among thousands: drawn as often as any tracklet, their
    cross-camera positives would hardly be seen. They come on top of the batch, not in the
    place of its elements, so the rest of the footage trains as much as without links (in
    their place they cost a single-camera set more than its seeds' spread). At most one
    element per tracklet in a batch, as before. Returns the new anchors, positives, owners
    and each batch's indices into them."""
    k = linked_per_batch(share, batch_size)
    out_a, out_p, out_o, batches = [], [], [], []
    size = 0
    for start in range(0, len(anchors), batch_size):
        sl = slice(start, start + batch_size)
        take = rng.permutation(np.setdiff1d(spanning, owners[sl]))[:k]
        linked_a, linked_p = [], []
        for t in take.tolist():
            members = tracklets.members[t]
            a = int(members[int(rng.integers(len(members)))])
            others = members[video[members] != video[a]]
            linked_a.append(a)
            linked_p.append(int(others[int(rng.integers(len(others)))]))
        out_a += [anchors[sl], np.array(linked_a, np.int64)]
        out_p += [positives[sl], np.array(linked_p, np.int64)]
        out_o += [owners[sl], take.astype(np.int64)]
        n = len(anchors[sl]) + len(take)
        batches.append(np.arange(size, size + n))
        size += n
    return np.concatenate(out_a), np.concatenate(out_p), np.concatenate(out_o), batches


def tracklet_cameras(tracklets, video: np.ndarray, imported: np.ndarray) -> np.ndarray:
    """(tracklets, imported cameras) bool: the cameras whose imported tracklets each tracklet holds."""
    cams = np.unique(video[imported])
    out = np.zeros((len(tracklets), len(cams)), bool)
    if len(cams):
        for t, rows in enumerate(tracklets.members):
            rows = rows[imported[rows]]
            if len(rows):
                out[t, np.searchsorted(cams, np.unique(video[rows]))] = True
    return out


def make_sampler(name: str, *args, **kwargs) -> PairSampler | TrackletSampler:
    """The sampler called ``name`` (see ``SAMPLERS``)."""
    return {"pairs": PairSampler, "tracklet": TrackletSampler}[name](*args, **kwargs)

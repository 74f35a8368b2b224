"""Batches by frame: what an epoch's plan holds, and that it costs what its batches need, not
what the project holds (bench/datapath.py: shuffling every frame group of a million pairs
each epoch cost 3 us a crop, more than gathering it)."""

import numpy as np

from idstudio.core.sampling import frame_batches
from idstudio.core.tracklets import build_tracklets, frame_groups, tracklet_batches


def frame_keys(n_frames: int, per_frame: int) -> np.ndarray:
    return np.repeat(np.arange(n_frames), per_frame)


class CountingRng:
    """A generator that counts its shuffles."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.shuffled = 0

    def permutation(self, x):
        self.shuffled += 1
        return self.rng.permutation(x)


def test_one_pass_holds_every_pair_once_with_frames_together():
    key = frame_keys(50, 4)
    batches = frame_batches(frame_groups(np.arange(len(key)), key), 8, np.random.default_rng(0))
    assert len(batches) == 25 and all(len(b) == 8 for b in batches)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(200))
    runs = key[flat]
    changes = np.flatnonzero(np.diff(runs) != 0)
    assert len(changes) == 49  # each frame's pairs side by side: a frame never comes back
    assert not (runs[:-1] == np.arange(50).repeat(4)[:-1]).all()  # and the frames are shuffled


def test_more_batches_than_a_pass_cycle_through_the_pairs():
    key = frame_keys(10, 3)  # 30 pairs: 3 batches of 8 a pass, 6 left over
    batches = frame_batches(frame_groups(np.arange(len(key)), key), 8, np.random.default_rng(1), n_batches=7)
    assert len(batches) == 7 and all(len(b) == 8 for b in batches)
    assert len(np.unique(np.concatenate(batches[:3]))) == 24


def test_few_batches_shuffle_only_the_groups_they_need_and_match_the_whole_pass():
    key = frame_keys(12_500, 8)  # 100,000 pairs
    groups = frame_groups(np.arange(len(key)), key)
    rng = CountingRng(3)
    few = frame_batches(groups, 16, rng, n_batches=2)
    assert rng.shuffled <= 1 + 2 * 16 // 8 + 1  # the group order, then the groups drawn
    whole = frame_batches(groups, 16, np.random.default_rng(3))
    assert all((a == b).all() for a, b in zip(few, whole[:2]))


def test_tracklet_batches_from_groups_kept_by_the_caller_are_the_same():
    frame = np.repeat(np.arange(40), 3)
    person = np.tile(np.arange(3), 40)
    a = np.flatnonzero(frame < 39)
    b = a + 3
    tracklets = build_tracklets(a, b, np.ones(len(a), np.float32), person[a], np.ones(len(a), bool), frame)
    rows = np.fromiter(tracklets.row_tracklets.keys(), np.int64)
    kept = frame_groups(rows, frame)
    one = tracklet_batches(tracklets, frame, frame, 3, 5, np.random.default_rng(4))
    two = tracklet_batches(tracklets, frame, frame, 3, 5, np.random.default_rng(4), groups=kept)
    assert all((x == y).all() for x, y in zip(one, two))

"""The tracklet sampler: tracklets from pairs, far positives, certain-negative masks, the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idstudio.core.losses import masked_info_nce
from idstudio.core.tracklets import build_tracklets, certain_negatives, tracklet_batches


def chain(rows: list[int]) -> tuple[list[int], list[int]]:
    return rows[:-1], rows[1:]


def two_people_two_videos():
    """Video 0: person A rows 0..4 and person B rows 5..9, frames 0..4 each; video 1:
    person C rows 10..14, frames 0..4. Pairs chain each person's consecutive frames."""
    video = np.array([0] * 10 + [1] * 5)
    frame = np.array(list(range(5)) * 3)
    a, b, comp = [], [], []
    for c, start in enumerate((0, 5, 10)):
        x, y = chain(list(range(start, start + 5)))
        a += x
        b += y
        comp += [c] * 4
    n = len(a)
    return video, frame, np.array(a), np.array(b), np.full(n, 0.8, np.float32), np.array(comp), np.ones(n, bool)


def test_tracklets_are_the_components_with_members_in_time_order():
    video, frame, a, b, rel, comp, pos = two_people_two_videos()
    tr = build_tracklets(a, b, rel, comp, pos, frame)
    assert sorted(m.tolist() for m in tr.members) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert np.allclose(tr.weight, 0.8)


def test_a_rejected_pair_splits_its_tracklet_and_an_accepted_unmined_pair_is_its_own():
    video, frame, a, b, rel, comp, pos = two_people_two_videos()
    pos[1] = False  # reject 1-2: person A falls apart into {0, 1} and {2, 3, 4}
    a = np.append(a, 4)
    b = np.append(b, 9)  # an accepted pair that mining did not find (component -1)
    rel = np.append(rel, 1.0).astype(np.float32)
    comp = np.append(comp, -1)
    pos = np.append(pos, True)
    tr = build_tracklets(a, b, rel, comp, pos, frame)
    members = sorted(m.tolist() for m in tr.members)
    assert [0, 1] in members and [2, 3, 4] in members and [4, 9] in members
    assert not any(1 in m and 2 in m for m in members)


def test_batches_take_far_positives_from_the_same_tracklet_and_one_element_per_tracklet():
    video, frame, a, b, rel, comp, pos = two_people_two_videos()
    tr = build_tracklets(a, b, rel, comp, pos, frame)
    key = video * 1000 + frame
    anchors, positives, owners = tracklet_batches(tr, key, frame, batch_size=3, n_batches=20, rng=np.random.default_rng(0))
    assert len(anchors) == 60
    person = np.array([0] * 5 + [1] * 5 + [2] * 5)
    assert (person[anchors] == person[positives]).all()
    assert (anchors != positives).all()
    # far: from the farther half of the tracklet in time (|gap| >= median gap, here >= 2 mostly)
    assert np.abs(frame[anchors] - frame[positives]).mean() >= 2.0
    for i in range(20):
        batch = owners[i * 3:(i + 1) * 3]
        assert len(set(batch.tolist())) == len(batch)


def test_certain_negatives_are_same_frame_or_other_video_only():
    video = np.array([0, 0, 0, 1])
    key = np.array([10, 10, 11, 5])  # elements 0 and 1 share a frame; 2 is another frame of video 0
    m = certain_negatives(video, key)
    assert m[0, 1] and m[1, 0]  # same frame: two people
    assert not m[0, 2] and not m[2, 1]  # same video, other frame: maybe the same person, masked
    assert m[0, 3] and m[3, 2]  # another video
    assert not m.diagonal().any()


def test_masked_loss_ignores_uncertain_entries():
    torch.manual_seed(0)
    za = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    zb = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    certain = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    base = masked_info_nce(za, zb, certain)
    # element 2 has no certain negative: moving it anywhere except its own pair changes nothing
    # for the others, and its own loss is 0 (only the positive in its denominator)
    moved = za.clone()
    moved[2] = -za[0]
    zb2 = zb.clone()
    zb2[2] = -za[0]
    assert masked_info_nce(moved, zb2, certain) == pytest.approx(float(base), abs=1e-5)
    # all-certain: a larger loss than with the masks, since negatives were added
    assert float(masked_info_nce(za, zb, ~torch.eye(3, dtype=torch.bool))) > float(base)


def test_masked_loss_falls_when_positives_agree():
    za = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    certain = ~torch.eye(4, dtype=torch.bool)
    aligned = masked_info_nce(za, za, certain)
    shuffled = masked_info_nce(za, za[[1, 2, 3, 0]], certain)
    assert float(aligned) < float(shuffled)


def test_fewer_tracklets_than_a_batch_repeat_and_never_face_themselves():
    video, frame, a, b, rel, comp, pos = two_people_two_videos()
    tr = build_tracklets(a, b, rel, comp, pos, frame)  # 3 tracklets, batches of 8
    key = video * 10_000_000 + frame
    anchors, positives, owners = tracklet_batches(tr, key, frame, batch_size=8, n_batches=2, rng=np.random.default_rng(0))
    assert len(anchors) == 16 and len(set(owners.tolist())) == 3  # it ends (it used to spin forever)
    certain = certain_negatives(video[anchors], key[anchors], True, owners)
    assert not certain[owners[:, None] == owners[None, :]].any()

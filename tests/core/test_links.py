"""Cross-video links: mutual best matches between videos' tracklets, the kept share, the
same-frame constraint, scoring against gt, and links turned into training pairs."""

from __future__ import annotations

import numpy as np

from idstudio.core.links import LinkParams, find_links, link_tracklets, strong_tracklets, tracklet_features
from idstudio.core.tracklets import build_tracklets, tracklet_batches


def world(n_people: int = 6, n_videos: int = 3, length: int = 5, noise: float = 0.3, seed: int = 0):
    """Every person walks through every video once: one tracklet of ``length`` frames per
    (person, video), all people in a video at the same frames. Features: a per-person
    direction plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 16))
    rows_video, rows_frame, rows_id, members = [], [], [], []
    for v in range(n_videos):
        for p in range(n_people):
            start = len(rows_video)
            rows_video += [v] * length
            rows_frame += list(range(length))
            rows_id += [p] * length
            members.append(np.arange(start, start + length))
    ident = np.array(rows_id)
    emb = centres[ident] + noise * rng.normal(size=(len(ident), 16))
    return members, emb.astype(np.float32), np.array(rows_video), np.array(rows_frame), ident


def test_links_join_the_same_person_across_videos_and_are_scored():
    members, emb, video, frame, ident = world()
    result = find_links(members, emb, video, frame, LinkParams(min_similarity=0.0, keep=1.0, min_members=2, mutual_k=1), identity=ident)
    kept = result.kept
    assert kept.sum() > 0
    t_ident = np.array([ident[m[0]] for m in members])
    assert (t_ident[result.ta[kept]] == t_ident[result.tb[kept]]).all()
    assert result.stats["precision"] == 1.0 and result.stats["recall"] > 0.9
    t_video = np.array([video[m[0]] for m in members])
    assert (t_video[result.ta] < t_video[result.tb]).all()  # never inside one video


def test_a_wrong_link_is_caught_by_scoring_and_the_kept_share_takes_the_most_reliable():
    full_precision, half_precision = [], []
    for seed in range(6):
        members, emb, video, frame, ident = world(n_people=12, noise=3.0, seed=seed)
        full = find_links(members, emb, video, frame, LinkParams(min_similarity=-1.0, keep=1.0, min_members=2, mutual_k=1), identity=ident)
        half = find_links(members, emb, video, frame, LinkParams(min_similarity=-1.0, keep=0.5, min_members=2, mutual_k=1), identity=ident)
        assert half.kept.sum() <= round(0.5 * len(half)) and half.kept.sum() < full.kept.sum()
        assert half.reliability[half.kept].mean() > half.reliability[~half.kept].mean()  # most reliable first
        full_precision.append(full.stats["precision"])
        half_precision.append(half.stats["precision"])
    assert np.mean(full_precision) < 0.8  # this much noise makes mistakes: the score must see them
    assert np.mean(half_precision) > np.mean(full_precision)  # the most reliable half is cleaner


def test_short_tracklets_and_dissimilar_ones_are_not_linked():
    members, emb, video, frame, ident = world(length=3)
    assert len(find_links(members, emb, video, frame, LinkParams(min_members=4))) == 0
    assert len(find_links(members, emb, video, frame, LinkParams(min_similarity=1.01, min_members=2))) == 0


def test_two_tracklets_of_one_video_sharing_a_frame_never_end_in_one_group():
    # person 0 in video 0 as two overlapping tracklets (a wrong split of a crowd), in video 1 once
    emb = np.array([[1, 0]] * 9 + [[0, 1]] * 3, np.float32)
    video = np.array([0] * 6 + [1] * 3 + [1] * 3)
    frame = np.array([0, 1, 2, 1, 2, 3, 0, 1, 2, 5, 6, 7])
    members = [np.arange(0, 3), np.arange(3, 6), np.arange(6, 9), np.arange(9, 12)]
    result = find_links(members, emb + 0.01 * np.arange(12)[:, None], video, frame,
                        LinkParams(min_similarity=-1, keep=1.0, min_members=2, mutual_k=1))
    linked = {(int(a), int(b)) for a, b in zip(result.ta[result.kept], result.tb[result.kept])}
    assert not ({(0, 2), (1, 2)} <= linked)  # tracklets 0 and 1 share frames 1 and 2


def test_representative_is_the_member_nearest_the_mean():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32)
    feats, reps = tracklet_features(emb, [np.array([0, 1, 2])])
    assert reps[0] == 1 and np.isclose(np.linalg.norm(feats[0]), 1)


def test_links_become_one_cross_video_tracklet_with_cross_video_positives():
    # video 0: person rows 0..4 (frames 0..4); video 1: the same person rows 5..9; another person rows 10..14 in video 1
    video = np.array([0] * 5 + [1] * 10)
    frame = np.array(list(range(5)) * 3)
    a = np.array([0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13])
    b = a + 1
    rel = np.full(len(a), 0.6, np.float32)
    comp = np.repeat([0, 1, 2], 4)
    pos = np.ones(len(a), bool)
    a2, b2, rel2, comp2, pos2, used = link_tracklets(a, b, rel, comp, pos, [(2, 7, 0.9)], video, frame,
                                                     np.random.default_rng(0), share=0.25)
    assert used == 1 and len(a2) == len(a) + 4  # 4 link pairs make a quarter of 16
    assert (video[a2[-4:]] == 0).all() and (video[b2[-4:]] == 1).all() and np.allclose(rel2[-4:], 0.9)
    assert comp2[0] == comp2[4] == comp2[-1] and comp2[8] != comp2[0]  # both sides share one component
    tr = build_tracklets(a2, b2, rel2, comp2, pos2, frame)
    assert sorted(len(m) for m in tr.members) == [5, 10]
    key = video * 10_000_000 + frame
    anchors, positives, _ = tracklet_batches(tr, key, key, batch_size=2, n_batches=20, rng=np.random.default_rng(1))
    linked = np.isin(anchors, np.arange(10))
    assert (video[anchors[linked]] != video[positives[linked]]).all()  # the farther half is the other video


def test_a_link_to_an_unknown_row_or_inside_one_video_is_ignored():
    video = np.array([0] * 5 + [1] * 5)
    frame = np.array(list(range(5)) * 2)
    a, b = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    out = link_tracklets(a, b, np.ones(4, np.float32), np.zeros(4, np.int64), np.ones(4, bool),
                         [(0, 3, 1.0), (0, 7, 1.0)], video, frame, np.random.default_rng(0))
    assert out[-1] == 0 and len(out[0]) == 4


def test_tracklets_to_link_follow_only_reliable_pairs():
    # one chain of five rows, its middle edge weak: at 0.7 it falls apart into two tracklets
    a, b = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    rel = np.array([0.9, 0.9, 0.4, 0.9], np.float32)
    frame = np.arange(5)
    loose, _ = strong_tracklets(a, b, rel, np.zeros(4, np.int64), np.ones(4, bool), frame, 0.3)
    strict, mask = strong_tracklets(a, b, rel, np.zeros(4, np.int64), np.ones(4, bool), frame, 0.7)
    assert [m.tolist() for m in loose.members] == [[0, 1, 2, 3, 4]]
    assert sorted(m.tolist() for m in strict.members) == [[0, 1, 2], [3, 4]] and mask.tolist() == [True, True, False, True]


def test_support_counts_the_tracklets_of_other_videos_that_agree():
    from idstudio.core.links import link_support

    # tracklets 0, 1, 2 in three videos all link to each other (one person seen by three
    # cameras); 3 and 4 are a lone link between two videos
    ta, tb = np.array([0, 0, 1, 3]), np.array([1, 2, 2, 4])
    assert link_support(ta, tb).tolist() == [1, 1, 1, 0]
    assert link_support(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []


def test_between_cameras_of_one_tracklet_a_person_one_that_resembles_everyone_does_not_take_the_matches():
    """A camera-b tracklet that resembles everyone (a hub: a crowd crop, a dark one) is every
    camera-a tracklet's nearest; mutual best matches then find almost nothing. The dual
    softmax weighs each match by how much the column prefers that row too, so each person's
    own (weaker) match wins."""
    from idstudio.core.links import DUAL_SOFTMAX_TEMPERATURE, _candidates

    rng = np.random.default_rng(0)
    n, d = 10, 64
    people = np.linalg.qr(rng.normal(size=(d, n + 1)))[0].T  # orthonormal: people and the hub's look
    fa = 0.70 * people[:n] + 0.75 * people[n]  # every camera-a tracklet leans towards the hub's look
    fa /= np.linalg.norm(fa, axis=1, keepdims=True)
    fb = np.concatenate([people[:n], people[n:]])  # camera b: the people, then the hub
    plain = _candidates(fa, fb, -1.0, 1)
    dual = _candidates(fa, fb, -1.0, 1, DUAL_SOFTMAX_TEMPERATURE)
    assert (plain[0] == plain[1]).sum() == 0 and list(plain[1]) == [n]  # the hub takes the one mutual match there is
    assert sorted(zip(dual[0].tolist(), dual[1].tolist())) == [(i, i) for i in range(n)]

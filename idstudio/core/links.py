"""Cross-video links: the same person's pseudo-tracklets in two videos (after CION).

ISR mines positives only between frames of one video, so the model never sees one person
under two cameras. A link round joins pseudo-tracklets of *different* videos:

* each tracklet gets a feature, the normalised mean of its members' embeddings;
* the tracklets are rebuilt from the round's *reliable* pairs only (``min_reliability``):
  a component that one weak edge joined mixes people (on the synthetic world 41 % of the
  tracklets were under 90 % pure at the mining cut of 0.3, 4 % at 0.7), and a mixed
  tracklet's mean feature links to anyone;
* for every pair of videos, two tracklets become a candidate link when each is among the
  other's ``mutual_k`` nearest tracklets of that video and they are at least
  ``min_similarity`` similar (a person leaves several tracklets per video, so a strict
  one-to-one match would leave most of them unlinked);
* each candidate gets a relative reliability: two thirds the rule of mined pairs
  (``core.mining.reliability_margin``: margin over the runner-up in its row and column and
  similarity, as percentiles of the round's own candidates), one third the percentile of its
  *support*: how many tracklets of other videos are candidates of both its ends (the views
  agree, a cycle across cameras). On the synthetic world (4 cameras) 6 of 10 unsupported
  candidates were right against 9 of 10 supported ones. With two videos there is no
  support: every candidate shares the same percentile and the order is the pairs' rule;
* the most reliable ``keep`` share of candidates is kept (CION's progressive denoising: the
  trainer raises ``keep`` round by round as the model improves), most reliable first,
  refusing any link that would put two tracklets of one video sharing a frame into one
  group (two boxes of one frame are two people).

A link is named by two representative instances (the member nearest its tracklet's
feature), so it survives re-mining: the trainer maps each representative to whatever
tracklet holds it now, and human decisions are stored on that instance pair like any
other review.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from idstudio.core.mining import Edges, percentile_rank, reliability_margin, runner_up_margin
from idstudio.core.tracklets import Tracklets, build_tracklets


@dataclass
class LinkParams:
    min_similarity: float = 0.5
    keep: float = 0.5  # share of the candidates kept, most reliable first
    min_members: int = 4  # shorter tracklets are too noisy to link
    mutual_k: int = 2  # a candidate is among each other's k nearest tracklets of the other video
    min_reliability: float = 0.7  # tracklets to link follow only pairs this reliable: purer units
    standardise: bool = False  # features standardised per camera first (camera_standardised)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LinkResult:
    ta: np.ndarray  # tracklet index (into the members list) of the lower video's side
    tb: np.ndarray
    rep_a: np.ndarray  # representative row of each side
    rep_b: np.ndarray
    similarity: np.ndarray
    reliability: np.ndarray
    kept: np.ndarray  # bool
    stats: dict[str, Any] = field(default_factory=dict)
    members: list[np.ndarray] = field(default_factory=list)  # the rows of each tracklet ``ta``/``tb`` index

    def __len__(self) -> int:
        return len(self.ta)


def camera_standardised(emb: np.ndarray, video: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The embeddings of ``rows``, standardised per video (each dimension less its video's
    mean, over its spread) and normalised. Each camera adds its own offset to every feature
    (its light, its angle, its background); matched across cameras, that offset outweighs the
    person, above all in a colour part. On the real two-camera tracklets (cuhk03-tracklets,
    ImageNet start with the colour part) it took the cross-camera rank-1 of tracklets from
    5.4 % to 12 % and the precision of the most reliable fifth of mutual matches from 0.33 to
    0.65; on the synthetic world (no colour part, a model trained to ignore the cameras'
    colour casts) centring made links worse (0.77 -> 0.46 precision), hence
    ``LinkParams.standardise``."""
    x = np.zeros((len(video), emb.shape[1]), np.float32)
    x[rows] = np.asarray(emb[rows], np.float32)
    x[rows] /= np.maximum(np.linalg.norm(x[rows], axis=1, keepdims=True), 1e-12)
    for v in np.unique(video[rows]):
        r = rows[video[rows] == v]
        if len(r) > 1:
            x[r] = (x[r] - x[r].mean(axis=0)) / (x[r].std(axis=0) + 1e-6)
    x[rows] /= np.maximum(np.linalg.norm(x[rows], axis=1, keepdims=True), 1e-12)
    return x


def tracklet_features(emb: np.ndarray, members: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(k, d) normalised mean feature per tracklet and each one's representative row (the
    member most similar to that mean)."""
    feats = np.zeros((len(members), emb.shape[1]), np.float32)
    reps = np.zeros(len(members), np.int64)
    for t, rows in enumerate(members):
        x = emb[rows].astype(np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        mean = x.mean(axis=0)
        feats[t] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        reps[t] = rows[int(np.argmax(x @ feats[t]))]
    return feats, reps


DUAL_SOFTMAX_TEMPERATURE = 0.05  # one tracklet per person and camera: matches ranked by a dual softmax


def dual_softmax(S: np.ndarray, temperature: float) -> np.ndarray:
    """Each similarity as the product of its row's and its column's softmax: high only where
    both sides prefer each other over all their other candidates, the soft form of a
    one-to-one assignment."""
    z = (S - S.max()) / temperature
    e = np.exp(z.astype(np.float64))
    return e / e.sum(axis=1, keepdims=True) * (e / e.sum(axis=0, keepdims=True))


def _candidates(fa: np.ndarray, fb: np.ndarray, min_similarity: float, k: int, temperature: float = 0.0):
    """Mutual k-nearest tracklets of one video pair: (rows, cols, similarity, margin,
    background). A person leaves several tracklets in a video (one per time window, and
    more where the track breaks): with k = 1 they compete for one best match and most
    are never linked, so each side may name its ``k`` nearest. With ``temperature``, the
    nearest and the margins are those of the ``dual_softmax`` (the similarity stays the
    features')."""
    S = fa @ fb.T
    M = dual_softmax(S, temperature) if temperature > 0 and S.size else S
    ka, kb = min(k, S.shape[1]), min(k, S.shape[0])
    near_a = np.zeros(S.shape, bool)  # j among i's k nearest
    np.put_along_axis(near_a, np.argsort(-M, axis=1)[:, :ka], True, axis=1)
    near_b = np.zeros(S.shape, bool)
    np.put_along_axis(near_b, np.argsort(-M, axis=0)[:kb, :], True, axis=0)
    rows, cols = np.nonzero(near_a & near_b & (S >= min_similarity))
    return rows, cols, S[rows, cols], runner_up_margin(M, rows, cols), float(S.mean())


class _Groups:
    """Union-find over tracklets that refuses a union joining two tracklets of one video
    that share a frame."""

    def __init__(self, video: np.ndarray, frames: list[set[int]]):
        self.parent = list(range(len(video)))
        self.frames = [{int(video[t]): set(frames[t])} for t in range(len(video))]

    def find(self, t: int) -> int:
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        fa, fb = self.frames[ra], self.frames[rb]
        if any(v in fa and fa[v] & f for v, f in fb.items()):
            return False
        for v, f in fb.items():
            fa.setdefault(v, set()).update(f)
        self.parent[rb] = ra
        return True


def find_links(members: list[np.ndarray], emb: np.ndarray, video: np.ndarray, frame: np.ndarray,
               params: LinkParams, identity: np.ndarray | None = None, site: np.ndarray | None = None,
               imported: np.ndarray | None = None) -> LinkResult:
    """One link round over tracklets (``members``: rows per tracklet, rows index ``emb``,
    ``video``, ``frame``, ``identity``, ``site`` and ``imported``). ``identity`` (gt, -1
    unknown) only scores it. ``site`` (a number per row, -1 none): only videos of one site
    are linked (None: any two). ``imported`` rows are a tracker's tracklets: linkable from
    two members, where mined ones need ``min_members``."""
    video, frame = np.asarray(video), np.asarray(frame)
    long_enough = np.array([len(m) >= params.min_members or (imported is not None and len(m) >= 2 and bool(imported[m].all()))
                            for m in members], bool)
    t_video = np.array([int(video[m[0]]) for m in members], np.int64) if members else np.zeros(0, np.int64)
    video_site = _video_sites(video, site)
    imported_video = {} if imported is None else {int(v): bool(np.asarray(imported)[video == v].all()) for v in np.unique(video)}
    if members:
        rows = np.unique(np.concatenate(members))
        feats, reps = tracklet_features(camera_standardised(emb, video, rows) if params.standardise else emb, members)
    else:
        feats, reps = np.zeros((0, emb.shape[1]), np.float32), np.zeros(0, np.int64)
    ta, tb, sims, margins, backgrounds = [], [], [], [], []
    videos = np.unique(t_video[long_enough])
    for i, va in enumerate(videos):
        ia = np.flatnonzero(long_enough & (t_video == va))
        for vb in videos[i + 1:]:
            if not same_site(video_site, int(va), int(vb)):
                continue
            ib = np.flatnonzero(long_enough & (t_video == vb))
            # two cameras of imported tracklets: one tracklet per person and camera, so mutual best
            # matches only, ranked by the dual softmax
            one_each = imported is not None and bool(imported_video.get(int(va))) and bool(imported_video.get(int(vb)))
            rows, cols, s, margin, background = _candidates(feats[ia], feats[ib], params.min_similarity,
                                                            1 if one_each else params.mutual_k,
                                                            DUAL_SOFTMAX_TEMPERATURE if one_each else 0.0)
            ta.append(ia[rows])
            tb.append(ib[cols])
            sims.append(s)
            margins.append(margin)
            backgrounds.append(background)
    if ta:
        ta_, tb_ = np.concatenate(ta).astype(np.int64), np.concatenate(tb).astype(np.int64)
        sim, margin = np.concatenate(sims).astype(np.float64), np.concatenate(margins).astype(np.float64)
    else:
        ta_ = tb_ = np.zeros(0, np.int64)
        sim = margin = np.zeros(0)
    edges = Edges(ta_, tb_, np.zeros(len(ta_), np.int64), sim, margin, np.ones(len(ta_), bool))
    support = link_support(ta_, tb_)
    reliability = (2 * reliability_margin(edges, float(np.mean(backgrounds)) if backgrounds else 0.0)
                   + percentile_rank(support.astype(np.float32))) / 3
    reliability = reliability.astype(np.float32)
    kept = np.zeros(len(ta_), bool)
    groups = _Groups(t_video, [set(frame[m].tolist()) for m in members])
    budget = int(round(params.keep * len(ta_)))
    for k in np.argsort(-reliability, kind="stable"):
        if int(kept.sum()) >= budget:
            break
        kept[k] = groups.union(int(ta_[k]), int(tb_[k]))
    result = LinkResult(ta_, tb_, reps[ta_], reps[tb_], sim.astype(np.float32), reliability, kept, members=members)
    result.stats = {"n_candidates": len(ta_), "n_links": int(kept.sum()), "n_supported": int((support > 0).sum()),
                    "n_tracklets": len(members),
                    "n_linkable_tracklets": int(long_enough.sum()), "videos": len(videos)}
    if identity is not None:
        result.stats.update(score_links(members, result, video, np.asarray(identity), long_enough, video_site))
    return result


def _video_sites(video: np.ndarray, site: np.ndarray | None) -> dict[int, int] | None:
    """Each video's site number (-1: none), or None where sites are not given."""
    if site is None:
        return None
    site = np.asarray(site)
    return {int(v): int(site[np.flatnonzero(video == v)[0]]) for v in np.unique(video)}


def same_site(video_site: dict[int, int] | None, va: int, vb: int) -> bool:
    """Two videos may show the same people: both at one site (any two where sites are not given)."""
    if video_site is None:
        return True
    return video_site.get(va, -1) >= 0 and video_site.get(va) == video_site.get(vb)


def link_support(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """For each candidate link (``ta[i]``, ``tb[i]``): how many tracklets are candidates of
    both ends. Candidates join different videos only, so each such tracklet is in a third video."""
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(ta.tolist(), tb.tolist()):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    return np.array([len(neighbours[a] & neighbours[b]) for a, b in zip(ta.tolist(), tb.tolist())], np.int64)


LINKS_PER_DIRECTION = 5  # fewer links than this a direction: it would fit their people, not the cameras


def camera_directions(emb: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], parts: tuple[int, ...],
                      k: int) -> np.ndarray:
    """(m, d) orthonormal directions of the embedding along which linked tracklets differ
    most: for each part of the embedding (its ``parts`` widths: learned, colour), the top
    ``k`` right singular vectors of the linked tracklets' mean-feature differences (not
    centred, so the cameras' mean offset is among them). Two tracklets of one person under
    two cameras differ by what the cameras change (light, angle, background), so these are
    the directions a camera moves a person along; taken out, cross-camera matches rank
    higher. Each part gets its own ``k``: the colour part's larger scale would otherwise
    take them all. ``pairs``: the rows (into ``emb``) of both sides of each link; at most
    one direction per ``LINKS_PER_DIRECTION`` links."""
    d = emb.shape[1]
    k = min(k, len(pairs) // LINKS_PER_DIRECTION)
    if k <= 0:
        return np.zeros((0, d), np.float32)
    x = np.asarray(emb, np.float64)
    diffs = np.stack([x[a].mean(axis=0) - x[b].mean(axis=0) for a, b in pairs])
    out, start = [], 0
    for width in parts:
        _, values, vt = np.linalg.svd(diffs[:, start:start + width], full_matrices=False)
        keep = vt[:k][values[:k] > 1e-6 * max(float(values.max(initial=0.0)), 1e-12)]
        block = np.zeros((len(keep), d))
        block[:, start:start + width] = keep
        out.append(block)
        start += width
    return np.concatenate(out).astype(np.float32)


def majority_identity(members: list[np.ndarray], identity: np.ndarray) -> np.ndarray:
    """Each tracklet's most frequent known identity (-1 where none is known)."""
    out = np.full(len(members), -1, np.int64)
    for t, rows in enumerate(members):
        ids = identity[rows]
        ids = ids[ids >= 0]
        if len(ids):
            values, counts = np.unique(ids, return_counts=True)
            out[t] = values[int(np.argmax(counts))]
    return out


def score_links(members: list[np.ndarray], result: LinkResult, video: np.ndarray, identity: np.ndarray,
                linkable: np.ndarray, video_site: dict[int, int] | None = None) -> dict[str, Any]:
    """Precision of the kept links (both sides' majority gt identity equal) and recall: the
    share of (video pair of one site, identity) with a linkable tracklet on both sides that
    some kept link joins correctly. None where no gt is known."""
    ident = majority_identity(members, identity)
    if (ident < 0).all():
        return {"precision": None, "recall": None}
    t_video = np.array([int(video[m[0]]) for m in members], np.int64)
    kept = np.flatnonzero(result.kept)
    a, b = result.ta[kept], result.tb[kept]
    known = (ident[a] >= 0) & (ident[b] >= 0)
    correct = known & (ident[a] == ident[b])
    precision = float(correct.sum() / known.sum()) if known.any() else None
    present: dict[int, set[int]] = {}
    for t in np.flatnonzero(linkable & (ident >= 0)):
        present.setdefault(int(t_video[t]), set()).add(int(ident[t]))
    vids = sorted(present)
    possible = sum(len(present[v] & present[w]) for i, v in enumerate(vids) for w in vids[i + 1:]
                   if same_site(video_site, v, w))
    found = {(min(t_video[x], t_video[y]), max(t_video[x], t_video[y]), int(ident[x])) for x, y in zip(a[correct], b[correct])}
    recall = float(len(found) / possible) if possible else None
    return {"precision": precision, "recall": recall, "links_scored": int(known.sum())}


def keep_schedule(start: float, step: float, round_index: int) -> float:
    """The share of candidates kept in link round ``round_index`` (0-based): it grows as
    the model (and so the links) get better, never above 0.9."""
    return float(min(0.9, max(0.0, start + step * round_index)))


def strong_tracklets(a: np.ndarray, b: np.ndarray, rel: np.ndarray, comp: np.ndarray, positive: np.ndarray,
                     frame: np.ndarray, min_reliability: float) -> tuple[Tracklets, np.ndarray]:
    """Tracklets from the pairs at least ``min_reliability`` reliable (human-accepted pairs
    have reliability 1) and the mask of those pairs."""
    strong = np.asarray(positive, bool) & (np.asarray(rel) >= min_reliability)
    return build_tracklets(a[strong], b[strong], rel[strong], comp[strong], positive[strong], frame), strong


def link_pairs(tracklets, links: list[tuple[int, int, float]], a: np.ndarray, b: np.ndarray, rel: np.ndarray,
               comp: np.ndarray, positive: np.ndarray, video: np.ndarray, frame: np.ndarray,
               rng: np.random.Generator, share: float = 0.3, built_from: np.ndarray | None = None):
    """Turn links into training pairs the samplers already understand.

    ``tracklets`` were built from the pairs (``a``, ``b`` rows, ``rel``, ``comp``,
    ``positive``; only those in the mask ``built_from`` when given); ``links`` are (representative row, representative row, weight). Linked
    tracklets form groups (a link that would join two tracklets of one video sharing a
    frame is skipped); every pair of a grouped tracklet takes the group's component id, and
    the links add positive pairs between random members of their two sides, weighted by
    the link, as many as make ``share`` of all pairs (a few links among tens of thousands of
    mined pairs would otherwise hardly be drawn). Both samplers then see one pseudo-tracklet spanning videos: the
    tracklet sampler draws cross-video positives, the pair sampler stops treating the two
    sides as negatives. Returns the new (a, b, rel, comp, positive) and how many links were
    used."""
    resolved = []
    for ra, rb, w in links:
        ta, tb = tracklets.row_tracklets.get(int(ra)), tracklets.row_tracklets.get(int(rb))
        if ta and tb and video[ra] != video[rb]:
            resolved.append((ta[0], tb[0], float(w)))
    if not resolved:
        return a, b, rel, comp, positive, 0
    t_video = np.array([int(video[m[0]]) for m in tracklets.members], np.int64)
    groups = _Groups(t_video, [set(frame[m].tolist()) for m in tracklets.members])
    used = [(ta, tb, w) for ta, tb, w in sorted(resolved, key=lambda x: -x[2]) if groups.union(ta, tb)]
    base = int(np.max(comp, initial=-1)) + 1
    root = np.array([groups.find(t) for t in range(len(tracklets))], np.int64)
    grouped = np.zeros(len(tracklets), bool)
    for ta, tb, _ in used:
        grouped[ta] = grouped[tb] = True
    grouped = np.isin(root, root[grouped])
    comp = np.asarray(comp, np.int64).copy()
    pt = np.full(len(a), -1, np.int64)
    pt[np.ones(len(a), bool) if built_from is None else built_from] = tracklets.pair_tracklet
    on = (pt >= 0) & grouped[np.maximum(pt, 0)]
    comp[on] = base + root[pt[on]]
    per_link = max(4, int(np.ceil(share / max(1.0 - share, 1e-6) * len(a) / len(used))))
    new_a, new_b, new_w, new_c = [], [], [], []
    for ta, tb, w in used:
        ma, mb = tracklets.members[ta], tracklets.members[tb]
        new_a.append(rng.choice(ma, per_link))
        new_b.append(rng.choice(mb, per_link))
        new_w.append(np.full(per_link, w, np.float32))
        new_c.append(np.full(per_link, base + root[ta], np.int64))
    return (np.concatenate([a, *new_a]).astype(np.int64), np.concatenate([b, *new_b]).astype(np.int64),
            np.concatenate([np.asarray(rel, np.float32), *new_w]), np.concatenate([comp, *new_c]),
            np.concatenate([np.asarray(positive, bool), np.ones(per_link * len(used), bool)]), len(used))


def link_tracklets(a: np.ndarray, b: np.ndarray, rel: np.ndarray, comp: np.ndarray, positive: np.ndarray,
                   links: list[tuple[int, int, float]], video: np.ndarray, frame: np.ndarray,
                   rng: np.random.Generator, min_reliability: float = 0.0, share: float = 0.3):
    """``link_pairs`` over the tracklets of these pairs' reliable part (rows of
    ``video``/``frame``), the units a link round linked."""
    tracklets, strong = strong_tracklets(a, b, rel, comp, positive, frame, min_reliability)
    return link_pairs(tracklets, links, a, b, rel, comp, positive, video, frame, rng, share, strong)

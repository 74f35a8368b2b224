"""k-reciprocal re-ranking: shape, sanity on clustered data, and the memory refusal."""

from __future__ import annotations

import numpy as np
import pytest

from idstudio.core import evaluate as ev
from idstudio.core import rerank
from idstudio.core.errors import UserError


def _clustered(seed=0, n_id=12, per=6, d=16, noise=0.9):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_id, d))
    ids = np.repeat(np.arange(1, n_id + 1), per)
    cams = np.tile(np.arange(per), n_id) % 3
    feats = centres[ids - 1] + noise * rng.standard_normal((len(ids), d))
    q = np.arange(len(ids)) % per == 0
    return feats[q], ids[q], cams[q], feats[~q], ids[~q], cams[~q]


def test_rerank_improves_clustered_retrieval():
    qf, qi, qc, gf, gi, gc = _clustered()
    plain = ev.evaluate_features(qf, gf, qi, qc, gi, gc)
    dist = rerank.rerank(qf, gf, k1=6, k2=3)
    assert dist.shape == (len(qf), len(gf)) and np.isfinite(dist).all()
    rr = ev.evaluate_similarity(-dist, qi, qc, gi, gc)
    assert rr.n_queries == plain.n_queries
    # Seeded data: plain mAP 0.70, re-ranked 0.83 (k-reciprocal neighbours pull identities together).
    assert rr.mAP > plain.mAP + 0.05


def test_rerank_refuses_when_memory_would_not_fit():
    qf, qi, qc, gf, gi, gc = _clustered()
    with pytest.raises(UserError, match="without --rerank"):
        rerank.rerank(qf, gf, budget=1000)
    # The estimate is quadratic: a million images can never fit in a laptop's memory.
    with pytest.raises(UserError, match="GiB"):
        rerank.check_fits(3368, 1_000_000, budget=64 << 30)

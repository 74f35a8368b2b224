"""The largest batch that fits: found by trying, and a run out of GPU memory ends in one sentence."""

from __future__ import annotations

import pytest
import torch

from idstudio.core.fit import batch_fits, largest_fitting
from idstudio.core.model import ModelSpec, build_model


@pytest.mark.parametrize("limit", [2, 3, 37, 100, 255])
def test_largest_fitting_finds_the_limit_within_a_few_percent(limit):
    tried = []

    def fits(n):
        tried.append(n)
        return n <= limit
    best = largest_fitting(fits, 256)
    assert best is not None and best <= limit and best >= limit * 0.93
    assert len(tried) <= 14  # halving then bisection, not a scan


def test_largest_fitting_says_none_when_nothing_fits():
    assert largest_fitting(lambda n: False, 64) is None


def test_batch_fits_runs_forward_and_backward_and_leaves_the_weights():
    model, _ = build_model(ModelSpec("resnet18", 16, 32, 16), weights="none", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    model.train()
    assert batch_fits(model, 32, 16, torch.device("cpu"), amp=False)(3)
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)

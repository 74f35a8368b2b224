"""The loss against values computed by hand (τ = 1, 2-d embeddings)."""

from __future__ import annotations

import math

import pytest
import torch

from idstudio.core.losses import reliability_info_nce as loss_fn

I = torch.eye(2)
L1 = 1 - math.log(math.e + 1)  # log softmax of [1, 0] at the 1


def test_identity_pairs():
    assert loss_fn(I, I, tau=1.0).item() == pytest.approx(-L1, abs=1e-6)


def test_weights_normalised_and_symmetric():
    zb = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    w = torch.tensor([1.0, 3.0], requires_grad=True)
    za = I.clone().requires_grad_(True)
    value = loss_fn(za, zb, w, tau=1.0)
    row0 = (math.log(2) + (-L1)) / 2  # a->b: [1,1] ; b->a: [1,0] at 0
    row1 = (math.log(2) + (1 + -L1)) / 2  # b->a: [1,0] at 1 -> log(e+1)
    assert value.item() == pytest.approx(0.25 * row0 + 0.75 * row1, abs=1e-6)
    value.backward()
    assert w.grad is None and za.grad is not None  # stop-gradient weights
    assert loss_fn(I, zb, w * 10, tau=1.0).item() == pytest.approx(value.item(), abs=1e-6)


def test_same_component_masked_out_of_denominator():
    assert loss_fn(I, I, tau=1.0, component=torch.tensor([5, 5])).item() == pytest.approx(0.0, abs=1e-6)
    assert loss_fn(I, I, tau=1.0, component=torch.tensor([5, 6])).item() == pytest.approx(-L1, abs=1e-6)
    assert loss_fn(I, I, tau=1.0, component=torch.tensor([-1, -1])).item() == pytest.approx(-L1, abs=1e-6)


def test_rejected_pair_is_explicit_negative():
    value = loss_fn(I, I, tau=1.0, positive=torch.tensor([True, False]))
    p = math.e / (math.e + 1)
    assert value.item() == pytest.approx((-L1 + -math.log(1 - p)) / 2, abs=1e-5)


def test_extra_negatives_and_temperature():
    extra = torch.tensor([[1.0, 0.0]])
    row0 = math.log(2 * math.e + 1) - 1
    row1 = math.log(math.e + 2) - 1
    assert loss_fn(I, I, tau=1.0, extra=extra).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)
    # τ = 0.5 doubles the logits
    assert loss_fn(I, I, tau=0.5).item() == pytest.approx(math.log(math.exp(2) + 1) - 2, abs=1e-6)

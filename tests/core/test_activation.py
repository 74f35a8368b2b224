"""Activation maps: the channel mean of the last feature map's squared activations, drawn
where the activations are (JET: red strongest); models without a feature map are refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from idstudio.core import activation
from idstudio.core import external_models as xm
from idstudio.core.errors import UserError
from idstudio.core.model import ModelSpec, build_model


class Looker(nn.Module):
    """A model whose last feature map is the image's brightness, pooled 4x."""

    spec = ModelSpec(dim=8, height=64, width=32)

    def feature_map(self, x):
        return nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True).repeat(1, 4, 1, 1), 4)


def test_the_map_is_where_the_activations_are():
    x = torch.zeros(2, 3, 64, 32)
    x[0, :, 4:20, 4:16] = 1.0  # a bright patch high on the left
    x[1, :, 44:60, 16:28] = 1.0  # low on the right
    maps = activation.activation_maps(Looker(), x)
    assert maps.shape == (2, 16, 8) and maps.min() == 0.0 and maps.max() == pytest.approx(1.0)
    assert (maps[0, 1:5, 1:4] == 1.0).all() and maps[0].sum() == 12.0  # the patch, pooled 4x, and nothing else
    assert (maps[1, 11:15, 4:7] == 1.0).all() and maps[1].sum() == 12.0
    crop = np.full((100, 50, 3), 128, np.uint8)  # any crop size: the map is upsampled to it
    jpeg = cv2.imencode(".png", crop)[1].tobytes()
    out = cv2.imdecode(np.frombuffer(activation.overlay_jpegs(Looker(), [jpeg])[0], np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (100, 50, 3)
    # a uniform crop has a flat map: the tint is the same everywhere
    assert np.abs(out.astype(int) - out[50, 25].astype(int)).max() <= 12


def test_own_model_has_a_map_at_its_backbone_resolution():
    model, _ = build_model(ModelSpec(dim=16, height=64, width=32, last_stride=2), weights="none", seed=0)
    maps = activation.activation_maps(model.eval(), torch.rand(3, 3, 64, 32))
    assert maps.shape == (3, 2, 1)  # ResNet-18, stride 32 at 64x32
    assert np.isfinite(maps).all() and (maps.max(axis=(1, 2)) == 1.0).all()


def test_models_without_a_feature_map_are_refused(tmp_path):
    path = tmp_path / "m.ts"
    torch.jit.trace(nn.Flatten(), torch.rand(1, 3, 8, 8)).save(str(path))
    model = xm.open_model(path, xm.ModelCard("torchscript", 8, 8), "flat")
    with pytest.raises(UserError, match="not torchscript"):
        activation.activation_maps(model, torch.rand(1, 3, 8, 8))

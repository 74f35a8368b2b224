"""Models from elsewhere: ONNX through onnxruntime (any batch, a fixed batch in chunks),
TorchScript, the card's preprocessing (colour order, scale, mean/std, letterbox), and the
one-sentence refusals of files that are no model or a model of the wrong shape or NaN."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from idstudio.core import external_models as xm
from idstudio.core.data import decode_crops_uint8
from idstudio.core.errors import UserError


class Tiny(nn.Module):
    """A small conv embedder: (n, 3, H, W) -> (n, 8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def to_onnx(module: nn.Module, path, shape=(2, 3, 32, 16), dynamic=True):
    kwargs = dict(input_names=["x"], output_names=["y"], opset_version=17)
    if dynamic:
        kwargs["dynamic_axes"] = {"x": {0: "n"}, "y": {0: "n"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(*shape),), str(path), dynamo=False, **kwargs)
    return path


def test_onnx_any_batch_and_fixed_batch_in_chunks(tmp_path):
    net = Tiny()
    x = torch.rand(5, 3, 32, 16)
    card = xm.ModelCard("onnx", 32, 16, mean=(0, 0, 0), std=(1, 1, 1))
    with torch.no_grad():
        want = nn.functional.normalize(net(x), dim=1)
    for dynamic, shape in ((True, (2, 3, 32, 16)), (False, (1, 3, 32, 16))):  # batch fixed to 1: run in chunks
        path = to_onnx(net, tmp_path / f"m{dynamic}.onnx", shape, dynamic)
        model = xm.open_model(path, card, "tiny")
        assert xm.detect_kind(path) == "onnx"
        assert xm.probe(model, "tiny") == 8
        got = model(x)
        assert got.shape == (5, 8)
        assert torch.allclose(got, want, atol=1e-5)
        assert xm.onnx_input_size(path) == (32, 16)


class ChannelMeans(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_card_preprocessing_colour_order_scale_and_normalisation(tmp_path):
    path = tmp_path / "means.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(ChannelMeans()).save(str(path))
    assert xm.detect_kind(path) == "torchscript"
    x = torch.zeros(1, 3, 16, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.2, 0.5, 1.0  # RGB
    card = xm.ModelCard("torchscript", 16, 8, mean=(10, 20, 30), std=(2, 4, 5), bgr=True, scale=255)
    model = xm.open_model(path, card, "means")
    raw = model.raw(x)[0].tolist()
    # BGR order, then * 255, then (v - mean) / std
    assert raw == pytest.approx([(255 * 1.0 - 10) / 2, (255 * 0.5 - 20) / 4, (255 * 0.2 - 30) / 5])
    assert model(x).norm(dim=1).item() == pytest.approx(1.0)


def test_letterbox_keeps_aspect_and_pads_with_the_mean_colour():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:] = (0, 0, 255)  # red in BGR; square crop into a 64x32 input
    jpeg = cv2.imencode(".png", img)[1].tobytes()
    card = xm.ModelCard("onnx", 64, 32, resize="letterbox")
    out = decode_crops_uint8([jpeg], card)  # the decoder honours the card
    assert out.shape == (1, 3, 64, 32)
    column = out[0, :, :, 16]
    red_rows = ((column[0] > 200) & (column[2] < 50)).nonzero().flatten()
    assert red_rows.min().item() == 16 and red_rows.max().item() == 47  # 32 rows of the square, centred
    assert tuple(out[0, :, 2, 16].tolist()) == xm.PAD_RGB
    squashed = decode_crops_uint8([jpeg], xm.ModelCard("onnx", 64, 32))
    assert ((squashed[0, 0] > 200).all()).item()


class Image4(nn.Module):
    def forward(self, x):
        return x * 2  # an image, not a vector per image


class NaNs(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)) * float("nan")


class Flat(nn.Module):
    def forward(self, x):
        return x[:, :4]


def test_bad_models_end_in_one_sentence(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("these are my notes, not a model")
    with pytest.raises(UserError, match="is not a model idstudio can read"):
        xm.detect_kind(text)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        xm.detect_kind(tmp_path / "empty.pt")
    card = xm.ModelCard("onnx", 32, 16)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x08\x07garbage that is not protobuf")
    with pytest.raises(UserError, match="onnxruntime cannot load it"):
        xm.open_model(fake, card, "fake")

    flat = to_onnx(Flat(), tmp_path / "flat.onnx", (2, 10))  # input (n, 10): not images
    with pytest.raises(UserError, match=r"takes input \(n, 10\), not images \(n, 3, H, W\)"):
        xm.open_model(flat, card, "flat")
    image = to_onnx(Image4(), tmp_path / "image.onnx")
    with pytest.raises(UserError, match="not one vector per image"):
        xm.probe(xm.open_model(image, card, "image"), "image")
    nan = to_onnx(NaNs(), tmp_path / "nan.onnx")
    with pytest.raises(UserError, match="NaN"):
        xm.probe(xm.open_model(nan, card, "nan"), "nan")
    with pytest.raises(UserError, match="std of 0"):
        xm.ModelCard("onnx", std=(1, 0, 1))


def test_a_pickle_with_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "ran.txt"),))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(UserError, match="weights_only"):
        xm.detect_kind(path)
    assert not (tmp_path / "ran.txt").exists()

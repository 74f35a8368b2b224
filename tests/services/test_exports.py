"""Exports: ONNX and TorchScript loaded back and compared with PyTorch; embeddings .npy + CSV
row for row; rank lists; the self-contained HTML report."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from idstudio import cli
from idstudio.core.model import ModelSpec, build_model
from idstudio.core.store import Project
from idstudio.services import evaluation, exports


@pytest.fixture(scope="module")
def small_model():
    model, _ = build_model(ModelSpec(dim=32, height=64, width=32, last_stride=2), weights="none", seed=1)
    return model.eval()


def test_onnx_roundtrip(small_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = exports.export_onnx(small_model, tmp_path / "m.onnx")
    x = torch.rand(5, 3, 64, 32)  # another batch size than the export's dummy: the axis is dynamic
    with torch.no_grad():
        want = small_model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["embeddings"], {"images": x.numpy()})[0]
    assert got.shape == (5, 32)
    assert np.abs(got - want).max() < 1e-4


def test_torchscript_roundtrip(small_model, tmp_path):
    path = exports.export_torchscript(small_model, tmp_path / "m.ts")
    loaded = torch.jit.load(str(path))
    x = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), small_model(x), atol=1e-5)


def test_embeddings_ranks_and_html(copy_project, tmp_path, capsys):
    root = copy_project()
    out = tmp_path / "emb.npy"
    assert cli.main(["export", str(root), "--checkpoint", "colorhist", "--format", "embeddings", "--out", str(out),
                     "--quiet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    feats = np.load(out)
    rows = list(csv.DictReader(open(info["csv"], encoding="utf-8")))
    assert feats.dtype == np.float32 and len(rows) == len(feats) == info["rows"]
    with Project.open(root) as project:
        d = project.dataset()
        split = project.dataset_split(d["id"])
        ids = np.concatenate([split["query"].id, split["gallery"].id])
        assert [int(r["instance_id"]) for r in rows] == ids.tolist()
        assert [r["split"] for r in rows] == ["query"] * len(split["query"]) + ["gallery"] * len(split["gallery"])
        assert [int(r["identity"]) for r in rows] == np.concatenate(
            [split["query"].identity, split["gallery"].identity]).tolist()
        images = [cv2.cvtColor(cv2.resize(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), (64, 128),
                                          interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                  for j in project.crop_jpegs(ids[:3])]
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
        direct = evaluation.ColorHistogram()(x).numpy()
    assert np.abs(feats[:3] - direct).max() < 2e-3  # row i is instance i (float16 cache)

    ranks = tmp_path / "ranks.csv"
    assert cli.main(["export", str(root), "--checkpoint", "colorhist", "--format", "ranks", "--out", str(ranks),
                     "-k", "5", "--quiet"]) == 0
    rr = list(csv.DictReader(open(ranks, encoding="utf-8")))
    assert len(rr) == 5 * len(split["query"])
    assert {r["status"] for r in rr} <= {"right", "wrong", "ignored"}
    first = [r for r in rr if r["query_id"] == rr[0]["query_id"]]
    assert [int(r["rank"]) for r in first] == [1, 2, 3, 4, 5]
    assert all(float(a["score"]) >= float(b["score"]) for a, b in zip(first, first[1:]))

    report = tmp_path / "report.html"
    assert cli.main(["export", str(root), "--checkpoint", "colorhist", "--format", "html", "--out", str(report),
                     "-k", "4", "--worst", "3", "--quiet"]) == 0
    text = report.read_text(encoding="utf-8")
    assert text.count("data:image/jpeg;base64,") == 3 * (1 + 4)
    assert "src=\"http" not in text and "src='http" not in text  # self-contained
    assert text.count("class=\"right\"") + text.count("class=\"wrong\"") + text.count("class=\"ignored\"") == 12

"""The ISR release (ICCV 2023): a checkpoint built in exactly its layout from timm's random
Swin-B (timm 0.4.12 key names: downsampling at the end of a stage, the persistent
relative_position_index/attn_mask buffers, the 1000-class head; 'state_dict' holding model.*
and feat.*) loads with the key check, embeds to 512-d unit vectors (two identical images:
similarity 1) and evaluates; an ISR-like file with wrong keys is one sentence naming them.

The weights cannot be downloaded here, so the figures are those of a random Swin-B: the
test is about loading, layout and plumbing, not accuracy. Swin-B is big (88M parameters, 224x224):
the checkpoint is built once for the module and the dataset is 2 queries and 6 gallery images."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from idstudio import cli
from idstudio.core import external_models as xm
from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import evaluation

pytestmark = pytest.mark.slow

OLD_DOWNSAMPLE = re.compile(r"layers\.(\d+)\.downsample")


def old_name(key: str) -> str:
    """Current timm name -> timm 0.4.12's (downsampling belonged to the stage before)."""
    return OLD_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)


@pytest.fixture(scope="module")
def isr_state(tmp_path_factory):
    torch.manual_seed(0)
    # a random Swin-B + feat: PyTorch's default init of every layer (timm's own init, 4x slower
    # to run, makes no difference to loading and plumbing)
    net = xm.ISRNet(init=False)
    state = {old_name(k): v for k, v in net.state_dict().items()}
    for name, buf in net.named_buffers():  # persistent in timm 0.4.12
        if name.endswith(("relative_position_index", "attn_mask")) and buf is not None:
            state[old_name(name)] = buf
    state["model.head.weight"] = torch.randn(1000, 1024) * 0.01
    state["model.head.bias"] = torch.zeros(1000)
    assert "model.layers.0.downsample.reduction.weight" in state and "model.layers.3.downsample.norm.weight" not in state
    assert any(k.endswith("attn_mask") for k in state)
    path = tmp_path_factory.mktemp("isr") / "swin_base_patch4_window7_224.pth"
    torch.save({"state_dict": state, "epoch": 80}, path)
    return path, state, net


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory, real_data):
    """2 queries and 6 gallery images of market-sample (their identities kept), and one
    gallery image duplicated under another name: the same pixels twice."""
    src = real_data / "market-sample"
    dst = tmp_path_factory.mktemp("tiny") / "market"
    queries = sorted((src / "query").glob("*.jpg"))[:2]
    ids = {q.name.split("_")[0] for q in queries}
    gallery = [p for i in sorted(ids) for p in sorted((src / "bounding_box_test").glob(f"{i}_*.jpg"))[:2]]
    gallery += sorted(p for p in (src / "bounding_box_test").glob("*.jpg") if p.name.split("_")[0] not in ids
                      and not p.name.startswith("-1"))[:2]
    for part, files in (("query", queries), ("bounding_box_test", gallery)):
        (dst / part).mkdir(parents=True)
        for f in files:
            shutil.copy(f, dst / part / f.name)
    twin = gallery[-1].name.split("_")
    twin[-1] = "99.jpg"
    shutil.copy(gallery[-1], dst / "bounding_box_test" / "_".join(twin))
    from idstudio.services import ingest

    root = dst.parent / "project"
    ingest.import_market(root, dst, name="tiny")
    return root


def test_isr_release_layout_loads_embeds_and_evaluates(isr_state, tiny_market, capsys):
    path, _, net = isr_state
    assert xm.detect_kind(path) == "isr"
    loaded = xm.load_isr(path)
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():  # the loaded weights are the built ones (downsample keys remapped)
        assert torch.allclose(loaded(x), net.eval()(x), atol=1e-4)
    from idstudio.core.activation import activation_maps

    maps = activation_maps(xm.ExternalModel(xm.isr_card(), "isr", net=loaded), x)  # where it looks: the 7x7 tokens
    assert maps.shape == (1, 7, 7) and maps.max() == pytest.approx(1.0)

    capsys.readouterr()
    assert cli.main(["model", "add", str(tiny_market), str(path), "--name", "isr", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = info["card"]
    assert info["kind"] == "isr" and info["assumed"] == []
    assert (card["height"], card["width"], card["resize"], card["dim"], card["bgr"]) == (224, 224, "squash", 512, False)
    assert card["mean"] == pytest.approx([0.485, 0.456, 0.406]) and card["std"] == pytest.approx([0.229, 0.224, 0.225])

    assert cli.main(["eval", str(tiny_market), "--checkpoint", "isr", "--json", "--quiet"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["checkpoint"] == "model:isr" and figures["n_queries"] == 2
    assert 0.0 < figures["mAP"] <= 1.0
    with Project.open(tiny_market) as project:
        split = evaluation.split_of(project)
        model = evaluation.load(project, "isr")
        qf, gf = evaluation.dataset_features(project, model, split)
        feats = np.concatenate([qf, gf]).astype(np.float32)
        assert feats.shape == (9, 512)
        assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=2e-3)
        jpegs = project.crop_jpegs([int(i) for i in split.gallery.id])
    twins = [i for i in range(len(jpegs)) for j in range(len(jpegs)) if i < j and jpegs[i] == jpegs[j]]
    assert len(twins) == 1
    i = twins[0]
    j = next(j for j in range(len(jpegs)) if j != i and jpegs[j] == jpegs[i])
    assert float(gf[i].astype(np.float32) @ gf[j].astype(np.float32)) == pytest.approx(1.0, abs=2e-3)


def test_isr_like_checkpoint_with_wrong_keys_is_one_sentence(isr_state, tmp_path):
    _, state, _ = isr_state
    bad = dict(state)
    bad["model.layers.0.blocks.0.attn.qkv.weight_renamed"] = bad.pop("model.layers.0.blocks.0.attn.qkv.weight")
    bad["feat.weight"] = torch.zeros(256, 1024)  # a 256-d projection: another shape
    path = tmp_path / "isr-like.pth"
    torch.save({"model": bad}, path)  # older copies keep it under 'model'
    with pytest.raises(UserError) as err:
        xm.load_isr(path)
    message = str(err.value)
    assert "missing: model.layers.0.blocks.0.attn.qkv.weight" in message
    assert "unexpected: model.layers.0.blocks.0.attn.qkv.weight_renamed" in message
    assert "of another shape: feat.weight" in message
    assert message.count(".") > 3 and "\n" not in message

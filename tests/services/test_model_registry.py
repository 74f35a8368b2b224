"""The model registry: idstudio's own exports registered without flags evaluate exactly like
their checkpoint; registered models work wherever a checkpoint is chosen (eval, embed,
search, export, mine); a moved or changed file, a name clash and a file that is no model
each end in one sentence, losing nothing stored."""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from idstudio import cli
from idstudio.core import embed as core_embed
from idstudio.core.model import ModelSpec, build_model, save_checkpoint
from idstudio.core.store import Project
from idstudio.services import evaluation, model_registry


def run_cli(args, capsys):
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def market(tmp_path_factory, real_data):
    """market-sample imported, an idstudio checkpoint (a seeded ResNet-18 at 128x64) and its
    ONNX and TorchScript exports made by `idstudio export`."""
    from idstudio.services import ingest

    base = tmp_path_factory.mktemp("registry")
    root = base / "market"
    ingest.import_market(root, real_data / "market-sample", name="market-sample")
    model, _ = build_model(ModelSpec(), weights="none", seed=3)
    ckpt = save_checkpoint(base / "own.pt", model)
    for fmt, name in (("onnx", "own.onnx"), ("torchscript", "own.ts")):
        assert cli.main(["export", str(root), "--checkpoint", str(ckpt), "--format", fmt, "--out", str(base / name),
                         "--quiet"]) == 0
    return {"root": root, "ckpt": ckpt, "onnx": base / "own.onnx", "ts": base / "own.ts", "base": base}


def test_own_exports_register_without_flags_and_evaluate_like_the_checkpoint(market, capsys):
    root = market["root"]
    for name, key in (("own-onnx", "onnx"), ("own-ts", "ts")):
        code, out, err = run_cli(["model", "add", root, market[key], "--name", name, "--json"], capsys)
        assert code == 0, err
        info = last_json(out)
        assert info["kind"] == ("onnx" if key == "onnx" else "torchscript")
        card = info["card"]
        assert (card["height"], card["width"], card["dim"], card["resize"]) == (128, 64, 256, "squash")
        assert card["mean"] == [0, 0, 0] and card["std"] == [1, 1, 1]  # normalisation is inside the export
        assert info["assumed"] == []  # every field came from the card inside the file
    figures = {}
    for ref in (market["ckpt"], "own-onnx", "model:own-ts"):
        code, out, err = run_cli(["eval", root, "--checkpoint", ref, "--json", "--quiet"], capsys)
        assert code == 0, err
        figures[str(ref)] = last_json(out)
    want = figures[str(market["ckpt"])]
    assert want["n_queries"] == 3
    for ref in ("own-onnx", "model:own-ts"):
        got = figures[ref]
        assert got["checkpoint"] == "model:" + ref.removeprefix("model:")
        assert abs(got["mAP"] - want["mAP"]) < 1e-4
        for k in ("rank1", "rank5", "rank10", "mINP", "n_queries", "n_skipped"):
            assert got[k] == pytest.approx(want[k], abs=1e-4), k
    # Cached per model (name + file hash), and the vectors themselves agree.
    with Project.open(root) as project:
        split = evaluation.split_of(project)
        feats = {}
        for ref in (str(market["ckpt"]), "own-onnx", "own-ts"):
            loaded = evaluation.load(project, ref)
            feats[ref] = np.asarray(evaluation.dataset_features(project, loaded, split)[1], np.float32)
            if ref != str(market["ckpt"]):
                row = model_registry.get(project, ref)
                assert loaded.cache_key == f"model:{ref}@{row['sha256'][:16]}"
                assert core_embed.load_cached(project, loaded.cache_key, f"dataset-{split.dataset['id']}-market-sample")
        for ref in ("own-onnx", "own-ts"):
            assert np.abs(feats[ref] - feats[str(market["ckpt"])]).max() < 2e-3
    code, out, _ = run_cli(["model", "list", root, "--json"], capsys)
    assert [m["name"] for m in last_json(out)["models"]] == ["own-onnx", "own-ts"]


def test_a_registered_model_wherever_a_checkpoint_is_chosen(market, capsys, tmp_path):
    root = market["root"]
    assert run_cli(["model", "add", root, market["onnx"], "--name", "x"], capsys)[0] == 0
    code, out, err = run_cli(["embed", root, "--checkpoint", "x", "--index", "--json", "--quiet"], capsys)
    assert code == 0, err
    emb = last_json(out)
    assert emb["checkpoint"] == "model:x" and emb["dim"] == 256 and emb["n"] == 63
    code, out, err = run_cli(["search", root, "--checkpoint", "x", "--instance", "1", "-k", "5", "--json", "--quiet"],
                             capsys)
    assert code == 0, err
    hits_x = [h["instance_id"] for h in last_json(out)["results"][0]["hits"]]
    code, out, _ = run_cli(["search", root, "--checkpoint", market["ckpt"], "--instance", "1", "-k", "5", "--json",
                            "--quiet"], capsys)
    assert hits_x == [h["instance_id"] for h in last_json(out)["results"][0]["hits"]]
    ranks = {}
    for ref in ("x", market["ckpt"]):
        out_csv = tmp_path / f"ranks-{Path(str(ref)).name}.csv"
        code, out, err = run_cli(["export", root, "--checkpoint", ref, "--format", "ranks", "--out", out_csv, "--json",
                                  "--quiet"], capsys)
        assert code == 0, err
        ranks[str(ref)] = [(r["query_id"], r["gallery_id"]) for r in csv.DictReader(open(out_csv, encoding="utf-8"))]
    assert ranks["x"] == ranks[str(market["ckpt"])] and len(ranks["x"]) == 30
    code, out, err = run_cli(["export", root, "--checkpoint", "x", "--format", "html", "--out", tmp_path / "r.html",
                              "--json", "--quiet"], capsys)
    assert code == 0, err
    assert "model:x" in (tmp_path / "r.html").read_text(encoding="utf-8")
    code, out, err = run_cli(["export", root, "--checkpoint", "x", "--format", "embeddings", "--out",
                              tmp_path / "e.npy", "--json", "--quiet"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "e.npy").shape == (63, 256)
    code, out, err = run_cli(["export", root, "--checkpoint", "x", "--format", "onnx", "--out", tmp_path / "y.onnx"],
                             capsys)
    assert code == 2 and "model from elsewhere" in err


class Plain(nn.Module):
    """A model from elsewhere: normalised input expected, no card inside."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 16, 3, stride=2)

    def forward(self, x):
        return self.conv(x).amax(dim=(2, 3))


def foreign_onnx(path: Path, fixed: tuple[int, int] | None = None) -> Path:
    h, w = fixed or (64, 32)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    if fixed is None:
        axes["input"].update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Plain().eval(), (torch.rand(2, 3, h, w),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def test_foreign_file_gets_the_stated_defaults_or_the_flags(tmp_path, capsys):
    root = tmp_path / "p"
    Project.create(root).close()
    free = foreign_onnx(tmp_path / "free.onnx")
    code, out, err = run_cli(["model", "add", root, free, "--json"], capsys)
    assert code == 0, err
    info = last_json(out)
    assert info["name"] == "free" and info["card"]["dim"] == 16
    assert (info["card"]["height"], info["card"]["width"]) == (256, 128)
    assert info["card"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert sorted(info["assumed"]) == ["colour", "input", "normalisation", "resize"]
    assumed_lines = [line.split()[0] for line in out.splitlines() if "default, assumed" in line]
    assert assumed_lines == ["input", "colour", "normalisation"]  # shown before the first evaluation
    code, out, err = run_cli(["model", "add", root, free, "--name", "flags", "--input", "128x48", "--resize",
                              "letterbox", "--mean", "0", "0", "0", "--std", "1", "1", "1", "--scale", "255", "--bgr",
                              "--json"], capsys)
    assert code == 0, err
    card = last_json(out)["card"]
    assert (card["height"], card["width"], card["resize"], card["scale"], card["bgr"]) == (128, 48, "letterbox", 255, True)
    assert last_json(out)["assumed"] == []
    fixed = foreign_onnx(tmp_path / "fixed.onnx", fixed=(96, 48))
    code, out, err = run_cli(["model", "add", root, fixed, "--json"], capsys)
    assert code == 0 and last_json(out)["card"]["height"] == 96
    code, _, err = run_cli(["model", "add", root, fixed, "--name", "f2", "--input", "256x128"], capsys)
    assert code == 2 and "takes 96x48 images, not 256x128" in err


def test_names_and_files_refused_in_one_sentence(tmp_path, capsys):
    root = tmp_path / "p"
    Project.create(root).close()
    free = foreign_onnx(tmp_path / "m.onnx")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    cases = [
        (["model", "add", root, notes], "notes.txt is not a model idstudio can read"),
        (["model", "add", root, free, "--name", "init"], "built-in checkpoint name"),
        (["model", "add", root, free, "--name", "a b"], "cannot be a model name"),
        (["model", "add", root, free, "--input", "big"], "is not HxW"),
        (["eval", root, "--checkpoint", "model:nothing"], "No model named 'nothing' is registered"),
    ]
    assert run_cli(["model", "add", root, free], capsys)[0] == 0
    cases.append((["model", "add", root, free], "already registered"))
    for args, message in cases:
        code, out, err = run_cli(args, capsys)
        assert code == 2, args
        assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    with Project.open(root) as project:
        assert [m["name"] for m in model_registry.list_models(project)] == ["m"]


def test_moved_or_changed_file_is_refused_and_nothing_stored_is_lost(market, tmp_path, capsys):
    root = market["root"]
    path = tmp_path / "mine.onnx"
    shutil.copy(market["onnx"], path)
    assert run_cli(["model", "add", root, path, "--name", "mine"], capsys)[0] == 0
    code, out, err = run_cli(["eval", root, "--checkpoint", "mine", "--json", "--quiet"], capsys)
    assert code == 0, err
    first = last_json(out)
    os.utime(path, ns=(1, 1))  # touched, not changed: the hash says it is the same file
    code, out, err = run_cli(["eval", root, "--checkpoint", "mine", "--json", "--quiet"], capsys)
    assert code == 0 and last_json(out)["mAP"] == first["mAP"]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    code, _, err = run_cli(["eval", root, "--checkpoint", "mine", "--quiet"], capsys)
    assert code == 2 and "changed since it was registered" in err
    path.rename(tmp_path / "elsewhere.onnx")
    code, _, err = run_cli(["search", root, "--checkpoint", "mine", "--instance", "1", "--quiet"], capsys)
    assert code == 2 and "is gone from" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(["model", "show", root, "mine", "--json"], capsys)
    assert code == 0 and "is gone from" in last_json(out)["file"]
    with Project.open(root) as project:  # the evaluations made before are kept
        assert any(r["checkpoint"] == "model:mine" for r in evaluation.evaluations(project))


def test_mine_with_a_registered_model(copy_project, tmp_path, capsys):
    root = copy_project()
    model, _ = build_model(ModelSpec(dim=32, height=32, width=16, last_stride=2), weights="none", seed=5)
    ckpt = save_checkpoint(tmp_path / "teacher.pt", model)
    assert cli.main(["export", str(root), "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                     str(tmp_path / "teacher.onnx"), "--quiet"]) == 0
    assert run_cli(["model", "add", root, tmp_path / "teacher.onnx", "--name", "teacher"], capsys)[0] == 0
    rounds = {}
    for ref in ("teacher", ckpt):
        code, out, err = run_cli(["mine", root, "--checkpoint", ref, "--gaps", "1,4", "--json"], capsys)
        assert code == 0, err
        rounds[str(ref)] = last_json(out)
    got, want = rounds["teacher"], rounds[str(ckpt)]
    assert got["checkpoint"] == "model:teacher" and got["n_pairs"] > 0
    # the same network through onnxruntime mines the same pairs (up to float ties)
    assert abs(got["n_pairs"] - want["n_pairs"]) <= max(2, 0.01 * want["n_pairs"])
    assert got["precision"] == pytest.approx(want["precision"], abs=0.01)
    with Project.open(root) as project:
        row = project.query("SELECT checkpoint FROM mining_rounds WHERE id = ?", (got["round_id"],))[0]
        assert row["checkpoint"] == "model:teacher"

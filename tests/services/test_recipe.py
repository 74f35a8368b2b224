"""One resolution of a run's auto fields (services.recipe): what `train --dry-run` prints is what
the run records in config.json, and `mine --checkpoint init` starts where training starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from idstudio.core import config as cfgmod
from idstudio.core.store import Project
from idstudio.services import recipe
from idstudio.services.mining import MineConfig
from idstudio.services.train_config import TrainConfig


def _cli_json(capsys, argv: list[str]) -> dict:
    from idstudio.cli import main

    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_resolution_on_the_synthetic_world_names_the_recipe_and_why(small_project):
    with Project.open(small_project) as project:
        res = recipe.resolve_train(project, TrainConfig())
        # the synthetic world's cameras have colour casts: colour loses, the cross-camera recipe runs
        assert res.recipe == "cross-camera" and res.config.colour == "off"
        assert (res.config.arch, res.config.height, res.config.width) == ("resnet18", 64, 32)
        assert res.values["arch"] == "resnet18" and "synthetic-heldout" in res.reasons["arch"]
        assert res.values["augment"] == 1.0 and res.values["background_mix"] == 0.0
        assert res.values["weights"] in ("imagenet", "none") and res.reasons["weights"]
        # fields given on purpose are never replaced by the recipe
        given = recipe.resolve_train(project, TrainConfig(arch="mobilenet_v2", height=96, width=48),
                                     given={"arch": "mobilenet_v2", "height": 96, "width": 48})
        assert (given.config.arch, given.config.height) == ("mobilenet_v2", 96) and "arch" not in given.values
        # a fixed colour setting needs no evaluation and takes no recipe
        on = recipe.resolve_train(project, TrainConfig(colour="on"))
        assert on.recipe == "default" and on.config.arch == "mobilenet_v2" and on.values["augment"] == 0.3
        # the mining form's init model is training's start
        mine = recipe.mine_resolution(project, MineConfig())
        assert (mine.values["arch"], mine.values["height"], mine.values["width"]) == ("resnet18", 64, 32)


def test_the_colour_decision_is_cached_per_data_version(small_project, monkeypatch):
    with Project.open(small_project) as project:
        recipe.resolve_train(project, TrainConfig())
        calls = []
        monkeypatch.setattr("idstudio.services.recipe.dataset_evaluator", lambda *a: calls.append(a) or (None, []))
        assert recipe.resolve_train(project, TrainConfig()).recipe == "cross-camera"
        assert calls == []  # same data: cached
        monkeypatch.setattr(recipe, "data_version", lambda p: ("changed",))
        assert recipe.resolve_train(project, TrainConfig()).recipe == "real-video"  # no datasets any more: colour on
        assert len(calls) == 1


def test_choosers_checks_say_one_sentence(small_project, tmp_path):
    assert recipe.check_weights("auto") is None and recipe.check_weights("none") is None
    assert "no file" in recipe.check_weights(str(tmp_path / "missing.pth"))
    (tmp_path / "w.pth").write_bytes(b"x")
    assert recipe.check_weights(str(tmp_path / "w.pth")) is None
    with Project.open(small_project) as project:
        assert recipe.check_start(project, "") is None
        message = recipe.check_start(project, "no-such-run")
        assert message and message.endswith(".") and "run id" in message
        assert "empty" in recipe.check_start(project, "init")


def test_special_words_on_the_cli():
    import argparse

    parser = argparse.ArgumentParser()
    cfgmod.add_arguments(parser, TrainConfig)
    cfg = cfgmod.build(TrainConfig, None, parser.parse_args(["--augment", "auto", "--workers", "auto",
                                                             "--remine-every", "never"]))
    assert (cfg.augment, cfg.workers, cfg.remine_every) == (-1.0, -1, 0)
    assert cfgmod.build(TrainConfig, None, parser.parse_args(["--augment", "0.5"])).augment == 0.5


def test_dry_run_is_what_the_run_records_and_mine_init_starts_like_train(copy_project, capsys):
    root = str(copy_project())
    dry = _cli_json(capsys, ["train", root, "--dry-run", "--json", "--epochs", "1", "--steps-per-epoch", "2",
                             "--eval-every", "0", "--device", "cpu"])
    assert dry["recipe"] == "cross-camera" and dry["config"]["arch"] == "resnet18"
    mined = _cli_json(capsys, ["mine", root, "--checkpoint", "init", "--json", "--device", "cpu"])
    trained = _cli_json(capsys, ["train", root, "--json", "--epochs", "1", "--steps-per-epoch", "2",
                                 "--eval-every", "0", "--device", "cpu"])
    saved = json.loads((Project.open(root).runs_dir / trained["run_id"] / "config.json").read_text())
    assert {k: saved[k] for k in dry["config"]} == dry["config"]
    assert saved["recipe"] == dry["recipe"] and saved["auto"]["arch"] == dry["auto"]["arch"]
    with Project.open(root) as project:
        first = project.query("SELECT id FROM mining_rounds WHERE run_id = ? ORDER BY id LIMIT 1",
                              (trained["run_id"],))[0]["id"]

        def pairs(round_id):
            rows = project.query("SELECT a, b, reliability FROM pairs WHERE round_id = ? ORDER BY a, b", (round_id,))
            return np.array([(r["a"], r["b"]) for r in rows]), np.array([r["reliability"] for r in rows])

        (ab_mine, rel_mine), (ab_train, rel_train) = pairs(mined["round_id"]), pairs(first)
    assert len(ab_mine) == mined["n_pairs"] > 100
    assert np.array_equal(ab_mine, ab_train)
    assert rel_mine == pytest.approx(rel_train, abs=1e-4)


def test_mining_from_a_trained_checkpoint_shows_no_init_fields(small_project, tmp_path):
    from idstudio.core.model import ModelSpec, build_model, save_checkpoint

    model, _ = build_model(ModelSpec("resnet18", 32, 64, 32), weights="none")
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=1, metrics={})
    with Project.open(small_project) as project:
        res = recipe.mine_resolution(project, MineConfig(checkpoint=str(path)))
    assert res.recipe == "checkpoint" and res.values == {"spatial_gate": "off"} and "trained" in res.reasons["spatial_gate"]

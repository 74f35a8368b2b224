"""Mining and training jobs on the small synthetic project (tiny model, seconds)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from idstudio.core import config as cfgmod
from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.jobs import JobContext, read_events
from idstudio.core.model import ModelSpec, build_model, save_checkpoint
from idstudio.core.store import Project
from idstudio.services import mining, rounds, train_config, training
from idstudio.services.train_config import TrainConfig
from idstudio.services.mining import MineConfig

TINY = dict(arch="resnet18", dim=32, height=64, width=32, epochs=1, steps_per_epoch=3, batch_size=16,
            warmup_steps=1, remine_every=0, device="cpu", workers=0, colour="off")


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


def test_mine_stores_round_and_exports(copy_project, tmp_path):
    root = copy_project()
    result = mining.mine(root, MineConfig(dim=32))
    assert result["n_pairs"] > 100 and result["gate"] is True
    assert result["precision"] >= 0.9 and 0 < result["recall"] <= 1
    with Project.open(root) as p:
        row = p.query("SELECT * FROM mining_rounds WHERE id = ?", (result["round_id"],))[0]
        assert row["n_pairs"] == result["n_pairs"] == p.count("pairs", "round_id = ?", (result["round_id"],))
        assert row["checkpoint"] == "init" and json.loads(row["params"])["spatial_gate"] is True
        a, b = p.query("SELECT a, b FROM pairs LIMIT 1")[0]
        from idstudio.services import review
        review.decide(p, [(a, b)], "reject")
    out = mining.export_pairs(root, tmp_path / "pairs.csv")
    rows = list(csv.DictReader(open(tmp_path / "pairs.csv")))
    assert len(rows) == out["pairs"] == result["n_pairs"]
    assert {"video", "frame_a", "x_a", "w_b", "similarity", "reliability", "review"} <= set(rows[0])
    assert [r["review"] for r in rows if r["review"]] == ["reject"]


def test_reviews_override_pairs():
    a, b = np.array([1, 3]), np.array([2, 4])
    a2, b2, w, comp, pos = rounds.apply_reviews(a, b, np.array([0.3, 0.5]), np.array([0, 1]),
                                                  {(1, 2): "accept", (3, 4): "reject", (7, 9): "accept"})
    assert list(w) == [1.0, 1.0, 1.0] and list(pos) == [True, False, True]
    assert list(a2) == [1, 3, 7] and comp[1] == -1


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, small_project):
    """The small project after one finished tiny run: trained once for the tests that then
    resume or crash it, each on its own copy (``after_one_epoch``)."""
    import shutil

    root = tmp_path_factory.mktemp("one-epoch") / "proj"
    shutil.copytree(small_project, root)
    return root, training.train(root, tiny(), JobContext())


@pytest.fixture
def after_one_epoch(one_epoch, tmp_path):
    import shutil

    root, summary = one_epoch
    shutil.copytree(root, tmp_path / "proj")
    return tmp_path / "proj", summary


@pytest.mark.slow
def test_train_resume_and_figures(after_one_epoch):
    root, summary = after_one_epoch
    assert summary["status"] == "finished" and summary["epochs_done"] == 1
    assert summary["mAP_start"] is not None and summary["mAP_end"] is not None
    assert summary["precision"] >= 0.9
    run_dir = root / "runs" / summary["run_id"]
    assert (run_dir / "last.pt").is_file() and (run_dir / "best.pt").is_file() and (run_dir / "config.json").is_file()
    names = {e.get("name") for e in read_events(run_dir / "metrics.jsonl")}
    assert {"train/loss", "eval/mAP", "mine/precision"} <= names
    again = training.train(root, tiny(epochs=2), JobContext(), resume=summary["run_id"])
    assert again["run_id"] == summary["run_id"] and again["epochs_done"] == 2
    with Project.open(root) as p:
        assert p.scalar("SELECT epochs_done FROM runs WHERE id = ?", (summary["run_id"],)) == 2
        assert p.count("checkpoints", "run_id = ?", (summary["run_id"],)) == 2


def _stop_after(n, action):
    ctx = JobContext()
    seen = {"n": 0}

    def sink(event):
        if event["type"] == "progress" and event["message"].startswith("epoch"):
            seen["n"] += 1
            if seen["n"] == n:
                getattr(ctx, action)()

    ctx.add_sink(sink)
    return ctx


@pytest.mark.slow
def test_stop_mid_epoch_keeps_and_resumes_exactly(copy_project):
    root = copy_project()
    summary = training.train(root, tiny(steps_per_epoch=4), _stop_after(2, "request_stop"))
    assert summary["status"] == "stopped" and summary["epochs_done"] == 0
    run_dir = root / "runs" / summary["run_id"]
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    assert payload["step"] == 2 and payload["epoch"] == 0
    done = training.train(root, tiny(steps_per_epoch=4), JobContext(), resume=summary["run_id"])
    assert done["status"] == "finished" and done["epochs_done"] == 1


@pytest.mark.slow
def test_cancel_discards_run(copy_project):
    root = copy_project()
    with pytest.raises(JobCancelled):
        training.train(root, tiny(), _stop_after(1, "cancel"))
    with Project.open(root) as p:
        (run_id, status), = p.query("SELECT id, status FROM runs")
        assert status == "cancelled" and p.count("checkpoints") == 0
    assert not list((root / "runs" / run_id).glob("*.pt"))


@pytest.mark.slow
def test_crash_mid_epoch_keeps_last_checkpoint(after_one_epoch):
    root, first = after_one_epoch
    ctx = JobContext()

    def boom(event):
        if event["type"] == "progress" and event["message"].startswith("epoch 2"):
            raise KeyboardInterrupt  # a kill mid-epoch
    ctx.add_sink(boom)
    with pytest.raises(KeyboardInterrupt):
        training.train(root, tiny(epochs=2), ctx, resume=first["run_id"])
    payload = torch.load(root / "runs" / first["run_id"] / "last.pt", weights_only=True)
    assert payload["epoch"] == 1
    done = training.train(root, tiny(epochs=2), JobContext(), resume=first["run_id"])
    assert done["epochs_done"] == 2


def test_bad_input(tmp_path, copy_project):
    empty = tmp_path / "empty"
    Project.create(empty).close()
    with pytest.raises(UserError, match="no instances"):
        mining.mine(empty, MineConfig())
    with pytest.raises(UserError, match="no instances"):
        training.train(empty, tiny())
    root = copy_project()
    with pytest.raises(UserError, match="larger than the"):
        training.train(root, tiny(batch_size=100000))
    with pytest.raises(UserError, match="No pairs"):
        training.train(root, tiny(min_similarity=2.0))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        training.train(root, tiny(init=str(bad)))
    other, _ = build_model(ModelSpec("resnet34", dim=32, height=64, width=32), weights="none")
    save_checkpoint(tmp_path / "r34.pt", other)
    with pytest.raises(UserError, match="resnet34"):
        training.train(root, tiny(init=str(tmp_path / "r34.pt")))
    with Project.open(root) as p:
        assert p.count("instances") > 0  # nothing lost


@pytest.mark.slow
def test_cli_json(copy_project, tmp_path):
    from idstudio.cli import main

    root = copy_project()
    assert main(["mine", str(root), "--dim", "32", "--json"]) == 0
    assert main(["pairs", "export", str(root), "--out", str(tmp_path / "p.csv")]) == 0
    assert main(["train", str(root), "--dim", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
                 "--remine-every", "0", "--json"]) == 0
    assert main(["train", str(tmp_path / "nope")]) == 2


@pytest.mark.slow
def test_torchrun_two_cpu_processes(copy_project):
    root = copy_project()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "idstudio",
           "train", str(root), "--dim", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
           "--remine-every", "0", "--device", "cpu", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["world_size"] == 2 and result["epochs_done"] == 1
    with Project.open(root) as p:
        assert p.count("mining_rounds") == 1 and p.query("SELECT status FROM runs")[0][0] == "finished"


@pytest.mark.slow
def test_training_raises_heldout_cross_camera_map(tmp_path):
    """The method's promise on a mid-sized world (3 cameras): mining from a random start,
    training with camera-like augmentation and one re-mining round raise the held-out
    cross-camera mAP well above the untrained model's (about 1.6x here in ~70 s on 2 cores;
    without augmentation it falls to about 0.6x), and re-mining finds more true pairs."""
    from idstudio.core import synth
    from idstudio.services import ingest

    world = synth.generate(tmp_path / "world", synth.SynthConfig(
        seed=0, n_cameras=3, n_frames=150, n_video_ids=20, n_eval_ids=20, cams_per_id=(2, 3), passes_per_cam=0,
        views_per_cam=(2, 3), n_distractors=20, n_junk=4))
    ingest.import_world(tmp_path / "proj", world)
    # steps and batch given explicitly, away from the defaults: the cross-camera recipe only
    # raises fields left at their defaults (to 60 steps of 64), which would triple the cost.
    cfg = TrainConfig(epochs=4, steps_per_epoch=42, batch_size=30, warmup_steps=10, remine_every=2, device="cpu",
                      workers=0)
    summary = training.train(tmp_path / "proj", cfg, JobContext())
    assert summary["mAP_end"] >= 1.3 * summary["mAP_start"], summary
    first, second = summary["rounds"]
    assert first["gate"] and not second["gate"]
    # After only 80 steps on this small world the ungated round trades a little precision for recall;
    # on the demo world (300 steps) it keeps >= 0.95 (README, Training figures).
    assert first["precision"] >= 0.95 and second["precision"] >= 0.9, summary["rounds"]
    assert second["recall"] > first["recall"], summary["rounds"]


def test_mine_and_train_share_one_copy_of_the_mining_fields():
    import dataclasses

    from idstudio.core import config as cfgmod

    mining = [f.name for f in dataclasses.fields(train_config.MiningFields)]
    for cls in (MineConfig, TrainConfig):
        ordered = cfgmod.ordered_fields(cls)
        groups = [f.metadata["group"] for f in ordered]
        assert groups == sorted(groups, key=cls.GROUPS.index) and groups[0] == "Model"  # the form's order
        assert [f.name for f in ordered if f.metadata["group"] == "Mining"] == mining


def test_colour_auto_is_decided_by_the_labelled_data_and_recorded(copy_project):
    """On the synthetic world, per-camera colour casts make colour useless: auto turns the
    colour part off, says why in the log, and config.json records the choice and the start."""
    root = copy_project()
    ctx = JobContext()
    logs: list[str] = []
    ctx.add_sink(lambda e: logs.append(e["message"]) if e.get("type") == "log" else None)
    summary = training.train(root, tiny(colour="auto", weights="none"), ctx)
    line = next(m for m in logs if m.startswith("Colour part:"))
    assert "auto" in line and "colour histogram reaches mAP" in line
    saved = json.loads((root / "runs" / summary["run_id"] / "config.json").read_text())
    assert saved["colour"] in ("on", "off") and saved["colour"] in line
    assert saved["start"].startswith("Start: random initialisation of resnet18")
    with Project.open(root) as project:
        from idstudio.services.evaluation import ColorHistogram, evaluate_model

        colour = evaluate_model(project, ColorHistogram())["mAP"]
        deep = evaluate_model(project, build_model(tiny().spec(colour=False), weights="none")[0])["mAP"]
    assert saved["colour"] == ("on" if colour >= deep else "off")
    strength, mix = training.augmentation(cfgmod.from_dict(TrainConfig, saved))
    assert f"Augmentation: camera-like changes {strength:g}, backgrounds mixed into {mix:.0%} of the crops (auto)." in logs
    if saved["colour"] == "off":  # the cross-camera recipe fills the fields the run did not give
        assert "Cross-camera recipe" in line
        assert saved["sampler"] == "pairs" and saved["freeze"] == 0.0 and saved["lr"] == 1e-3
        assert saved["epochs"] == TINY["epochs"] and saved["batch_size"] == TINY["batch_size"]  # given: kept


def test_augmentation_auto_mixes_backgrounds_on_real_video_only():
    """Real video (colour part on): mild camera changes and half the crops with another crop's
    surroundings; across cameras (colour off): strong changes, no mixing; given values kept."""
    assert training.augmentation(TrainConfig(colour="on")) == (0.3, 0.5)
    assert training.augmentation(TrainConfig(colour="off")) == (1.0, 0.0)
    assert training.augmentation(TrainConfig(colour="on", augment=0.0, background_mix=0.0)) == (0.0, 0.0)
    assert training.augmentation(TrainConfig(colour="off", background_mix=0.25)) == (1.0, 0.25)


def test_worker_processes_train_across_epochs_and_a_remining(copy_project):
    """With DataLoader workers, one loader serves every epoch and the pairs of a new mining round."""
    root = copy_project()
    summary = training.train(root, tiny(epochs=2, remine_every=1, workers=1, sampler="tracklet"), JobContext())
    assert summary["epochs_done"] == 2 and len(summary["rounds"]) == 2
    events = read_events(root / "runs" / summary["run_id"] / "metrics.jsonl")
    assert len([e for e in events if e.get("type") == "metric" and e.get("name") == "train/epoch_loss"]) == 2

"""Training bookkeeping that survives a kill: resume keeps the saved settings, a run lock,
'interrupted' status, metrics without duplicated steps, no leftover temporary files, and
seeded CPU training that repeats, so kill + resume ends with the weights of an
uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from idstudio.core import runs as runbook
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext, read_events
from idstudio.core.store import Project
from idstudio.services import ingest, training
from idstudio.services.train_config import TrainConfig

TINY = dict(arch="resnet18", dim=16, height=32, width=16, epochs=2, steps_per_epoch=2, batch_size=8,
            warmup_steps=1, remine_every=0, device="cpu", workers=0, eval_every=0, gaps=[3, 6])


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory, small_world):
    """One camera of the small world, every third frame, no labelled set: mining and a few
    steps of a tiny model take seconds."""
    root = tmp_path_factory.mktemp("tinyproj") / "p"
    cam = small_world.cameras[0]
    ingest.import_video(root, cam.video, det_file=cam.det, gt_file=cam.gt, stride=3)
    return root


@pytest.fixture
def project(tiny_project, tmp_path):
    import shutil

    dest = tmp_path / "p"
    shutil.copytree(tiny_project, dest)
    return dest


def weights(root, run_id, name="last.pt"):
    return torch.load(root / "runs" / run_id / name, weights_only=True)["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _crash_in_epoch(n: int) -> JobContext:
    ctx = JobContext()

    def boom(event):
        if event["type"] == "progress" and event["message"].startswith(f"epoch {n}") and event["done"] == 1:
            raise KeyboardInterrupt  # as a kill would, mid-epoch
    ctx.add_sink(boom)
    return ctx


def test_seeded_cpu_training_repeats_and_another_seed_differs(project):
    first = training.train(project, tiny(epochs=1), JobContext())
    second = training.train(project, tiny(epochs=1), JobContext())
    other = training.train(project, tiny(epochs=1, seed=1), JobContext())
    assert same_weights(weights(project, first["run_id"]), weights(project, second["run_id"]))
    assert not same_weights(weights(project, first["run_id"]), weights(project, other["run_id"]))


def test_crash_and_resume_end_with_the_weights_of_an_uninterrupted_run(project):
    whole = training.train(project, tiny(), JobContext())
    with pytest.raises(KeyboardInterrupt):
        training.train(project, tiny(), _crash_in_epoch(2))
    with Project.open(project) as p:  # the crashed run is a fresh run id, status failed
        crashed = p.query("SELECT id FROM runs WHERE id != ? ORDER BY created_at DESC LIMIT 1", (whole["run_id"],))[0][0]
    done = training.resume(project, crashed, JobContext())
    assert done["epochs_done"] == 2 and done["run_id"] == crashed
    assert same_weights(weights(project, whole["run_id"]), weights(project, crashed))
    # and the metrics file reads as one uninterrupted run: no duplicated or backward steps
    series = {}
    for e in read_events(project / "runs" / crashed / "metrics.jsonl"):
        if e["type"] == "metric":
            series.setdefault(e["name"], []).append(e["step"])
    assert series["train/loss"] and all(all(a < b for a, b in zip(s, s[1:])) for s in series.values()), series
    uninterrupted = [e["step"] for e in read_events(project / "runs" / whole["run_id"] / "metrics.jsonl")
                     if e.get("name") == "train/loss"]
    assert series["train/loss"] == uninterrupted


def test_resume_keeps_the_saved_settings_changes_only_what_is_given_and_cleans_up(project):
    first = training.train(project, tiny(epochs=1, max_minutes=5.0), JobContext())
    run_id, run_dir = first["run_id"], project / "runs" / first["run_id"]
    again = training.train(project, None, JobContext(), resume=run_id, changes={})
    assert again["epochs_done"] == 1  # nothing to do: it was configured for 1 epoch
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["max_minutes"] == 5.0
    ctx = JobContext()
    logs = []
    ctx.add_sink(lambda e: logs.append(e.get("message", "")) if e["type"] == "log" else None)
    (run_dir / ".best.pt.999999.tmp").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves
    more = training.train(project, None, ctx, resume=run_id, changes={"epochs": 2})
    assert more["epochs_done"] == 2
    assert not list(run_dir.glob(".*.tmp"))
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["max_minutes"] == 5.0 and saved["dim"] == 16
    assert "Resume changes epochs 1 -> 2 (saved in config.json)." in logs
    with Project.open(project) as p:
        row = json.loads(p.scalar("SELECT config FROM runs WHERE id = ?", (run_id,)))
        assert row["epochs"] == 2 and row["max_minutes"] == 5.0
    with pytest.raises(UserError, match="trained with dim=16, which a resume cannot change to 64"):
        training.train(project, None, JobContext(), resume=run_id, changes={"dim": 64})
    # the CLI gives only the flags that were typed: no flags, no change
    out = subprocess.run([sys.executable, "-m", "idstudio", "train", str(project), "--resume", run_id, "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["epochs_done"] == 2
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["max_minutes"] == 5.0


def test_resume_is_refused_while_another_process_trains_the_run(project):
    first = training.train(project, tiny(epochs=1), JobContext())
    run_dir = project / "runs" / first["run_id"]
    with runbook.RunLock(run_dir, first["run_id"]):  # as another trainer holds it
        with pytest.raises(UserError, match=f"Run {first['run_id']} is still being trained by another process "
                                            rf"\(pid {os.getpid()} on .*\); wait for it"):
            training.train(project, None, JobContext(), resume=first["run_id"], changes={"epochs": 2})
        with Project.open(project) as p:  # and while it trains, its status stays 'running'
            p.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (first["run_id"],))
        with Project.open(project) as p:
            assert p.scalar("SELECT status FROM runs WHERE id = ?", (first["run_id"],)) == "running"
    with Project.open(project) as p:  # its process is gone: interrupted
        assert p.scalar("SELECT status FROM runs WHERE id = ?", (first["run_id"],)) == "interrupted"


KILL_TRAIN = textwrap.dedent("""
    import sys, json
    from idstudio.core.jobs import JobContext
    from idstudio.services import train_config, training
    ctx = JobContext()
    def sink(event):
        if event["type"] == "progress" and event["message"].startswith("epoch 2") and event["done"] == 1:
            print("in epoch 2", flush=True)
            import time; time.sleep(60)   # killed here
    ctx.add_sink(sink)
    training.train(sys.argv[1], train_config.TrainConfig(**json.loads(sys.argv[2])), ctx)
""")


@pytest.mark.slow
def test_kill_9_then_resume_ends_with_the_weights_of_an_uninterrupted_run(project):
    whole = training.train(project, tiny(), JobContext())
    proc = subprocess.Popen([sys.executable, "-c", KILL_TRAIN, str(project), json.dumps(TINY)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in epoch 2"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Project.open(project) as p:
        (killed, status), = p.query("SELECT id, status FROM runs WHERE id != ?", (whole["run_id"],))
        assert status == "interrupted"  # not 'running' forever
    done = training.resume(project, killed, JobContext())
    assert done["status"] == "finished" and done["epochs_done"] == 2
    assert same_weights(weights(project, whole["run_id"]), weights(project, killed))


def _stop_in_epoch(n: int) -> JobContext:
    ctx = JobContext()

    def stop(event):
        if event["type"] == "progress" and event["message"].startswith(f"epoch {n}/") and event["done"] == 1:
            ctx.request_stop()  # Stop early (GUI), Ctrl-C (CLI) or the time budget, after one step
    ctx.add_sink(stop)
    return ctx


def test_stop_mid_epoch_and_resume_end_with_the_weights_of_an_uninterrupted_run(project):
    """The data loader has its own generator: restarting it mid-epoch draws nothing from the
    global generator that drives the augmentation."""
    whole = training.train(project, tiny(steps_per_epoch=3), JobContext())
    stopped = training.train(project, tiny(steps_per_epoch=3), _stop_in_epoch(1))
    assert stopped["status"] == "stopped" and stopped["epochs_done"] == 0
    done = training.resume(project, stopped["run_id"], JobContext())
    assert done["epochs_done"] == 2
    assert same_weights(weights(project, whole["run_id"]), weights(project, stopped["run_id"]))


def test_training_reads_the_crop_cache_and_ends_with_the_weights_of_decoding(project):
    """The cache changes where crops come from, never what they are: a run from the cache and
    one decoding every step end with the same weights; stopped mid-epoch and resumed (cache
    on), it ends there too."""
    from idstudio.core.crop_cache import CropCache

    logs: list[str] = []
    ctx = JobContext()
    ctx.add_sink(lambda e: logs.append(e["message"]) if e["type"] == "log" else None)
    cached = training.train(project, tiny(steps_per_epoch=3, crop_cache="on"), ctx)
    assert any(m.startswith("Crop cache: up to date at 32x16") for m in logs)
    with Project.open(project) as p:
        assert CropCache.of(p, 32, 16).status(p.crops_conn)["up_to_date"]
    decoded = training.train(project, tiny(steps_per_epoch=3, crop_cache="off"), JobContext())
    assert same_weights(weights(project, cached["run_id"]), weights(project, decoded["run_id"]))
    stopped = training.train(project, tiny(steps_per_epoch=3, crop_cache="on"), _stop_in_epoch(1))
    assert stopped["status"] == "stopped"
    training.resume(project, stopped["run_id"], JobContext())
    assert same_weights(weights(project, cached["run_id"]), weights(project, stopped["run_id"]))


def test_out_of_gpu_memory_is_one_sentence_with_the_largest_batch_that_fits(project, monkeypatch):
    """No raw CUDA traceback: the run is marked failed and the sentence names a batch found by
    trying (the GPU simulated: a batch over 5 pairs does not fit)."""
    from idstudio.core import fit

    def out_of_memory(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(training.Trainer, "train_step", out_of_memory)
    monkeypatch.setattr(fit, "batch_fits", lambda *a, **k: (lambda n: n <= 5))
    with pytest.raises(UserError, match=r"^Out of GPU memory at batch size 8; the largest that fits is 5 \(tried on "
                       r"this GPU\): use --batch-size 5 and `--resume \S+`"):
        training.train(project, tiny(), JobContext())
    with Project.open(project) as p:
        assert p.query("SELECT status, error FROM runs")[-1]["status"] == "failed"
    # with links, each batch takes --link-share more pairs on top: 4 + 1 linked fit, 5 + 2 do not
    monkeypatch.setattr(training, "links_on", lambda *a: True)
    with pytest.raises(UserError, match=r"the largest that fits is 4 \(tried on this GPU\): use --batch-size 4 "):
        training.train(project, tiny(), JobContext())

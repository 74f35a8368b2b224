"""Cross-time splits (`idstudio split`): a labelled dataset from a video's later frames,
held out of training and mining."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import instances
from idstudio.services.splits import crosstime_split


def test_split_holds_later_frames_out_and_makes_a_dataset(copy_project):
    root = copy_project()
    with Project.open(root) as project:
        video = project.videos()[0]
        before = len(instances.training_instances(project))
        result = crosstime_split(project, video["name"], from_share=0.5)
        d = project.dataset(result["name"])
        assert d["kind"] == "crosstime" and d["n_query"] == result["query"] > 0 and d["n_gallery"] == result["gallery"]
        parts = project.dataset_split(d["id"])
        # queries come from before the middle of the held-out frames, the gallery from after
        assert parts["query"].frame.max() < result["query_until_frame"] <= parts["gallery"].frame.min()
        assert parts["query"].frame.min() >= result["from_frame"]
        assert set(parts["query"].camera) == {"q"} and set(parts["gallery"].camera) == {"g"}
        # every query has its person in the gallery
        assert set(parts["query"].identity) <= set(parts["gallery"].identity)
        # the held-out frames never train: the trainer's table lost exactly them
        table = instances.training_instances(project)
        assert len(table) == before - result["held_out_instances"]
        mine = table.video_id == video["id"]
        assert mine.any() and table.frame[mine].max() < result["from_frame"]
        # the copies are gallery images with crops of their own
        assert (parts["query"].video_id == -1).all()
        assert len(project.crop_jpegs(parts["gallery"].id)) == len(parts["gallery"])


def test_bad_splits_are_one_sentence_and_change_nothing(copy_project):
    root = copy_project()
    with Project.open(root) as project:
        name = project.videos()[0]["name"]
        n_sets = len(project.datasets())
        for kwargs, text in ((dict(video="no-such-video"), "no video"),
                             (dict(video=name, from_frame=0), "leaves no frames"),
                             (dict(video=name, from_share=1.5), "between 0 and 1")):
            with pytest.raises(UserError, match=text) as info:
                crosstime_split(project, **kwargs)
            assert "\n" not in str(info.value)
        assert len(project.datasets()) == n_sets
        assert project.scalar("SELECT COUNT(*) FROM videos WHERE holdout_from IS NOT NULL") == 0
        crosstime_split(project, name)
        with pytest.raises(UserError, match="already has a cross-time split"):
            crosstime_split(project, name, name="again")
        # a video without identities
        project.conn.execute("UPDATE instances SET identity = NULL WHERE video_id = ?", (project.videos()[1]["id"],))
        with pytest.raises(UserError, match="no ground-truth identities"):
            crosstime_split(project, project.videos()[1]["name"])


def test_split_cli_json_and_error(copy_project):
    root = copy_project()
    with Project.open(root) as project:
        name = project.videos()[0]["name"]
    out = subprocess.run([sys.executable, "-m", "idstudio", "split", str(root), name, "--json"],
                         capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["query"] > 0 and figures["name"] == f"{name}-crosstime"
    bad = subprocess.run([sys.executable, "-m", "idstudio", "split", str(root), "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr

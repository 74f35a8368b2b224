"""bench/real.py, small: real video in, the table out (identities never used in training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_real_bench_small_trains_from_real_video_and_reports_every_set(real_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "real.py"), "--small", "--data", str(real_data), "--work", str(tmp_path),
         "--minutes", "0", "--set", "epochs=1", "--set", "steps_per_epoch=12", "--set", "batch_size=16"],
        capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    sets = result["sets"]
    assert {"KITTI-17-crosstime", "TUD-Stadtmitte-crosstime", "cuhk03-val", "market-sample"} <= set(sets)
    for name, entry in sets.items():
        for row in ("colorhist", "untrained", "start", "trained"):
            assert 0.0 < entry[row] <= 1.0, (name, row, entry)
        assert set(entry["rank1"]) >= {"colorhist", "untrained", "start", "trained"}
    # the start is the bundled ImageNet MobileNetV2, not a random one
    assert "ImageNet" in result["start"], result["start"]
    # ImageNet features beat a random network on the real cross-time splits
    for name in ("KITTI-17-crosstime", "TUD-Stadtmitte-crosstime"):
        assert sets[name]["imagenet"] > sets[name]["untrained"], (name, sets[name])
    # the cross-time frames were held out of training: the project says so
    from idstudio.core.store import Project

    with Project.open(tmp_path / "pristine-small-t") as project:
        videos = project.videos()
    held = {v["name"]: v["holdout_from"] for v in videos if v["kind"] != "tracklets"}
    assert all(frame is not None for frame in held.values()), held
    # the two-camera tracklets are one site, so the default links them: a scored link round at the start
    assert {v["site"] for v in videos if v["kind"] == "tracklets"} == {"cuhk03"}
    assert result["link_rounds"], result.get("link_rounds")
    assert result["link_rounds"][0]["epoch"] == 0 and 0.0 <= result["link_rounds"][0]["precision"] <= 1.0

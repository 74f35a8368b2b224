"""Ingest on real footage (../shared/data/real); skipped with a reason when absent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from idstudio.core.store import Project
from idstudio.services import ingest

pytestmark = pytest.mark.real


def pedestrian_rows(gt_file) -> int:
    count = 0
    for line in gt_file.read_text().splitlines():
        parts = line.split(",")
        if len(parts) >= 8 and parts[6].strip() == "1" and parts[7].strip() == "1":
            count += 1
    return count


def test_mot17_mini_with_gt_gives_one_instance_per_pedestrian_row(tmp_path, real_data):
    sequences = sorted((real_data / "MOT17-mini").iterdir())
    assert len(sequences) == 7
    for seq in sequences:
        result = ingest.import_mot(tmp_path / "p", seq)
        assert result["instances"] == pedestrian_rows(seq / "gt" / "gt.txt"), seq.name
        assert result["frames"] == len(list((seq / "img1").glob("*.jpg")))
    with Project.open(tmp_path / "p") as project:
        assert project.count("instances", "identity IS NULL") == 0


def test_mot17_det_boxes_take_gt_identities(tmp_path, real_data):
    seq = real_data / "MOT17-mini" / "MOT17-09-FRCNN"
    result = ingest.import_mot(tmp_path / "p", seq, boxes="det")
    assert result["instances"] > 0
    with Project.open(tmp_path / "p") as project:
        share = project.count("instances", "identity IS NOT NULL") / project.count("instances")
    assert share > 0.5  # most public detections overlap a pedestrian gt box by IoU >= 0.5


def test_caviar_reads_all_485_frames_though_the_header_claims_5(tmp_path, real_data):
    import cv2

    video = real_data / "caviar" / "hallway.mpg"
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) != 485  # the header is wrong
    result = ingest.import_video(tmp_path / "p", video)
    assert result["frames"] == 485
    with Project.open(tmp_path / "p") as project:
        assert project.video(1)["n_frames"] == 485
        assert project.count("frames") == 485
        assert project.count("instances") > 100  # the motion detector finds the walkers


def test_market_sample_junk_and_distractors(tmp_path, real_data):
    folder = real_data / "market-sample"
    names = [p.name for sub in ("query", "bounding_box_test") for p in (folder / sub).glob("*.jpg")]
    result = ingest.import_market(tmp_path / "p", folder)
    assert result["images"] == len(names) == 63
    assert result["junk"] == sum(n.startswith("-1_") for n in names)
    assert result["distractors"] == sum(n.startswith("0000_") for n in names)
    assert result["query"] == len(list((folder / "query").glob("*.jpg")))


def test_cli_json_last_line(tmp_path, real_data):
    seqs = [str(p) for p in sorted((real_data / "MOT17-mini").iterdir())[:2]]
    out = subprocess.run([sys.executable, "-m", "idstudio", "import-mot", str(tmp_path / "p"), *seqs, "--json"],
                         capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["videos"] == 2 and figures["instances"] > 0 and figures["frames"] > 0
    again = subprocess.run([sys.executable, "-m", "idstudio", "import-mot", str(tmp_path / "p"), seqs[0]],
                           capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "already in this project" in again.stderr
    assert "Traceback" not in again.stderr

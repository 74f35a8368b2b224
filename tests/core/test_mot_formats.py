"""MOT ground truth in both layouts (MOT15 and MOT16/17, told apart by the content), on the
real sequences, and the bad MOT input that must be refused with its line numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from idstudio.core.errors import UserError
from idstudio.core.mot import read_mot_file
from idstudio.core.store import Project


def _raw(path):
    return np.loadtxt(path, delimiter=",", ndmin=2)


@pytest.mark.parametrize("name, fmt", [("TUD-Stadtmitte", "MOT15"), ("KITTI-17", "MOT15"), ("MOT16-11-half", "MOT16/17")])
def test_real_gt_files_are_read_in_their_own_layout(real_data, name, fmt):
    path = real_data / "mot-full" / name / "gt" / "gt.txt"
    raw = _raw(path)
    gt = read_mot_file(path, "gt")
    assert gt.format == fmt
    if fmt == "MOT15":  # conf 1 = use, 0 = ignore; the world coordinates are not flags
        expected = raw[raw[:, 6] == 1]
    else:  # pedestrians only
        expected = raw[(raw[:, 6] == 1) & (raw[:, 7] == 1)]
    assert len(gt) == len(expected) > 0
    assert gt.ident.tolist() == expected[:, 1].astype(int).tolist()
    np.testing.assert_allclose(gt.boxes, expected[:, 2:6].astype(np.float32))


def test_kitti_ignored_rows_are_dropped(real_data):
    path = real_data / "mot-full" / "KITTI-17" / "gt" / "gt.txt"
    raw = _raw(path)
    assert (raw[:, 6] == 0).sum() > 0  # the file has rows to ignore
    assert len(read_mot_file(path, "gt")) == int((raw[:, 6] == 1).sum()) < len(raw)


def test_import_mot_finds_the_people_of_mot15_sequences(tmp_path, real_data):
    seqs = [real_data / "mot-full" / "TUD-Stadtmitte", real_data / "mot-full" / "KITTI-17"]
    out = subprocess.run([sys.executable, "-m", "idstudio", "import-mot", str(tmp_path / "p"), *map(str, seqs), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures == {"videos": 2, "frames": 179 + 145, "instances": 1156 + 683}
    with Project.open(tmp_path / "p") as project:
        per_video = project.query("SELECT v.name, COUNT(*), COUNT(DISTINCT i.identity) FROM instances i "
                                  "JOIN videos v ON v.id = i.video_id GROUP BY v.id ORDER BY v.id")
        assert [tuple(r) for r in per_video] == [("TUD-Stadtmitte", 1156, 10), ("KITTI-17", 683, 9)]


def _write(tmp_path, lines, name="gt.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gt_of_neither_format_is_one_sentence(tmp_path):
    # 10 columns whose 7th is a detection score, not MOT15's conf 0/1
    det_like = _write(tmp_path, ["1,-1,10,10,20,40,0.83,-1,-1,-1", "2,-1,12,10,20,40,0.91,-1,-1,-1"])
    with pytest.raises(UserError, match=r"gt.txt is neither MOT15 ground truth .* nor MOT16/17 ground truth .*conf") as info:
        read_mot_file(det_like, "gt")
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
    # 9 columns with a class outside 1..12
    odd_class = _write(tmp_path, ["1,1,10,10,20,40,1,4.5,1.0"])
    with pytest.raises(UserError, match="class column"):
        read_mot_file(odd_class, "gt")
    # 8 columns: neither layout
    eight = _write(tmp_path, ["1,1,10,10,20,40,1,1"])
    with pytest.raises(UserError, match="8 columns"):
        read_mot_file(eight, "gt")
    # a mix of 9 and 10 columns names the first line that differs
    mixed = _write(tmp_path, ["1,1,10,10,20,40,1,1,1", "", "2,1,10,10,20,40,1,-1,-1,-1"])
    with pytest.raises(UserError, match="line 3 has 10 fields where the lines before have 9"):
        read_mot_file(mixed, "gt")
    # boxes only (6 columns): every row kept
    assert len(read_mot_file(_write(tmp_path, ["1,1,10,10,20,40", "2,1,11,10,20,40"]), "gt")) == 2


def test_det_lines_with_nan_or_non_positive_boxes_are_named_and_refused(tmp_path):
    lines = [f"{f},-1,{10 + f},10,20,40,0.9" for f in range(1, 11)]
    lines[2] = "3,-1,12,10,nan,40,0.9"
    lines[6] = "7,-1,16,10,-20,40,0.9"
    lines[8] = "9,-1,18,10,20,0,0.9"
    det = _write(tmp_path, lines, "det.txt")
    with pytest.raises(UserError, match=r"det.txt lines 3, 7, 9 hold a value that is NaN .* nothing was stored"):
        read_mot_file(det, "det")
    lines = [line for i, line in enumerate(lines) if i not in (6, 8)]
    lines[0] = "1,-1,inf,10,20,40,0.9"
    with pytest.raises(UserError, match=r"det.txt lines 1, 3 hold"):
        read_mot_file(_write(tmp_path, lines, "det.txt"), "det")
    with pytest.raises(UserError, match=r"gt.txt line 2 holds"):
        read_mot_file(_write(tmp_path, ["1,1,10,10,20,40,1,1,1", "2,1,10,10,0,40,1,1,1"]), "gt")

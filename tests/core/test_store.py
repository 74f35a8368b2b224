import sqlite3

import pytest

from idstudio.core.errors import UserError
from idstudio.core.store import SCHEMA_VERSION, Project


def test_create_open_and_schema_version(tmp_path):
    with Project.create(tmp_path / "p") as project:
        assert project.schema_version() == SCHEMA_VERSION
        assert project.scalar("PRAGMA journal_mode") == "wal"
    with pytest.raises(UserError, match="already an idstudio project"):
        Project.create(tmp_path / "p")
    with Project.open(tmp_path / "p") as project:
        assert project.summary()["videos"] == 0


def test_open_refuses_non_projects_and_newer_schemas(tmp_path):
    with pytest.raises(UserError, match="not an idstudio project"):
        Project.open(tmp_path)
    with Project.create(tmp_path / "p") as project:
        project.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(UserError, match="newer idstudio"):
        Project.open(tmp_path / "p")


def test_batch_write_is_atomic(tmp_path):
    with Project.create(tmp_path / "p") as project:
        vid = project.add_video(name="v", path="v", kind="video", camera="c", fingerprint="f", detector="file")
        rows = [{"frame": 1, "x": 0, "y": 0, "w": 5, "h": 5, "source": "det"}, {"frame": 1, "x": 0, "y": 0, "w": 5, "h": 5}]
        with pytest.raises(KeyError):  # second row lacks `source`: nothing of the batch stays
            project.add_frames_and_instances(vid, [(1, None)], rows, [b"a", b"b"], last_frame=1)
        assert project.count("instances") == 0 and project.count("frames") == 0
        ids = project.add_frames_and_instances(vid, [(1, None)], rows[:1], [b"jpeg"], last_frame=1)
        assert project.crop_jpegs(ids) == [b"jpeg"]
        assert project.video(vid)["last_frame"] == 1


def test_corrupt_database_is_one_sentence(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "idstudio.db").write_bytes(b"garbage" * 1000)
    with pytest.raises(UserError, match="Cannot open the project database"):
        Project.open(tmp_path / "p")


def test_rows_of_maps_ids_to_rows_and_unknown_ids_to_minus_one():
    import numpy as np

    from idstudio.core.store import InstanceTable

    table = InstanceTable(np.array([5, 2, 9]), np.zeros(3), np.zeros(3), np.zeros((3, 4)), np.zeros(3), [None] * 3)
    assert table.rows_of([9, 5, 7, 2]).tolist() == [2, 0, -1, 1]
    assert table.subset(np.zeros(0, np.int64)).rows_of([1]).tolist() == [-1]

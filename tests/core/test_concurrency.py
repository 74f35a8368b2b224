"""Several writers in one project at once (imports, mining, a second window): ids come from
the database inside the write transaction, a crop never replaces another instance's, and
a writer kept out too long gets one sentence, not a traceback."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from idstudio.core import store
from idstudio.core.errors import UserError
from idstudio.core.store import Project

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def _batch(writer: str, batch: int, n: int = 3):
    rows = [{"frame": batch, "x": float(i), "y": 0.0, "w": 10.0, "h": 20.0, "source": writer, "camera": writer}
            for i in range(n)]
    crops = [f"{writer}:{batch}:{i}".encode() for i in range(n)]
    return rows, crops


def test_two_writers_at_once_never_share_ids_or_crops(tmp_path, monkeypatch):
    Project.create(tmp_path / "p").close()
    original = Project.transaction

    def slow_transaction(self, conn=None):  # widen every race window a little
        time.sleep(0.002)
        return original(self, conn)

    monkeypatch.setattr(Project, "transaction", slow_transaction)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(writer: str) -> None:
        project = Project.open(tmp_path / "p")  # its own connections, as a second process has
        try:
            start.wait()
            for batch in range(25):
                rows, crops = _batch(writer, batch)
                project.add_frames_and_instances(None, [], rows, crops)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            project.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Project.open(tmp_path / "p") as project:
        rows = project.query("SELECT id, frame, x, source FROM instances ORDER BY id")
        assert len(rows) == 2 * 25 * 3
        crops = project.crop_jpegs([r["id"] for r in rows])
        for r, jpeg in zip(rows, crops):  # each instance shows its own writer's crop
            assert jpeg == f"{r['source']}:{r['frame']}:{int(r['x'])}".encode()
        assert project.crops_conn.execute("SELECT COUNT(*) FROM crops").fetchone()[0] == len(rows)


def test_orphan_crops_of_a_killed_batch_are_replaced_never_an_instances_crop(tmp_path):
    with Project.create(tmp_path / "p") as project:
        ids = project.add_frames_and_instances(None, [], *_batch("a", 0))
        with project.transaction(project.crops_conn):  # what a kill between the two commits leaves
            project.crops_conn.execute("INSERT INTO crops (instance_id, jpeg) VALUES (?, ?)", (ids[-1] + 1, b"orphan"))
        new = project.add_frames_and_instances(None, [], *_batch("b", 1))
        assert new[0] == ids[-1] + 1
        assert project.crop_jpegs(ids + new) == _batch("a", 0)[1] + _batch("b", 1)[1]


def test_a_writer_kept_out_too_long_gets_one_sentence_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.2)
    with Project.create(tmp_path / "p") as project:
        project.add_frames_and_instances(None, [], *_batch("a", 0))
        other = sqlite3.connect(tmp_path / "p" / "idstudio.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(UserError, match="Another process kept the project .* locked too long"):
                project.add_frames_and_instances(None, [], *_batch("b", 1))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert project.count("instances") == 3
        project.add_frames_and_instances(None, [], *_batch("b", 1))  # and it works once the other is done
        assert project.count("instances") == 6


@pytest.mark.slow
def test_two_imports_and_a_mine_at_once_match_single_writer_imports(tmp_path):
    import concurrency

    result = concurrency.run(rounds=1, frames=40, workdir=tmp_path)
    assert result["failures"] == {} and result["passed"] == 1
    assert result["instances_per_round"] == 2 * 40 * 3


def test_the_same_video_imported_twice_at_once_is_one_sentence(tmp_path, monkeypatch):
    from concurrency import make_walk_video

    from idstudio.services import ingest

    video, det = make_walk_video(tmp_path / "a.avi", n_frames=20)
    Project.create(tmp_path / "p").close()
    original = Project.query

    def racing_query(self, sql, params=()):  # the other import registers the file between check and insert
        rows = original(self, sql, params)
        if sql.startswith("SELECT * FROM videos WHERE fingerprint"):
            with Project.open(tmp_path / "p") as other:
                other.add_video(name="a.avi", path=str(video), kind="video", camera="a", fingerprint=params[0],
                                width=1, height=1, fps=25.0, stride=params[2], detector=params[1])
        return rows

    monkeypatch.setattr(Project, "query", racing_query)
    with pytest.raises(UserError, match="a.avi is being imported into this project by another process right now"):
        ingest.import_video(tmp_path / "p", video, det_file=det)

"""A full disk and a read-only project end in one sentence that says what to do, with
nothing stored lost: a small tmpfs for the full disk, `chattr +i` and a read-only bind
mount for the read-only project (root only; skipped with the reason elsewhere)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from concurrency import make_walk_video  # noqa: E402

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


class SmallDisk:
    """A tmpfs of a few hundred KiB: a project on it fills it; ``grow`` frees space."""

    def __init__(self, path: Path):
        self.path = path

    def grow(self, size: str = "16m") -> None:
        assert _run("mount", "-o", f"remount,size={size}", str(self.path)).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    if not ROOT:
        pytest.skip("a full disk is simulated with a small tmpfs, which only root can mount")
    mount = tmp_path / "disk"
    mount.mkdir()
    if _run("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs (a container without CAP_SYS_ADMIN)")
    try:
        yield SmallDisk(mount)
    finally:
        _run("umount", "-l", str(mount))


def integrity_ok(root: Path) -> bool:
    for name in ("idstudio.db", "crops.db"):
        conn = sqlite3.connect(root / name)
        try:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                return False
        finally:
            conn.close()
    return True


def test_full_disk_during_import_is_one_sentence_and_the_same_import_resumes(small_disk, tmp_path):
    video, det = make_walk_video(tmp_path / "walk.avi", n_frames=200, size=(320, 240))
    root = small_disk.path / "p"
    code = ("import sys; from idstudio.services import ingest; ingest.BATCH_FRAMES = 16; "
            "from idstudio.cli import main; raise SystemExit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "import-video", str(root), str(video), "--det", str(det), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: The disk holding {root} is full") and "run the same command again" in message
    assert "Traceback" not in out.stderr
    small_disk.grow()  # space freed
    assert integrity_ok(root)
    with Project.open(root) as project:  # what was committed is whole: three boxes per frame
        committed = project.count("instances")
        assert 0 < committed < 600 and committed == 3 * project.count("frames")
        assert project.video(1)["status"] == "importing"
        assert len(project.crop_jpegs(project.instance_table().id)) == committed
    result = ingest.import_video(root, video, det_file=det)  # the same command continues where it stopped
    assert result["resumed"] and result["complete"]
    with Project.open(root) as project:
        assert project.count("instances") == 600 and project.count("frames") == 200
    assert integrity_ok(root)


def test_full_disk_during_mining_is_one_sentence_and_loses_nothing(small_disk, tmp_path):
    from idstudio.services import mining

    video, det = make_walk_video(tmp_path / "walk.avi", n_frames=40)
    root = small_disk.path / "p"
    ingest.import_video(root, video, det_file=det)
    filler = small_disk.path / "filler"
    with pytest.raises(OSError):  # the rest of the disk
        with open(filler, "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    with pytest.raises(UserError, match=r"^The disk holding .* is full, so the last batch was not written .*; free some space"):
        mining.mine(root, mining.MineConfig(dim=16, height=32, width=16, gaps=[1]))
    filler.unlink()
    with Project.open(root) as project:
        assert project.count("instances") == 120 and project.count("mining_rounds") == 0
    assert integrity_ok(root)


@contextmanager
def read_only(root: Path, how: str):
    """The project made read-only: its database file, its folder, or a read-only mount of it.
    Yields the path to use."""
    if how == "mount":
        view = root.parent / (root.name + "-ro")
        view.mkdir()
        if _run("mount", "--bind", str(root), str(view)).returncode != 0:
            pytest.skip("this machine does not allow bind mounts")
        try:
            if _run("mount", "-o", "remount,ro,bind", str(view)).returncode != 0:
                pytest.skip("this machine does not allow read-only remounts")
            yield view
        finally:
            _run("umount", "-l", str(view))
        return
    target = root / "idstudio.db" if how == "file" else root
    if _run("chattr", "+i", str(target)).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield root
    finally:
        _run("chattr", "-i", str(target))


@pytest.mark.parametrize("how", ["file", "folder", "mount"])
def test_read_only_project_is_one_sentence_and_loses_nothing(tmp_path, real_data, how):
    if not ROOT:
        pytest.skip("root ignores file permissions; a read-only project is made with chattr +i or a mount, which need root")
    from idstudio.services import evaluation, mining

    video, det = make_walk_video(tmp_path / "walk.avi", n_frames=40)
    other, other_det = make_walk_video(tmp_path / "other.avi", n_frames=20, seed=5)
    root = tmp_path / "p"
    ingest.import_video(root, video, det_file=det)
    ingest.import_market(root, real_data / "market-sample")
    with Project.open(root) as project:
        before = project.summary()
    sentence = r"^The project .* cannot be written \(a read-only file, folder or disk\), so nothing was changed; make it writable"
    with read_only(root, how) as path:
        with pytest.raises(UserError, match=sentence):
            ingest.import_video(path, other, det_file=other_det)
        with pytest.raises(UserError, match=sentence):
            mining.mine(path, mining.MineConfig(dim=16, height=32, width=16, gaps=[1]))
        with pytest.raises(UserError, match=sentence):
            with Project.open(path) as project:
                evaluation.evaluate(project, "init")
        try:  # a search only reads: it may work, else it says why in one sentence
            with Project.open(path) as project:
                assert evaluation.search(project, "init", instances=[1])
        except UserError as exc:
            assert "cannot be written" in str(exc)
    with Project.open(root) as project:
        after = project.summary()
    assert after == before and integrity_ok(root)


def test_cli_turns_a_full_disk_outside_the_store_into_one_sentence(monkeypatch, capsys, tmp_path):
    import errno

    from idstudio import cli
    from idstudio.services import evaluation

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p" / "cache" / "x.npy"))

    monkeypatch.setattr(evaluation, "evaluate", full)
    Project.create(tmp_path / "p").close()
    assert cli.main(["eval", str(tmp_path / "p"), "--checkpoint", "init"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: The disk holding {tmp_path / 'p'} is full") and len(err.splitlines()) == 1

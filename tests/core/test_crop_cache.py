"""The decoded-crop cache: the crops it gives are the store's, it never serves a stale crop,
a short disk is one sentence, a cancelled build keeps what it finished, memory is bounded."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from idstudio.core import crop_cache
from idstudio.core.crop_cache import CropCache, Prefetcher
from idstudio.core.data import CropReader, decode_crops_uint8
from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.jobs import JobContext
from idstudio.core.store import CROPS_NAME, Project
from idstudio.services import ingest

SPEC = SimpleNamespace(height=32, width=16, resize="squash")


def store_crops(project: Project, ids) -> np.ndarray:
    return decode_crops_uint8(project.crop_jpegs(list(ids)), SPEC).numpy()


def test_a_built_cache_gives_the_stores_crops_and_is_found_again(copy_project):
    root = copy_project()
    with Project.open(root) as project:
        ids = crop_cache.all_crop_ids(project.crops_conn)
        assert crop_cache.find_reader(project, ids, SPEC) is None  # nothing built yet
        note = crop_cache.ensure(project, SPEC)
        assert "up to date at 32x16" in note
        cache = CropCache.of(project, 32, 16)
        assert cache.nbytes == len(ids) * 3 * 32 * 16
        assert cache.status(project.crops_conn)["up_to_date"]
        store = crop_cache.crop_store(project, ids, SPEC)
        assert store.cached
        rows = np.random.default_rng(0).choice(len(ids), 300, replace=False)
        np.testing.assert_array_equal(store.get(rows).numpy(), store_crops(project, ids[rows]))
        # found again by a later process: a fresh open reads the same file, decodes nothing
        assert "up to date at 32x16" in crop_cache.ensure(project, SPEC)
    with Project.open(root) as again:
        assert crop_cache.crop_store(again, ids, SPEC).cached


def test_a_stale_cache_is_never_read_and_the_next_update_sees_exactly_the_store(copy_project, small_world):
    """An imported video, a changed crop and a removed video: before the update the cache is
    not read at all; after it, every crop is the store's and the removed ones are gone."""
    root = copy_project()
    with Project.open(root) as project:
        crop_cache.ensure(project, SPEC)
        before = crop_cache.all_crop_ids(project.crops_conn)
    cam = small_world.cameras[0]
    ingest.import_video(root, cam.video, det_file=cam.det, gt_file=cam.gt, stride=7, camera="again")
    with Project.open(root) as project:
        ids = crop_cache.all_crop_ids(project.crops_conn)
        new = np.setdiff1d(ids, before)
        assert len(new) > 0
        assert crop_cache.find_reader(project, ids, SPEC) is None  # the new video's crops are not cached
        assert crop_cache.find_reader(project, before, SPEC) is not None  # the old ones still are, fresh
        gone_video = int(project.scalar("SELECT MIN(video_id) FROM instances WHERE video_id IS NOT NULL"))
        gone = [r["id"] for r in project.query("SELECT id FROM instances WHERE video_id = ?", (gone_video,))]
        k_changed = int(np.flatnonzero(~np.isin(before, gone))[0])
        changed = int(before[k_changed])
        other = project.crop_jpegs([int(before[-1])])[0]
        with project.transaction(project.crops_conn):
            project.crops_conn.execute("UPDATE crops SET jpeg = ? WHERE instance_id = ?", (other, changed))
        assert crop_cache.find_reader(project, before, SPEC) is None  # one changed crop: not read
        assert crop_cache.find_reader(project, np.delete(before, k_changed), SPEC) is not None
        with project.transaction(project.crops_conn):
            project.crops_conn.executemany("DELETE FROM crops WHERE instance_id = ?", [(i,) for i in gone])
        assert crop_cache.find_reader(project, np.array(gone[:3]), SPEC) is None  # removed: never read again

        status = CropCache.of(project, 32, 16).status(project.crops_conn)
        assert not status["up_to_date"] and status["missing"] == len(new) + 1
        crop_cache.ensure(project, SPEC)
        now = crop_cache.all_crop_ids(project.crops_conn)
        assert not np.isin(gone, now).any()
        store = crop_cache.crop_store(project, now, SPEC)
        assert store.cached
        np.testing.assert_array_equal(store.get(np.arange(len(now))).numpy(), store_crops(project, now))
        k = int(np.flatnonzero(now == changed)[0])
        np.testing.assert_array_equal(store.get([k]).numpy()[0], store_crops(project, [int(before[-1])])[0])


def test_a_cache_of_another_store_is_not_read(copy_project, tmp_path):
    root = copy_project()
    with Project.open(root) as project:
        crop_cache.ensure(project, SPEC)
        ids = crop_cache.all_crop_ids(project.crops_conn)
    with Project.open(root) as project:
        with project.transaction(project.crops_conn):
            project.crops_conn.execute("UPDATE crop_meta SET value = 'another' WHERE key = 'store_id'")
        assert crop_cache.find_reader(project, ids, SPEC) is None


def test_a_short_disk_is_one_sentence_and_auto_falls_back_to_decoding(copy_project, monkeypatch):
    with Project.open(copy_project()) as project:
        monkeypatch.setattr(crop_cache.shutil, "disk_usage", lambda path: SimpleNamespace(free=10 * 2 ** 20))
        note = crop_cache.ensure(project, SPEC, "auto")
        assert note.startswith("Crop cache: not built, JPEGs decoded every step: The crop cache at 32x16 needs")
        assert "--crop-cache off" in note
        assert not CropCache.of(project, 32, 16).exists
        with pytest.raises(UserError, match=r"needs .* more and only 10.0 MB are free"):
            crop_cache.ensure(project, SPEC, "on")
        ids = crop_cache.all_crop_ids(project.crops_conn)
        assert isinstance(crop_cache.crop_store(project, ids, SPEC).source, CropReader)
        assert "off" in crop_cache.ensure(project, SPEC, "off")


def test_a_cancelled_build_keeps_what_it_finished(copy_project, monkeypatch):
    monkeypatch.setattr(crop_cache, "BUILD_BATCH", 64)
    with Project.open(copy_project()) as project:
        ctx = JobContext()

        def cancel_after_two(event):
            if event["type"] == "progress" and event["done"] >= 128:
                ctx.cancel()
        ctx.add_sink(cancel_after_two)
        with pytest.raises(JobCancelled):
            crop_cache.ensure(project, SPEC, ctx=ctx)
        cache = CropCache.of(project, 32, 16)
        ids = crop_cache.all_crop_ids(project.crops_conn)
        kept = len(cache.ids)
        assert 128 <= kept < len(ids)
        assert crop_cache.find_reader(project, cache.ids, SPEC) is not None
        result = cache.update(project)
        assert result["decoded"] == len(ids) - kept and cache.status(project.crops_conn)["up_to_date"]


def test_a_truncated_cache_file_is_one_sentence(copy_project):
    with Project.open(copy_project()) as project:
        crop_cache.ensure(project, SPEC)
        ids = crop_cache.all_crop_ids(project.crops_conn)
        reader = crop_cache.find_reader(project, ids, SPEC)
        with open(CropCache.of(project, 32, 16).pixels_path, "r+b") as f:
            f.truncate(100)
        assert CropCache.of(project, 32, 16).exists and not CropCache.of(project, 32, 16).ids.size  # index refused
        with pytest.raises(UserError, match="shorter than its index says; drop it"):
            reader.read(np.array([len(ids) - 1]))


def test_the_store_logs_no_change_when_read_only(copy_project):
    """A store without the change log (e.g. read-only, older) is never cached: decoding as before."""
    root = copy_project()
    with Project.open(root) as project:
        project.crops_conn.executescript("DROP TABLE crop_changes;")
        ids = crop_cache.all_crop_ids(project.crops_conn)
        assert crop_cache.store_position(project.crops_conn) is None
        assert "keeps no change log" in crop_cache.ensure(project, SPEC, "auto")
        assert not crop_cache.crop_store(project, ids, SPEC).cached


def test_prefetcher_keeps_order_raises_errors_and_stops_early():
    assert list(Prefetcher(lambda x: x * 2, range(50), depth=3)) == [2 * x for x in range(50)]

    def boom(x):
        if x == 7:
            raise ValueError("seven")
        return x
    with pytest.raises(ValueError, match="seven"):
        list(Prefetcher(boom, range(20)))
    it = iter(Prefetcher(lambda x: x, range(1000), depth=2))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # leaving the loop stops the thread


def test_auto_builds_no_cache_larger_than_half_the_memory(copy_project, monkeypatch):
    """Random reads of a cache the page cache cannot hold wait on the disk: auto decodes instead
    and says why; on builds it anyway."""
    with Project.open(copy_project()) as project:
        monkeypatch.setattr(crop_cache, "physical_memory", lambda: 2 * 2 ** 20)
        note = crop_cache.ensure(project, SPEC, "auto")
        assert "more than half of this machine's 2.0 MB of memory" in note and "JPEGs decoded every step" in note
        assert not CropCache.of(project, 32, 16).exists
        assert "up to date" in crop_cache.ensure(project, SPEC, "on")


def test_cli_builds_shows_and_drops_the_cache(copy_project):
    import json
    import subprocess
    import sys

    root = copy_project()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "idstudio", *args], capture_output=True, text=True)

    built = cli("cache", "build", str(root), "--size", "32x16", "--json")
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout.strip().splitlines()[-1])
    assert result["up_to_date"] and result["size"] == "32x16" and result["decoded"] == result["instances"]
    info = cli("info", str(root), "--json")
    assert "Crop cache 32x16:" in info.stdout and ", up to date." in info.stdout
    assert json.loads(info.stdout.strip().splitlines()[-1])["crop_caches"][0]["cached"] == result["instances"]
    bad = cli("cache", "build", str(root), "--size", "32")
    assert bad.returncode == 2 and "error: '32' is not an input size; give height x width" in bad.stderr
    dropped = cli("cache", "drop", str(root))
    assert dropped.returncode == 0 and "Dropped the crop cache 32x16" in dropped.stdout
    assert "Crop cache: none yet" in cli("info", str(root)).stdout

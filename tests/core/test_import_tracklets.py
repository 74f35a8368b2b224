"""Tracklet folders: the three layouts, bad input (one sentence, nothing stored), sites,
mining over imported tracklets and link rounds that stay within a site."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from idstudio.core.errors import UserError
from idstudio.core.links import LinkParams, find_links
from idstudio.core.mining import MiningParams, given_pairs, mine
from idstudio.core.store import Project
from idstudio.core.tracklets import certain_negatives
from idstudio.services import ingest
from idstudio.services.instances import linkable_sites, row_sites


def _image(path: Path, seed: int, ext: str = ".png") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path.with_suffix(ext)), rng.integers(0, 255, (48, 20, 3), dtype=np.uint8))


def prid(root: Path, people: int = 3, crops: int = 3) -> Path:
    for cam in ("cam_a", "cam_b"):
        for p in range(1, people + 1):
            for k in range(1, crops + 1):
                _image(root / cam / f"person_{p:04d}" / f"{k:04d}", p * 100 + k)
    return root


def ilids(root: Path) -> Path:
    for cam in ("cam1", "cam2"):
        for p in (1, 2):
            for k in range(4):
                _image(root / cam / f"person{p:03d}" / f"{cam}_person{p:03d}_{k:05d}", p * 10 + k)
    return root


def mars(root: Path) -> Path:
    # person 0001: two tracklets in camera 1, one in camera 2; person 0002: one in camera 2
    for person, cam, track, n in (("0001", 1, 1, 3), ("0001", 1, 2, 2), ("0001", 2, 1, 3), ("0002", 2, 1, 4)):
        for f in range(n):
            _image(root / "bbox_train" / person / f"{person}C{cam}T{track:04d}F{f:03d}", hash((person, cam, track, f)) % 1000,
                   ".jpg")
    _image(root / "bbox_test" / "0003" / "0003C1T0001F000", 5, ".jpg")
    return root


def duke(root: Path) -> Path:
    # DukeMTMC-VideoReID: person / tracklet / PPPP_Cc_Ffff_X.jpg
    for person, track, cam, n in (("0001", "0001", 1, 3), ("0001", "0002", 2, 2), ("0002", "0001", 2, 4)):
        for f in range(n):
            _image(root / "train" / person / track / f"{person}_C{cam}_F{f + 1:04d}_X{f}", int(person) * 10 + f, ".jpg")
    return root


@pytest.mark.parametrize("make, layout, tracklets, crops, cameras", [
    (duke, "DukeMTMC-VideoReID", 3, 9, ["C1", "C2"]),
    (prid, "PRID2011", 6, 18, ["cam_a", "cam_b"]),
    (ilids, "iLIDS-VID", 4, 16, ["cam1", "cam2"]),
    (mars, "MARS", 4, 12, ["C1", "C2"]),
])
def test_the_three_layouts_import_as_one_video_per_camera(tmp_path, make, layout, tracklets, crops, cameras):
    folder = make(tmp_path / "set")
    result = ingest.import_tracklets(tmp_path / "p", folder)
    assert (result["layout"], result["tracklets"], result["crops"], result["cameras"]) == (layout, tracklets, crops, cameras)
    assert result["site"] == ingest.DEFAULT_TRACKLET_SITE
    with Project.open(tmp_path / "p") as project:
        videos = project.videos()
        assert [v["kind"] for v in videos] == ["tracklets"] * len(cameras)
        assert {v["site"] for v in videos} == {ingest.DEFAULT_TRACKLET_SITE}
        table = project.instance_table()
        assert len(table) == crops and (table.tracklet >= 0).all()
        # each crop its own frame: no two crops of a camera are "boxes of one frame"
        for v in videos:
            frames = table.frame[table.video_id == v["id"]]
            assert len(np.unique(frames)) == len(frames)
        # the folder identity is kept as gt, the same number in both cameras
        per_video = [set(table.identity[table.video_id == v["id"]].tolist()) for v in videos]
        assert per_video[0] & per_video[1]
        assert linkable_sites(project) == {ingest.DEFAULT_TRACKLET_SITE: len(cameras)}


def test_mars_keeps_two_tracklets_of_one_person_and_camera_apart(tmp_path):
    ingest.import_tracklets(tmp_path / "p", mars(tmp_path / "set"))
    with Project.open(tmp_path / "p") as project:
        table = project.instance_table()
        c1 = table.video_id == project.videos()[0]["id"]
        assert sorted(np.bincount(table.tracklet[c1]).tolist()) == [2, 3]


@pytest.mark.parametrize("spoil, words", [
    (lambda root: (root / "cam_a" / "person_0009").mkdir(), "holds no images"),
    (lambda root: (root / "cam_b" / "person_0002" / "0002.png").write_bytes(b"not an image"), "not a readable image"),
    (lambda root: [p.unlink() for p in (root / "cam_a").rglob("*.png")] and None, "holds no images"),
])
def test_bad_tracklet_folders_are_one_sentence_and_store_nothing(tmp_path, spoil, words):
    root = prid(tmp_path / "set")
    spoil(root)
    ingest.import_tracklets(tmp_path / "p", prid(tmp_path / "other", people=1))  # something stored before
    with pytest.raises(UserError, match=words):
        ingest.import_tracklets(tmp_path / "p", root)
    with Project.open(tmp_path / "p") as project:
        assert len(project.videos()) == 2 and project.count("instances") == 6


def test_a_folder_of_no_known_layout_and_a_second_import_are_one_sentence(tmp_path):
    flat = tmp_path / "flat"
    for k in range(3):
        _image(flat / f"{k}", k)
    with pytest.raises(UserError, match="not a folder of tracklets in a known layout"):
        ingest.import_tracklets(tmp_path / "p", flat)
    with pytest.raises(UserError, match="There is no folder"):
        ingest.import_tracklets(tmp_path / "p", tmp_path / "missing")
    folder = prid(tmp_path / "set")
    ingest.import_tracklets(tmp_path / "p", folder)
    with pytest.raises(UserError, match="already in this project"):
        ingest.import_tracklets(tmp_path / "p", folder)


def test_a_wrapper_folder_is_looked_through(tmp_path):
    prid(tmp_path / "prid_2011" / "multi_shot")
    assert ingest.import_tracklets(tmp_path / "p", tmp_path / "prid_2011")["tracklets"] == 6


def test_sites_set_listed_and_bad_names(tmp_path):
    root = tmp_path / "p"
    ingest.import_tracklets(root, prid(tmp_path / "a"), site="mall")
    with Project.open(root) as project:
        names = [v["name"] for v in project.videos()]
    assert ingest.sites(root)["linkable"] == {"mall": 2}
    ingest.set_site(root, [names[0]], "none")
    assert ingest.sites(root)["linkable"] == {}
    assert ingest.sites(root)["sites"] == {None: [names[0]], "mall": [names[1]]}
    with pytest.raises(UserError, match="no video 'nope'"):
        ingest.set_site(root, ["nope"], "mall")
    with pytest.raises(UserError, match="at most 80"):
        ingest.set_site(root, [names[0]], "x" * 81)


def test_given_pairs_join_each_tracklet_in_time_and_nothing_else():
    video = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    tracklet = np.array([0, 0, 1, 1, 0, 0, -1, -1])
    frame = np.array([2, 1, 3, 4, 1, 2, 1, 2])
    a, b, comp = given_pairs(video, tracklet, frame)
    assert sorted(zip(a.tolist(), b.tolist())) == [(1, 0), (2, 3), (4, 5)]
    assert len(set(comp.tolist())) == 3


def test_mining_matches_videos_and_gives_the_imported_tracklets_pairs():
    rng = np.random.default_rng(0)
    n = 12
    video = np.array([1] * 6 + [2] * 6)
    frame = np.array([1, 1, 2, 2, 3, 3, 1, 2, 3, 4, 5, 6])
    tracklet = np.array([-1] * 6 + [0, 0, 0, 1, 1, 1])
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    boxes = np.tile(np.array([[0, 0, 10, 20]], np.float32), (n, 1))
    result = mine(np.arange(n) + 100, video, frame, boxes, emb, MiningParams(gaps=[1]), identity=None, tracklet=tracklet)
    given = np.arange(len(result)) >= len(result) - result.stats["n_tracklet_pairs"]  # appended after the mined
    pairs = set(zip(result.a.tolist(), result.b.tolist()))
    assert {(106, 107), (107, 108), (109, 110), (110, 111)} <= pairs
    assert (108, 109) not in pairs  # two tracklets of a camera are never matched
    assert result.stats["n_tracklet_pairs"] == 4
    assert len(set(result.component[given][:2].tolist())) == 1 and result.component[given][0] != result.component[given][2]
    assert all(v in (1,) for v in video[np.isin(np.arange(n) + 100, result.a[~given])])


def test_links_join_videos_of_one_site_only_and_take_short_imported_tracklets():
    # three videos, the same two people in each; video 3 is at another site
    members = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5]), np.array([6, 7]), np.array([8, 9]), np.array([10, 11])]
    video = np.repeat([1, 1, 2, 2, 3, 3], 2)
    frame = np.tile([1, 2], 6)
    person = np.repeat([0, 1, 0, 1, 0, 1], 2)
    emb = np.eye(4, dtype=np.float32)[person] + 0.01
    site = np.repeat([0, 0, 0, 0, 1, 1], 2)
    imported = np.ones(12, bool)
    params = LinkParams(min_similarity=0.0, keep=1.0, min_members=8, mutual_k=1)
    result = find_links(members, emb, video, frame, params, identity=person + 1, site=site, imported=imported)
    linked_videos = {(int(video[members[a][0]]), int(video[members[b][0]])) for a, b in zip(result.ta, result.tb)}
    assert linked_videos == {(1, 2)}
    assert result.stats["precision"] == 1.0 and result.stats["recall"] == 1.0
    # mined tracklets this short are not linked (min_members)
    assert len(find_links(members, emb, video, frame, params, site=site, imported=np.zeros(12, bool))) == 0
    # no site at all: nothing may be linked
    assert len(find_links(members, emb, video, frame, params, site=np.full(12, -1), imported=imported)) == 0


def test_two_imported_tracklets_of_one_camera_are_negatives_and_other_cameras_are_not():
    video = np.array([1, 1, 2, 3, 3])
    key = video * 10_000_000 + np.array([1, 2, 1, 1, 2])
    owner = np.array([0, 1, 2, 3, 4])
    cameras = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0, 0]], bool)  # videos 1 and 2 are imported cameras
    certain = certain_negatives(video, key, other_videos=False, owner=owner, cameras=cameras)
    assert certain[0, 1] and certain[1, 0]
    assert not certain[0, 2]  # another camera: may be the same person
    assert not certain[3, 4]  # two frames of a video: may be the same person
    # a linked tracklet holds both cameras: a negative of the other tracklets of either
    linked = cameras.copy()
    linked[0] = [True, True]
    assert certain_negatives(video, key, False, owner, linked)[0, 2]
    owner[1] = 0  # one (linked) tracklet: never its own negative
    assert not certain_negatives(video, key, False, owner, cameras)[0, 1]


def test_the_tracklet_sampler_knows_the_cameras_each_tracklet_holds():
    from idstudio.core.sampling import tracklet_cameras
    from idstudio.core.tracklets import build_tracklets

    video = np.array([1, 1, 2, 2, 5, 5])
    imported = np.array([True, True, True, True, False, False])
    frame = np.array([1, 2, 1, 2, 1, 2])
    # tracklet 0: rows 0-1 (camera 1) linked to rows 2-3 (camera 2); tracklet 1: rows 4-5 of a video
    tr = build_tracklets(np.array([0, 1, 4]), np.array([1, 2, 5]), np.ones(3), np.array([0, 0, 1]), np.ones(3, bool), frame)
    held = tracklet_cameras(tr, video, imported)
    assert held.tolist() == [[True, True], [False, False]]


def test_cli_import_tracklets_and_site(tmp_path):
    root = tmp_path / "p"
    cli = [sys.executable, "-m", "idstudio"]
    out = subprocess.run([*cli, "import-tracklets", str(root), str(prid(tmp_path / "set")), "--site", "hall", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1])["tracklets"] == 6
    out = subprocess.run([*cli, "site", str(root), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1])["linkable"] == {"hall": 2}
    bad = subprocess.run([*cli, "site", str(root), "hall"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Name the videos" in bad.stderr
    bad = subprocess.run([*cli, "import-tracklets", str(root), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "known layout" in bad.stderr and "Traceback" not in bad.stderr
    info = subprocess.run([*cli, "info", str(root)], capture_output=True, text=True, check=True).stdout
    assert "site hall" in info
    # the sentence names the site as the Data view does: quoted, or "no site"
    said = subprocess.run([*cli, "import-tracklets", str(tmp_path / "q"), str(prid(tmp_path / "set2", people=2))],
                          capture_output=True, text=True, check=True).stdout
    assert "at site 'site 1'." in said
    said = subprocess.run([*cli, "import-tracklets", str(tmp_path / "r"), str(tmp_path / "set2"), "--site", "none"],
                          capture_output=True, text=True, check=True).stdout
    assert "at no site." in said


@pytest.mark.real
def test_the_real_cuhk03_tracklets_import_whole(real_data, tmp_path):
    result = ingest.import_tracklets(tmp_path / "p", real_data / "cuhk03-tracklets", site="cuhk03")
    assert result["layout"] == "PRID2011"
    assert result["per_camera"] == {"cam_a": 743, "cam_b": 743}
    assert result["crops"] == 7239
    with Project.open(tmp_path / "p") as project:
        table = project.instance_table()
        assert len(table) == 7239
        assert (row_sites(project, table) == 0).all()


def test_linked_tracklets_come_on_top_of_each_batch_with_cross_camera_positives():
    from idstudio.core.sampling import add_linked
    from idstudio.core.tracklets import build_tracklets

    # tracklets 0..3 each span videos 1 and 2 (linked); tracklets 4..11 are single-video
    a, b, comp, video = [], [], [], []
    for t in range(12):
        rows = [2 * t, 2 * t + 1]
        a.append(rows[0]); b.append(rows[1]); comp.append(t)
        video += [1, 2] if t < 4 else [1, 1]
    video = np.array(video)
    tr = build_tracklets(np.array(a), np.array(b), np.ones(12), np.array(comp), np.ones(12, bool), np.arange(24))
    spanning = np.array([t for t, m in enumerate(tr.members) if len(set(video[m])) > 1])
    assert len(spanning) == 4
    # two batches of 4: single-video tracklets, then linked tracklet 0 beside three single-video ones
    owners = np.array([4, 5, 6, 7, 0, 8, 9, 10])
    anchors, positives = 2 * owners, 2 * owners + 1
    anchors[4], positives[4] = 0, 1  # linked tracklet 0 already in the second batch: not drawn twice
    got_a, got_p, got_o, batches = add_linked(anchors, positives, owners, 4, tr, spanning, video, 0.5,
                                              np.random.default_rng(0))
    assert [len(x) for x in batches] == [6, 6] and np.concatenate(batches).tolist() == list(range(12))
    for batch, before in zip(batches, (owners[:4], owners[4:])):
        batch_owners = got_o[batch]
        assert batch_owners[:4].tolist() == before.tolist()  # every element of the batch kept
        extra = batch[4:]
        assert np.isin(got_o[extra], spanning).all() and len(set(batch_owners.tolist())) == 6  # one per tracklet
        assert (video[got_a[extra]] != video[got_p[extra]]).all()

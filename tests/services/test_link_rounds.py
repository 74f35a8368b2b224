"""Link rounds on the small synthetic project (2 cameras, the same people in both): the job,
its CLI, export and decisions read back from a file, splitting a tracklet, training on links."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest

from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.store import Project
from idstudio.services import instances, links, mining, recipe, review, training
from idstudio.services.links import LinkConfig
from idstudio.services.train_config import TrainConfig
from idstudio.services.mining import MineConfig

LOOSE = dict(link_min_similarity=-1.0, link_keep=1.0, link_min_members=2, link_min_reliability=0.0, device="cpu")


@pytest.fixture(scope="module")
def linked_once(small_project, tmp_path_factory):
    """The small project mined and linked once for this module (15 s); each test copies it."""
    import shutil

    root = tmp_path_factory.mktemp("linked") / "proj"
    shutil.copytree(small_project, root)
    mining.mine(root, MineConfig(dim=32))
    out = links.link(root, LinkConfig(checkpoint="init", **LOOSE))
    return root, out


@pytest.fixture
def linked(linked_once, tmp_path):
    import shutil

    root, out = linked_once
    copy = tmp_path / "proj"
    shutil.copytree(root, copy)
    return copy, out


def test_a_link_round_is_stored_scored_and_exported(linked, tmp_path):
    root, out = linked
    assert out["n_links"] > 0 and out["n_candidates"] >= out["n_links"]
    assert out["precision"] is not None and out["recall"] is not None  # the small world has gt
    with Project.open(root) as p:
        row = p.query("SELECT * FROM link_rounds WHERE id = ?", (out["round_id"],))[0]
        assert row["n_links"] == out["n_links"] == p.count("links", "round_id = ? AND kept = 1", (out["round_id"],))
        rows = links.link_rows(p)
        assert [r["reliability"] for r in rows] == sorted(r["reliability"] for r in rows)  # least reliable first
        assert all(r["video_a"] != r["video_b"] and r["a"] in r["a_members"] for r in rows)
    result = links.export_links(root, tmp_path / "links.csv")
    table = list(csv.DictReader(open(tmp_path / "links.csv", encoding="utf-8")))
    assert len(table) == result["links"] == len(rows) and set(links.EXPORT_COLUMNS) == set(table[0])


def test_decisions_from_a_file_steer_the_links_training_uses(linked, tmp_path):
    root, out = linked
    links.export_links(root, tmp_path / "links.csv")
    table = list(csv.DictReader(open(tmp_path / "links.csv", encoding="utf-8")))
    table[0]["review"], table[1]["review"] = "accept", "reject"
    with open(tmp_path / "edited.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    got = links.import_decisions(root, tmp_path / "edited.csv")
    assert (got["accept"], got["reject"]) == (1, 1)
    with Project.open(root) as p:
        decided = {r["id"]: r["decision"] for r in links.link_rows(p)}
        assert decided[int(table[0]["link_id"])] == "accept" and decided[int(table[1]["link_id"])] == "reject"
        t = instances.training_instances(p)
        used = links.training_links(p, t, out["round_id"])
        ids = {(int(t.id[x]), int(t.id[y])): w for x, y, w in used}
        accepted = tuple(sorted((int(table[0]["a"]), int(table[0]["b"]))))
        rejected = tuple(sorted((int(table[1]["a"]), int(table[1]["b"]))))
        assert ids[accepted] == 1.0 and rejected not in ids


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00garbage", "not a CSV text file"),
    (b"x,y\n1,2\n", "needs the columns a, b and review"),
    (b"a,b,review\n1,2,maybe\n", "accept, reject or empty"),
    (b"a,b,review\nfoo,2,accept\n", "must be instance ids"),
    (b"a,b,review\n99999998,99999999,accept\n", "does not have"),
])
def test_a_bad_links_file_gets_one_sentence_and_records_nothing(linked, tmp_path, content, words):
    root, _ = linked
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        links.import_decisions(root, path)
    with Project.open(root) as p:
        assert p.count("reviews") == 0


def test_a_project_without_two_videos_gets_one_sentence(tmp_path):
    from idstudio.core.store import Project as P

    P.create(tmp_path / "empty").close()
    with pytest.raises(UserError, match="two or more videos"):
        links.link(tmp_path / "empty", LinkConfig())


def test_splitting_a_tracklet_rejects_the_pairs_across_the_cut_and_undo_restores_them(linked):
    root, _ = linked
    with Project.open(root) as p:
        members = max((r["a_members"] for r in links.link_rows(p)), key=len)
        cut = len(members) // 2
        action = links.split_tracklet(p, members, cut)
        rejected = [k for k, d in review.current_decisions(p).items() if d == "reject"]
        assert rejected and all((a in members[:cut]) != (b in members[:cut]) for a, b in rejected)
        t = instances.training_instances(p)
        rid = p.scalar("SELECT MAX(id) FROM mining_rounds")
        pieces = links.round_tracklets(p, t, rid, review.current_decisions(p))
        row = {int(i): r for r, i in enumerate(t.id.tolist())}
        assert not set(pieces.row_tracklets[row[members[0]]]) & set(pieces.row_tracklets[row[members[-1]]])
        review.undo(p, action)
        assert not review.current_decisions(p)
        with pytest.raises(UserError, match="between two of its"):
            links.split_pairs(p, members, 0)


def test_cli_link_json(copy_project):
    root = copy_project()
    mining.mine(root, MineConfig(dim=32))
    cmd = [sys.executable, "-m", "idstudio", "link", str(root), "--checkpoint", "init", "--link-keep", "1.0",
           "--link-min-similarity", "-1", "--link-min-members", "2", "--link-min-reliability", "0", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["n_links"] > 0 and "precision" in figures
    bad = subprocess.run(cmd[:4] + ["--link-keep", "0"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "error:" in bad.stderr and "--link-keep" in bad.stderr


def test_training_runs_link_rounds_and_trains_on_the_links(copy_project):
    from idstudio.core.model import load_checkpoint

    root = copy_project()
    ctx = JobContext()
    lines = []
    ctx.log = lines.append  # type: ignore[method-assign]
    cfg = TrainConfig(arch="resnet18", dim=32, height=64, width=32, epochs=2, steps_per_epoch=2, batch_size=16,
                      warmup_steps=1, remine_every=1, eval_every=0, colour="off", links="on", workers=0, **LOOSE)
    summary = training.train(root, cfg, ctx)
    assert [r["epoch"] for r in summary["link_rounds"]] == [1]
    assert summary["link_rounds"][0]["keep"] == 0.9  # the schedule caps the kept share at 0.9
    assert any(line.startswith("Training with ") and "cross-video links" in line for line in lines)
    with Project.open(root) as p:
        assert p.scalar("SELECT run_id FROM link_rounds") == summary["run_id"]
        model, _ = load_checkpoint(p.runs_dir / summary["run_id"] / "last.pt")
    # the link round's camera directions are taken out of the saved model, and said
    said = [line for line in lines if line.startswith("Camera directions: ")]
    n = len(model.spec.camera_directions)
    assert len(said) == 1 and re.fullmatch(rf"Camera directions: {n} taken out of the embedding, those along which "
                                           r"the \d+ links' tracklets differ most \(--link-directions 0 keeps them\)\.",
                                           said[0]) and 1 <= n <= 4
    assert len(model.spec.camera_directions[0]) == 32
    # a run without links starting from it does not keep another run's directions
    lines.clear()
    off = training.train(root, TrainConfig(**{**cfg.__dict__, "links": "off", "init": str(p.runs_dir / summary["run_id"] / "last.pt")}), ctx)
    with Project.open(root) as p:
        plain, _ = load_checkpoint(p.runs_dir / off["run_id"] / "last.pt")
    assert plain.spec.camera_directions == () and not any("Camera directions" in line for line in lines)


def test_training_with_the_colour_part_takes_the_site_cameras_casts_out_and_keeps_them(copy_project):
    """The two cameras of the synthetic world's site give one cast direction; the saved model
    carries it, and a resumed run keeps it; --colour-cast off leaves the colour part whole."""
    from idstudio.core.model import load_checkpoint

    root = copy_project()
    base = dict(arch="resnet18", dim=544, height=64, width=32, epochs=1, steps_per_epoch=2, batch_size=16,
                warmup_steps=1, eval_every=0, colour="on", links="off", workers=0, device="cpu")
    ctx = JobContext()
    lines: list[str] = []
    ctx.log = lines.append  # type: ignore[method-assign]
    summary = training.train(root, TrainConfig(**base), ctx)
    assert "Colour part: the colour casts of 2 cameras taken out (1 direction, from their sites; " \
           "--colour-cast off keeps them)." in lines
    with Project.open(root) as p:
        model, _ = load_checkpoint(p.runs_dir / summary["run_id"] / "last.pt")
    assert len(model.spec.colour_cast) == 1 and len(model.spec.colour_cast[0]) == 512
    resumed = training.resume(root, summary["run_id"], JobContext(), {"epochs": 2})
    with Project.open(root) as p:
        again, _ = load_checkpoint(p.runs_dir / resumed["run_id"] / "last.pt")
    assert again.spec.colour_cast == model.spec.colour_cast
    lines.clear()
    init = p.runs_dir / summary["run_id"] / "last.pt"  # off also empties the casts an --init checkpoint had
    off = training.train(root, TrainConfig(**base, colour_cast="off", init=str(init)), ctx)
    with Project.open(root) as p:
        whole, _ = load_checkpoint(p.runs_dir / off["run_id"] / "last.pt")
    assert whole.spec.colour_cast == () and not any("colour casts" in line for line in lines)
    training.train(root, TrainConfig(**{**base, "dim": 32, "colour": "off"}, colour_cast="on"), ctx)
    assert "Colour part: no colour casts taken out (--colour-cast on, but there is no colour part)." in lines


def test_auto_settings_keep_links_to_cameras_and_other_videos_out_of_the_negatives(copy_project):
    """Other videos' people are negatives only when asked (on real footage they taught the
    model each video's scene); link rounds by default where a site holds two cameras (the
    synthetic world's are at one site), never beside other-video negatives, and not for
    unrelated single-camera videos (no site)."""
    from idstudio.services import ingest

    root = copy_project()
    with Project.open(root) as p:
        assert not recipe.other_video_negatives(TrainConfig(colour="on"))
        assert not recipe.other_video_negatives(TrainConfig(colour="off"))
        assert recipe.other_video_negatives(TrainConfig(other_video_negatives="on"))
        assert recipe.links_on(p, TrainConfig(colour="off"))
        assert recipe.links_on(p, TrainConfig(colour="on"))
        assert "site 'synthetic world' holds 2 cameras" in recipe.links_reason(p, TrainConfig())
        assert not recipe.links_on(p, TrainConfig(colour="off", other_video_negatives="on"))
        assert not recipe.links_on(p, TrainConfig(links="off"))
        assert recipe.colour_cast_on(p, TrainConfig(colour="on"))
        assert not recipe.colour_cast_on(p, TrainConfig(colour="off"))
        assert not recipe.colour_cast_on(p, TrainConfig(colour="on", colour_cast="off"))
        videos = [v["name"] for v in p.videos()]
    ingest.set_site(root, videos, None)  # unrelated single-camera videos
    with Project.open(root) as p:
        assert not recipe.links_on(p, TrainConfig())
        assert recipe.links_reason(p, TrainConfig()) == "no site holds two cameras"
        assert not recipe.colour_cast_on(p, TrainConfig(colour="on"))
        with pytest.raises(UserError, match="no site of this project holds two videos"):
            links._check_videos(p)

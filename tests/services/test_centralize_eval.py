"""`eval --centralize K`: stored and compared like any evaluation, combined with re-ranking,
tracklets from the latest mining round, and bad K refused in one sentence."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from idstudio import cli
from idstudio.core import centralize as fc
from idstudio.core import evaluate as ev
from idstudio.core.rerank import rerank
from idstudio.core.store import Project
from idstudio.services import evaluation


def _cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _features(project):
    loaded = evaluation.load(project, "colorhist")
    split = evaluation.split_of(project)
    qf, gf = evaluation.dataset_features(project, loaded, split)
    return split, np.asarray(qf, np.float32), np.asarray(gf, np.float32)


def test_cli_centralize_is_stored_beside_the_plain_evaluation_and_combines_with_rerank(copy_project, capsys):
    root = copy_project()
    runs = {}
    for extra in ([], ["--centralize", "2"], ["--centralize", "2", "--rerank"]):
        code, out, err = _cli(["eval", str(root), "--checkpoint", "colorhist", "--json", "--quiet", *extra], capsys)
        assert code == 0, err
        runs[" ".join(extra)] = json.loads(out.strip().splitlines()[-1])
    plain, central, both = runs[""], runs["--centralize 2"], runs["--centralize 2 --rerank"]
    assert (plain["centralize"], central["centralize"], both["centralize"]) == (0, 2, 2)
    assert both["rerank"] and not central["rerank"]
    with Project.open(root) as project:
        split, qf, gf = _features(project)
        stored = evaluation.evaluations(project)
    args = (split.query.identity, split.query.camera, split.gallery.identity, split.gallery.camera)
    cq, cg = fc.centralize_split(qf, gf, 2)
    expect = ev.evaluate_features(cq, cg, *args)
    assert central["mAP"] == pytest.approx(expect.mAP, abs=1e-9)
    assert central["mAP"] != pytest.approx(plain["mAP"], abs=1e-4)  # it changed something
    expect_both = ev.evaluate_similarity(-rerank(cq, cg), *args)  # centralized first, then re-ranked
    assert both["mAP"] == pytest.approx(expect_both.mAP, abs=1e-9)
    # Three rows, told apart by what they record.
    assert [(r["metrics"]["centralize"], r["metrics"]["rerank"]) for r in stored[-3:]] == [(0, False), (2, False), (2, True)]
    assert [r["metrics"]["mAP"] for r in stored[-3:]] == pytest.approx([plain["mAP"], central["mAP"], both["mAP"]])


@pytest.mark.parametrize("k, words", [("-1", "k >= 0"), ("100000", "more neighbours than the gallery")])
def test_bad_k_is_one_sentence_and_nothing_stored(copy_project, capsys, k, words):
    root = copy_project()
    code, _, err = _cli(["eval", str(root), "--checkpoint", "colorhist", "--centralize", k], capsys)
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err
    with Project.open(root) as project:
        assert evaluation.evaluations(project) == []


def test_video_instances_take_their_mined_tracklet(copy_project):
    root = copy_project()
    with Project.open(root) as project:
        table = project.instance_table()
        labelled = np.flatnonzero(table.identity > 0)
        rows = labelled[np.argsort(table.frame[labelled], kind="stable")][:40]
        ids = table.id[rows]
        dataset = project.add_dataset("from-video", "crosstime", None)
        project.add_dataset_items(dataset, [(int(i), "query" if n < 10 else "gallery", f"{i}.jpg")
                                            for n, i in enumerate(ids)])
        # A mining round whose component 7 joins the first query with two gallery items, and a
        # pair below the component cut (-1) that must not group anything.
        with project.transaction():
            cur = project.conn.execute("INSERT INTO mining_rounds (checkpoint, params, created_at) VALUES ('init', '{}', ?)",
                                       (time.time(),))
            round_id = cur.lastrowid
            project.conn.executemany(
                "INSERT INTO pairs (round_id, a, b, gap, similarity, reliability, component) VALUES (?, ?, ?, 1, 0.9, 0.9, ?)",
                [(round_id, int(ids[0]), int(ids[12]), 7), (round_id, int(ids[12]), int(ids[20]), 7),
                 (round_id, int(ids[1]), int(ids[13]), -1)])
        split = evaluation.split_of(project, "from-video")
        q_groups, g_groups = evaluation.tracklet_groups(project, split)
        groups = dict(zip(np.concatenate([split.query.id, split.gallery.id]).tolist(),
                          np.concatenate([q_groups, g_groups]).tolist()))
        assert {i for i, g in groups.items() if g == 7} == {int(ids[0]), int(ids[12]), int(ids[20])}
        assert all(g == -1 for i, g in groups.items() if i not in (ids[0], ids[12], ids[20]))
        figures = evaluation.evaluate(project, "colorhist", "from-video", centralize=2, store=False)
        loaded = evaluation.load(project, "colorhist")
        qf, gf = evaluation.dataset_features(project, loaded, split)
    cq, cg = fc.centralize_split(qf, gf, 2, q_groups, g_groups)
    args = (split.query.identity, split.query.camera, split.gallery.identity, split.gallery.camera)
    assert figures["mAP"] == pytest.approx(ev.evaluate_features(cq, cg, *args).mAP, abs=1e-9)
    # the tracklet's first query took its two mates, not its nearest neighbours
    row = int(np.flatnonzero(split.query.id == ids[0])[0])
    mates = [int(np.flatnonzero(split.gallery.id == i)[0]) for i in (ids[12], ids[20])]
    f = fc._unit(np.concatenate([qf, gf]))
    nq = len(split.query)
    want = fc._unit((f[row] + (f[nq + mates[0]] + f[nq + mates[1]]) / 2)[None])[0]
    np.testing.assert_allclose(cq[row], want, atol=1e-5)

"""Evaluation services and CLI, confirmed by independent computations in the test:
features recomputed here with OpenCV / the model directly, metrics by a plain-loop
brute force, identities and cameras parsed from Market file names."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from idstudio import cli
from idstudio.core import evaluate as ev
from idstudio.core import index as vindex
from idstudio.core.errors import UserError
from idstudio.core.store import Project
from idstudio.services import evaluation


def brute_force(qf, gf, q_ids, q_cams, g_ids, g_cams):
    """Market-1501 protocol in plain Python loops (independent of core.evaluate)."""
    aps, inps, firsts, skipped = [], [], [], 0
    for i in range(len(qf)):
        sims = sorted(((-float(np.dot(qf[i], gf[j])), j) for j in range(len(gf))))
        kept = [g_ids[j] == q_ids[i] for _, j in sims
                if g_ids[j] != -1 and not (g_ids[j] == q_ids[i] and g_cams[j] == q_cams[i])]
        if q_ids[i] <= 0 or not any(kept):
            skipped += 1
            continue
        found, prec, last = 0, [], 0
        for rank, good in enumerate(kept, 1):
            if good:
                found += 1
                prec.append(found / rank)
                last = rank
        aps.append(sum(prec) / found)
        inps.append(found / last)
        firsts.append(kept.index(True) + 1)
    n = len(aps)
    out = {f"rank{k}": sum(f <= k for f in firsts) / n for k in (1, 5, 10, 20)}
    out.update(mAP=sum(aps) / n, mINP=sum(inps) / n, n_queries=n, n_skipped=skipped)
    return out


def decode(jpeg: bytes, h=128, w=64) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def colorhist_cv2(rgb: np.ndarray, stripes=8, bins=(16, 8, 8)) -> np.ndarray:
    """The colour-histogram baseline written with OpenCV's HSV conversion and np.histogram."""
    hsv = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees, S and V in [0, 1]
    chans = (hsv[..., 0] / 360.0, hsv[..., 1], hsv[..., 2])
    h = rgb.shape[0]
    feats = []
    for s in range(stripes):
        rows = [r for r in range(h) if r * stripes // h == s]
        for c, nb in zip(chans, bins):
            feats.append(np.histogram(np.clip(c[rows], 0, 1 - 1e-6), bins=nb, range=(0, 1))[0])
    f = np.sqrt(np.concatenate(feats).astype(np.float64))
    return f / np.linalg.norm(f)


def _split(project: Project):
    d = project.dataset()
    s = project.dataset_split(d["id"])
    return s["query"], s["gallery"]


def _run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_colorhist_matches_opencv(small_project):
    with Project.open(small_project) as project:
        q, g = _split(project)
        ids = np.concatenate([q.id, g.id])[:12]
        jpegs = project.crop_jpegs(ids)
    ours = evaluation.ColorHistogram()(torch.from_numpy(np.stack([decode(j) for j in jpegs])).permute(0, 3, 1, 2).float() / 255)
    theirs = np.stack([colorhist_cv2(decode(j)) for j in jpegs])
    # Equal up to pixels on a bin edge (float32 vs OpenCV rounding): one pixel moves sqrt-counts by ~0.02.
    assert np.abs(ours.numpy() - theirs).max() < 0.03
    assert np.abs(ours.numpy() - theirs).mean() < 1e-3


def colorhist_direct(jpegs) -> np.ndarray:
    """Baseline features computed directly (own decoding, no pipeline, no cache)."""
    x = torch.from_numpy(np.stack([decode(j) for j in jpegs])).permute(0, 3, 1, 2).float() / 255
    return evaluation.ColorHistogram()(x).numpy().astype(np.float64)


def test_cli_eval_json_confirmed_independently(copy_project, capsys):
    root = copy_project()
    code, out, err = _run_cli(["eval", str(root), "--checkpoint", "colorhist", "--json", "--quiet"], capsys)
    assert code == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    with Project.open(root) as project:
        q, g = _split(project)
        jpegs = project.crop_jpegs(np.concatenate([q.id, g.id]))
        stored = evaluation.evaluations(project)
    feats = colorhist_direct(jpegs)
    ref = brute_force(feats[:len(q)], feats[len(q):], q.identity.tolist(), q.camera, g.identity.tolist(), g.camera)
    assert ref["n_queries"] >= 10
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "n_queries", "n_skipped"):
        assert figures[key] == pytest.approx(ref[key], abs=1e-6), key
    # Stored per checkpoint and dataset.
    assert stored[-1]["checkpoint"] == "colorhist" and stored[-1]["metrics"]["mAP"] == pytest.approx(figures["mAP"])


def test_init_model_eval_and_trainer_entry_agree_with_direct_forward(copy_project, capsys):
    root = copy_project()
    code, out, err = _run_cli(["eval", str(root), "--checkpoint", "init", "--json", "--quiet"], capsys)
    assert code == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    from idstudio.services.models import load_model

    with Project.open(root) as project:
        model, _ = load_model(project, "init")
        q, g = _split(project)
        jpegs = project.crop_jpegs(np.concatenate([q.id, g.id]))
        with torch.inference_mode():
            x = torch.from_numpy(np.stack([decode(j) for j in jpegs])).permute(0, 3, 1, 2).float() / 255
            feats = model(x).numpy()
        model.train()
        trainer = evaluation.evaluate_model(project, model)
        assert model.training  # mode restored for the trainer
    ref = brute_force(feats[:len(q)], feats[len(q):], q.identity.tolist(), q.camera, g.identity.tolist(), g.camera)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "n_queries", "n_skipped"):
        # the cache stores float16: figures may move only by a near-tie
        assert figures[key] == pytest.approx(ref[key], abs=0.02), key
        assert trainer[key] == pytest.approx(ref[key], abs=1e-6), key
    assert set(trainer) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "n_queries", "n_skipped"}


def _market_project(tmp_path, real_data) -> Path:
    from idstudio.services import ingest

    root = tmp_path / "market"
    ingest.import_market(root, real_data / "market-sample", name="market-sample")
    return root


def test_market_sample_protocol(tmp_path, real_data, capsys):
    root = _market_project(tmp_path, real_data)
    code, out, err = _run_cli(["eval", str(root), "--checkpoint", "colorhist", "--json", "--quiet"], capsys)
    assert code == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    # Independent: identities and cameras from the file names, features computed directly.
    name = re.compile(r"^(-?\d+)_c(\d)s\d_\d+_\d+\.jpg$")
    folder = real_data / "market-sample"
    sides = {}
    for split, sub in (("query", "query"), ("gallery", "bounding_box_test")):
        files = sorted(folder.joinpath(sub).glob("*.jpg"))
        ids = [int(name.match(f.name).group(1)) for f in files]
        cams = [int(name.match(f.name).group(2)) for f in files]
        feats = colorhist_direct([f.read_bytes() for f in files])
        sides[split] = (feats, ids, cams)
    (qf, qi, qc), (gf, gi, gc) = sides["query"], sides["gallery"]
    ref = brute_force(qf, gf, qi, qc, gi, gc)
    assert ref["n_queries"] == 3 and ref["n_skipped"] == 0
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "n_queries", "n_skipped"):
        assert figures[key] == pytest.approx(ref[key], abs=1e-6), key
    # The protocol's view of every gallery item: junk ignored, distractors wrong, matches right.
    with Project.open(root) as project:
        split, res, _ = evaluation.evaluation_details(project, "colorhist", k=1000)
    assert res.status.shape == (3, 60)
    junk = split.gallery.identity[res.ranked] == -1
    assert (res.status[junk] == ev.IGNORED).all() and junk.sum() == 3 * 6
    distractor = split.gallery.identity[res.ranked] == 0
    assert (res.status[distractor] == ev.WRONG).all()
    n_right = (res.status == ev.RIGHT).sum(axis=1)
    expected = [sum(1 for i in gi if i == q) for q in split.query.identity]
    assert n_right.tolist() == expected == [8, 15, 8]


def test_search_by_instance_and_image(copy_project, tmp_path):
    root = copy_project()
    with Project.open(root) as project:
        q, g = _split(project)
        qid = int(q.id[0])
        res = evaluation.search(project, "colorhist", instances=[qid, int(q.id[1])], k=5)
        assert len(res) == 2 and len(res[0]["hits"]) == 5
        hits = res[0]["hits"]
        assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
        assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
        row = {int(v): r for r, v in enumerate(g.id)}
        for h in hits:  # status as the protocol sees it
            gi, gc = g.identity[row[h["instance_id"]]], g.camera[row[h["instance_id"]]]
            want = "ignored" if gi == -1 or (gi == q.identity[0] and gc == q.camera[0]) else (
                "right" if gi == q.identity[0] else "wrong")
            assert h["status"] == want
        # An image file embedded on the fly finds itself first (its crop is in the gallery).
        path = tmp_path / "crop.jpg"
        path.write_bytes(project.crop_jpegs([int(g.id[3])])[0])
        res_img = evaluation.search(project, "colorhist", image=path, k=3)
        assert res_img[0]["hits"][0]["instance_id"] == int(g.id[3])
        assert res_img[0]["hits"][0]["status"] is None  # identity of an image file is unknown


def test_bad_inputs_one_sentence_each(copy_project, tmp_path, capsys):
    root = copy_project()
    # An image that is not an image.
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    code, _, err = _run_cli(["search", str(root), "--checkpoint", "colorhist", "--image", str(bad)], capsys)
    assert code == 2 and "is not an image" in err and err.count("\n") == 1 and "Traceback" not in err
    # A checkpoint that does not match (not an idstudio checkpoint).
    ck = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, ck)
    code, _, err = _run_cli(["eval", str(root), "--checkpoint", str(ck)], capsys)
    assert code == 2 and "not an idstudio checkpoint" in err and err.count("\n") == 1
    # A dataset with no queries, and one with no gallery.
    with Project.open(root) as project:
        g_only = project.add_dataset("gallery-only", "market", None)
        q_only = project.add_dataset("query-only", "market", None)
        q, g = _split(project)
        project.add_dataset_items(g_only, [(int(i), "gallery", "x.jpg") for i in g.id[:5]])
        project.add_dataset_items(q_only, [(int(i), "query", "x.jpg") for i in q.id[:5]])
    code, _, err = _run_cli(["eval", str(root), "--checkpoint", "colorhist", "--dataset", "gallery-only"], capsys)
    assert code == 2 and "has no query images" in err and err.count("\n") == 1
    code, _, err = _run_cli(["eval", str(root), "--checkpoint", "colorhist", "--dataset", "query-only"], capsys)
    assert code == 2 and "has no gallery images" in err and err.count("\n") == 1


def test_index_of_another_checkpoint_is_detected_and_rebuilt(copy_project):
    root = copy_project()
    messages = []
    from idstudio.core.jobs import JobContext

    ctx = JobContext(on_event=lambda e: messages.append(e.get("message", "")))
    with Project.open(root) as project:
        loaded = evaluation.load(project, "colorhist")
        index, table, _ = evaluation.get_index(project, loaded, ctx=ctx)
        path = next(Path(project.cache_dir).rglob("gallery-*.auto.faiss"))
        # Someone writes an index of another checkpoint where this one's belongs.
        impostor = vindex.build_index(np.eye(len(table), 256, dtype=np.float32), table.id, key="runs/x/best.pt@1-2",
                                      dataset="g")
        impostor.save(path)
        with pytest.raises(UserError, match="built with checkpoint runs/x/best.pt@1-2"):
            vindex.VectorIndex.load(path, expected_key=loaded.cache_key)
        again, _, _ = evaluation.get_index(project, loaded, ctx=ctx)
        assert again.key == loaded.cache_key
        assert any("built with checkpoint runs/x/best.pt" in m and "Rebuilding" in m for m in messages)
        assert vindex.VectorIndex.load(path, expected_key=loaded.cache_key).key == loaded.cache_key


def test_embedding_cache_is_float16_and_incremental(copy_project):
    from idstudio.core import embed as core_embed

    root = copy_project()
    with Project.open(root) as project:
        q, g = _split(project)
        model = evaluation.ColorHistogram()
        calls = []
        real_forward = model.forward
        model.forward = lambda x: (calls.append(len(x)), real_forward(x))[1]
        first = core_embed.cached_embeddings(project, model, "colorhist", "t", g.id[:20], batch_size=8)
        assert first.dtype == np.float16 and isinstance(first, np.memmap) and sum(calls) == 20
        calls.clear()
        both = core_embed.cached_embeddings(project, model, "colorhist", "t", g.id, batch_size=8)
        assert sum(calls) == len(g) - 20  # only the new instances were embedded
        direct = core_embed.embed_instances(project, model, g.id, batch_size=7)
        assert np.abs(np.asarray(both, np.float32) - direct).max() < 2e-3
        calls.clear()
        core_embed.cached_embeddings(project, model, "colorhist", "t", g.id)
        assert calls == []
        flipped = core_embed.embed_instances(project, model, g.id[:4], flip=True)
        assert np.allclose(np.linalg.norm(flipped, axis=1), 1, atol=1e-5)


def test_embedding_unwraps_data_parallel(small_project):
    from idstudio.core import embed as core_embed

    with Project.open(small_project) as project:
        ids = project.dataset_split(project.dataset()["id"])["gallery"].id[:6]
        model = evaluation.ColorHistogram()
        wrapped = torch.nn.DataParallel(model)  # what a trainer may hand over (DDP has .module too)
        assert np.array_equal(core_embed.embed_instances(project, wrapped, ids),
                              core_embed.embed_instances(project, model, ids))

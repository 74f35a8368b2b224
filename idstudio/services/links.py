"""Cross-video link rounds (``core.links``): the job behind ``idstudio link``, the trainer's
link rounds, the links that training uses, export, and decisions from a file.

A link is stored with its two representative instances and both tracklets' members (for
review and export). Decisions on a link are ordinary reviews of the representatives' pair
(``services.review``), so undo, redo and the append-only log work unchanged, and the
decision survives re-linking and re-mining.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from idstudio.core.config import field
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.links import LinkParams, LinkResult, find_links, strong_tracklets
from idstudio.core.store import Project, opened, to_json
from idstudio.core.tracklets import Tracklets
from idstudio.services.instances import linkable_sites, row_sites
from idstudio.services.rounds import apply_reviews, round_pairs
from idstudio.services.train_config import LinkFields


@dataclass
class LinkConfig(LinkFields):
    GROUPS: ClassVar[tuple[str, ...]] = ("Model", "Links", "Hardware")

    checkpoint: str = field("", help="model to embed with: a run id, a registered model, a .pt file, or empty for "
                            "the latest run", group="Model", special=("", "latest run"))
    mining_round: int = field(0, help="mining round whose pseudo-tracklets are linked (0: the latest)", group="Links",
                              special=(0, "latest"))
    batch_size: int = field(128, help="images per embedding batch", group="Hardware")
    device: str = field("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps", group="Hardware")


def round_tracklets(project: Project, table, round_id: int, decisions: dict[tuple[int, int], str],
                    min_reliability: float = 0.0) -> Tracklets:
    """The pseudo-tracklets of a mining round over ``table``'s rows, after human decisions
    (a rejected pair never joins one; cross-video decisions are links, not tracklets),
    following only pairs at least ``min_reliability`` reliable."""
    a, b, rel, comp = round_pairs(project, round_id)
    a, b, rel, comp, pos = apply_reviews(a, b, rel, comp, within_video(decisions, table))
    ra, rb = table.rows_of(a), table.rows_of(b)
    keep = (ra >= 0) & (rb >= 0)
    return strong_tracklets(ra[keep], rb[keep], rel[keep], comp[keep], pos[keep], table.frame, min_reliability)[0]


def _decided_rows(decisions: dict[tuple[int, int], str], table) -> tuple[list, np.ndarray, np.ndarray]:
    """The decided pairs, and both instances' rows in ``table`` (-1 where not in it)."""
    keys = list(decisions)
    pairs = np.array(keys, np.int64).reshape(-1, 2)
    return keys, table.rows_of(pairs[:, 0]), table.rows_of(pairs[:, 1])


def within_video(decisions: dict[tuple[int, int], str], table) -> dict[tuple[int, int], str]:
    """The decisions about pairs of one video (the rest are about links)."""
    keys, ra, rb = _decided_rows(decisions, table)
    same = (ra >= 0) & (rb >= 0) & (table.video_id[ra] == table.video_id[rb])
    return {keys[i]: decisions[keys[i]] for i in np.flatnonzero(same)}


def store_link_round(project: Project, tracklets: Tracklets, result: LinkResult, table, params: LinkParams,
                     checkpoint: str, mining_round_id: int | None, run_id: str | None = None) -> int:
    """One link round and all its candidates (kept or not), in one transaction."""
    ids = table.id
    stats = result.stats
    with project.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO link_rounds (mining_round_id, run_id, checkpoint, params, n_links, precision, recall, stats, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mining_round_id, run_id, checkpoint, to_json(params.to_dict()), int(result.kept.sum()),
             stats.get("precision"), stats.get("recall"), to_json(stats), time.time()))
        round_id = int(cur.lastrowid)
        conn.executemany(
            "INSERT INTO links (round_id, a, b, a_members, b_members, similarity, reliability, kept)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(round_id, int(ids[result.rep_a[k]]), int(ids[result.rep_b[k]]),
              json.dumps(ids[tracklets.members[result.ta[k]]].tolist()),
              json.dumps(ids[tracklets.members[result.tb[k]]].tolist()),
              float(result.similarity[k]), float(result.reliability[k]), int(result.kept[k]))
             for k in range(len(result))])
    return round_id


def link_round(project: Project, table, emb: np.ndarray, mining_round_id: int, params: LinkParams,
               checkpoint: str, run_id: str | None = None, store: bool = True) -> tuple[int | None, LinkResult]:
    """Link the tracklets of ``mining_round_id`` with embeddings ``emb`` (rows of ``table``)."""
    from idstudio.services.review import current_decisions

    tracklets = round_tracklets(project, table, mining_round_id, current_decisions(project), params.min_reliability)
    result = find_links(tracklets.members, emb, table.video_id, table.frame, params, identity=table.identity,
                        site=row_sites(project, table), imported=table.tracklet >= 0)
    round_id = store_link_round(project, tracklets, result, table, params, checkpoint, mining_round_id, run_id) if store else None
    return round_id, result


def training_links(project: Project, table, link_round_id: int | None) -> list[tuple[int, int, float]]:
    """The links training uses, as (row, row, weight) over ``table``: the kept links of
    ``link_round_id`` weighted by reliability, less rejected ones, plus every accepted
    cross-video pair (weight 1), whichever round it came from."""
    from idstudio.services.review import current_decisions

    decisions = current_decisions(project)
    out: dict[tuple[int, int], float] = {}
    if link_round_id is not None:
        for r in project.query("SELECT a, b, reliability FROM links WHERE round_id = ? AND kept = 1", (link_round_id,)):
            key = (min(r[0], r[1]), max(r[0], r[1]))
            if decisions.get(key) != "reject":
                out[key] = float(r[2])
    out.update({key: 1.0 for key, decision in decisions.items() if decision == "accept"})
    keys, ra, rb = _decided_rows(dict.fromkeys(out), table)
    across = (ra >= 0) & (rb >= 0) & (table.video_id[ra] != table.video_id[rb])
    return [(int(ra[i]), int(rb[i]), out[keys[i]]) for i in np.flatnonzero(across)]


def latest_link_round(project: Project) -> int | None:
    value = project.scalar("SELECT MAX(id) FROM link_rounds")
    return None if value is None else int(value)


def _check_videos(project: Project) -> None:
    if linkable_sites(project):
        return
    n = int(project.scalar("SELECT COUNT(DISTINCT v.id) FROM videos v JOIN instances i ON i.video_id = v.id") or 0)
    if n < 2:
        raise UserError(f"Linking needs people from two or more videos; this project has {n}. Import another video "
                        "(`idstudio import-video`, `import-mot` or `import-tracklets`) first.")
    raise UserError(f"Links join cameras of one site, and no site of this project holds two videos ({n} videos in all); "
                    "put the videos filmed at one place at one site first: `idstudio site PROJECT NAME VIDEO VIDEO ...` "
                    "or the Site column of the Data view.")


def link(project_root: Path | Project, config: LinkConfig | None = None, ctx: JobContext | None = None) -> dict[str, Any]:
    """One link round with the given model over the tracklets of a mining round."""
    from idstudio.core import crop_cache
    from idstudio.services.models import load_model, resolve_checkpoint
    from idstudio.services.embedding import embed_store, pick_device
    from idstudio.services.instances import training_instances

    cfg = config or LinkConfig()
    ctx = ctx or JobContext()
    with opened(project_root) as project:
        _check_videos(project)
        mining_round = cfg.mining_round or project.scalar("SELECT MAX(id) FROM mining_rounds")
        if mining_round is None:
            raise UserError("This project has no mining round yet; run `idstudio mine PROJECT` (or train) first.")
        if not project.scalar("SELECT 1 FROM mining_rounds WHERE id = ?", (int(mining_round),)):
            raise UserError(f"There is no mining round {mining_round} in this project.")
        if not 0 < cfg.link_keep <= 1:
            raise UserError(f"--link-keep is a share of the candidate links, above 0 and at most 1, not {cfg.link_keep}.")
        table = training_instances(project)
        device = pick_device(cfg.device)
        model, ref = load_model(project, resolve_checkpoint(project, cfg.checkpoint or None), device=str(device))
        ctx.log(f"Model: {ref.key}.")
        ctx.progress(0, len(table), "decoding crops")
        t0 = time.perf_counter()
        crops = crop_cache.crop_store(project, table.id, model.spec)
        emb, _ = embed_store(model, crops, device, cfg.batch_size, ctx)
        params = cfg.link_params(0, colour_part=model.spec.colour > 0)
        round_id, result = link_round(project, table, emb, int(mining_round), params, ref.key)
        s = result.stats
        out = {"round_id": round_id, "mining_round_id": int(mining_round), "checkpoint": ref.key,
               "n_links": s["n_links"], "n_candidates": s["n_candidates"], "n_tracklets": s["n_tracklets"],
               "precision": s.get("precision"), "recall": s.get("recall"), "keep": params.keep,
               "seconds": round(time.perf_counter() - t0, 2)}
        for name in ("precision", "recall"):
            if out[name] is not None:
                ctx.metric(f"link/{name}", round_id or 0, out[name])
        return out


# ---- review and exchange ---------------------------------------------------------------------------
def link_rows(project: Project, round_id: int | None = None, order: str = "reliability") -> list[dict[str, Any]]:
    """The links of a round (default: the latest), each with both sides' videos, time spans,
    members and the current decision; least reliable first (``order="reliability"``) or
    most similar first (``"similarity"``)."""
    from idstudio.services.review import current_decisions

    round_id = round_id if round_id is not None else latest_link_round(project)
    if round_id is None:
        return []
    decisions = current_decisions(project)
    rows = project.query(
        """SELECT l.id, l.a, l.b, l.a_members, l.b_members, l.similarity, l.reliability, l.kept,
                  ia.video_id AS va, ib.video_id AS vb, na.name AS video_a, nb.name AS video_b
           FROM links l JOIN instances ia ON ia.id = l.a JOIN instances ib ON ib.id = l.b
           LEFT JOIN videos na ON na.id = ia.video_id LEFT JOIN videos nb ON nb.id = ib.video_id
           WHERE l.round_id = ?""", (round_id,))
    frames: dict[int, int] = {}
    out = []
    for r in rows:
        am, bm = json.loads(r["a_members"]), json.loads(r["b_members"])
        out.append({"id": r["id"], "round_id": round_id, "a": r["a"], "b": r["b"], "a_members": am, "b_members": bm,
                    "similarity": r["similarity"], "reliability": r["reliability"], "kept": bool(r["kept"]),
                    "video_a": r["video_a"], "video_b": r["video_b"],
                    "decision": decisions.get((min(r["a"], r["b"]), max(r["a"], r["b"])), "none")})
    ids = {i for link_ in out for i in (link_["a_members"][0], link_["a_members"][-1], link_["b_members"][0], link_["b_members"][-1])}
    if ids:
        marks = ",".join("?" * len(ids))
        frames = {int(r[0]): int(r[1]) for r in project.query(f"SELECT id, frame FROM instances WHERE id IN ({marks})", list(ids))}
    for link_ in out:
        link_["frames_a"] = (frames.get(link_["a_members"][0]), frames.get(link_["a_members"][-1]))
        link_["frames_b"] = (frames.get(link_["b_members"][0]), frames.get(link_["b_members"][-1]))
    key = (lambda x: (x["reliability"], x["id"])) if order == "reliability" else (lambda x: (-x["similarity"], x["id"]))
    return sorted(out, key=key)


def split_pairs(project: Project, members: list[int], cut: int, mining_round_id: int | None = None) -> list[tuple[int, int]]:
    """The mined pairs that hold a tracklet together across position ``cut`` of its
    ``members`` (time order): rejecting them splits it in two."""
    if not 0 < cut < len(members):
        raise UserError(f"Split a tracklet between two of its {len(members)} members (position 1 to {len(members) - 1}), not at {cut}.")
    mining_round_id = mining_round_id or project.scalar("SELECT MAX(id) FROM mining_rounds")
    before = set(members[:cut])
    marks = ",".join("?" * len(members))
    rows = project.query(f"SELECT a, b FROM pairs WHERE round_id = ? AND a IN ({marks}) AND b IN ({marks})",
                         [mining_round_id, *members, *members])
    return [(r[0], r[1]) for r in rows if (r[0] in before) != (r[1] in before)]


def split_tracklet(project: Project, members: list[int], cut: int, reviewer: str | None = None) -> int:
    """Reject the pairs across ``cut`` in one review action (undo restores them)."""
    from idstudio.services.review import decide

    pairs = split_pairs(project, members, cut)
    if not pairs:
        raise UserError("No mined pair joins the two halves of this tracklet; it is already split there.")
    return decide(project, pairs, "reject", reviewer)


EXPORT_COLUMNS = ["link_id", "round_id", "video_a", "a", "frames_a", "video_b", "b", "frames_b", "similarity",
                  "reliability", "kept", "review"]


def export_links(project_root: Path | Project, out: Path, round_id: int | None = None) -> dict[str, Any]:
    """CSV of a link round (default: the latest) with the current decisions; `import_decisions`
    reads the same file back, so links can be confirmed in a spreadsheet too."""
    with opened(project_root) as project:
        round_id = round_id if round_id is not None else latest_link_round(project)
        if round_id is None:
            raise UserError("This project has no link round yet; run `idstudio link PROJECT` first.")
        rows = link_rows(project, round_id, order="similarity")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(EXPORT_COLUMNS)
            for r in rows:
                w.writerow([r["id"], round_id, r["video_a"], r["a"], "%s-%s" % r["frames_a"], r["video_b"], r["b"],
                            "%s-%s" % r["frames_b"], f"{r['similarity']:.6f}", f"{r['reliability']:.6f}", int(r["kept"]),
                            "" if r["decision"] == "none" else r["decision"]])
        os.replace(tmp, out)
        return {"round_id": int(round_id), "links": len(rows), "out": str(out)}


def import_decisions(project_root: Path | Project, path: Path, reviewer: str | None = None) -> dict[str, Any]:
    """Read a links CSV (as exported; columns ``a``, ``b``, ``review``) and record its
    accept/reject decisions as one review action. The whole file is checked first: a bad
    file records nothing."""
    from idstudio.services.review import decide

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise UserError(f"There is no file {path}.") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path.name} is not a CSV text file of links ({exc}).") from None
    if not rows or not {"a", "b", "review"} <= set(rows[0]):
        raise UserError(f"{path.name} is not a links file: it needs the columns a, b and review, as `idstudio links export` writes.")
    by_decision: dict[str, list[tuple[int, int]]] = {"accept": [], "reject": []}
    for line, r in enumerate(rows, start=2):
        review = (r.get("review") or "").strip().lower()
        if review in ("", "none"):
            continue
        if review not in by_decision:
            raise UserError(f"{path.name} line {line}: review is accept, reject or empty, not {review!r}.")
        try:
            by_decision[review].append((int(r["a"]), int(r["b"])))
        except (TypeError, ValueError):
            raise UserError(f"{path.name} line {line}: a and b must be instance ids, not {r.get('a')!r} and {r.get('b')!r}.") from None
    with opened(project_root) as project:
        wanted = {i for pairs in by_decision.values() for p in pairs for i in p}
        if wanted:
            marks = ",".join("?" * len(wanted))
            known = {int(r[0]) for r in project.query(f"SELECT id FROM instances WHERE id IN ({marks})", list(wanted))}
            missing = sorted(wanted - known)
            if missing:
                raise UserError(f"{path.name} names instances this project does not have (e.g. {missing[0]}); "
                                "was it exported from another project?")
        actions = {d: decide(project, pairs, d, reviewer) for d, pairs in by_decision.items() if pairs}
    return {"accept": len(by_decision["accept"]), "reject": len(by_decision["reject"]), "actions": actions}

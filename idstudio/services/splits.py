"""Cross-time splits: a labelled query/gallery dataset from the later frames of a video.

A user with ground-truth identities for one video (MOT gt, or their own) checks a model on
their own footage: frames from ``from_frame`` on are held out of training and mining, and
their labelled boxes become a dataset like any other. The later frames are cut in two time
windows: queries come from the first, the gallery from the second, so every match crosses
a time gap (the query window is "camera" ``q``, the gallery window ``g``: the Market-1501
protocol then keeps every gallery item). Only identities seen in both windows give queries;
the others stay in the gallery as distractors. Crops are copied into the dataset (gallery
images have no video), so later imports or deletions of the video never change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idstudio.core.errors import UserError
from idstudio.core.store import Project


def _spread(rows: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` of ``rows`` (ordered by time), evenly spread over them."""
    if len(rows) <= k:
        return rows
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(int)]


def _find_video(project: Project, video: str | int) -> dict[str, Any]:
    for v in project.videos():
        if str(v["id"]) == str(video) or v["name"] == str(video) or Path(v["path"]).name == str(video):
            return v
    names = ", ".join(v["name"] for v in project.videos()) or "none"
    raise UserError(f"There is no video {video!r} in this project; its videos are: {names}.")


def crosstime_split(project_root: Path | Project, video: str | int, from_frame: int | None = None,
                    from_share: float = 0.6, name: str | None = None, queries_per_identity: int = 4,
                    gallery_per_identity: int = 16) -> dict[str, Any]:
    """Build the dataset ``<video>-crosstime`` (or ``name``) from frames >= ``from_frame``
    (default: the first frame after ``from_share`` of the video) and hold those frames out
    of training. Returns counts."""
    project = project_root if isinstance(project_root, Project) else Project.open(project_root)
    v = _find_video(project, video)
    if v["status"] != "complete":
        raise UserError(f"Video {v['name']} is still importing (or its import failed); finish the import first.")
    table = project.instance_table(video_id=v["id"])
    frames = np.unique(table.frame)
    if len(frames) < 4:
        raise UserError(f"Video {v['name']} has instances in only {len(frames)} frames; a cross-time split needs more.")
    if from_frame is None:
        if not 0.0 < from_share < 1.0:
            raise UserError(f"--from-share must be between 0 and 1 (it was {from_share}); it is the share of frames kept for training.")
        from_frame = int(frames[min(len(frames) - 2, int(len(frames) * from_share))])
    if from_frame <= frames[0] or from_frame > frames[-2]:
        raise UserError(f"--from-frame {from_frame} leaves no frames for training or for the split; "
                        f"{v['name']} has instances in frames {frames[0]}..{frames[-1]}.")
    if v.get("holdout_from") is not None:
        raise UserError(f"Video {v['name']} already has a cross-time split from frame {v['holdout_from']}; "
                        "a video holds one split.")
    later = (table.frame >= from_frame) & (table.identity > 0)
    if not later.any():
        raise UserError(f"Video {v['name']} has no ground-truth identities from frame {from_frame} on; "
                        "import it with its gt (import-mot, or import-video --gt) to split it.")
    later_frames = np.unique(table.frame[table.frame >= from_frame])
    middle = int(later_frames[len(later_frames) // 2])
    rows = np.flatnonzero(later)
    rows = rows[np.lexsort((table.frame[rows], table.identity[rows]))]  # by identity, then time
    query_rows, gallery_rows = [], []
    for ident in np.unique(table.identity[rows]):
        mine = rows[table.identity[rows] == ident]
        early, late = mine[table.frame[mine] < middle], mine[table.frame[mine] >= middle]
        gallery_rows.extend(_spread(late, gallery_per_identity))
        if len(early) and len(late):
            query_rows.extend(_spread(early, queries_per_identity))
    if not query_rows:
        raise UserError(f"No person of {v['name']} is seen both before and after frame {middle}; "
                        "choose an earlier --from-frame.")
    chosen = [("query", r) for r in query_rows] + [("gallery", r) for r in gallery_rows]
    ids = [int(table.id[r]) for _, r in chosen]
    crops = project.crop_jpegs(ids)
    name = name or f"{v['name']}-crosstime"
    copies = [{"frame": int(table.frame[r]), "x": float(table.boxes[r, 0]), "y": float(table.boxes[r, 1]),
               "w": float(table.boxes[r, 2]), "h": float(table.boxes[r, 3]), "score": 1.0, "source": "gallery",
               "identity": int(table.identity[r]), "camera": "q" if split == "query" else "g"} for split, r in chosen]
    dataset_id = project.add_dataset(name, "crosstime", f"video:{v['id']}:from:{from_frame}")
    new_ids = project.add_frames_and_instances(None, [], copies, crops)
    project.add_dataset_items(dataset_id, [(i, split, f"{table.identity[r]:04d}_{'c1' if split == 'query' else 'c2'}"
                                            f"_f{int(table.frame[r]):06d}_{i}.jpg")
                                           for i, (split, r) in zip(new_ids, chosen)])
    with project.transaction():
        project.conn.execute("UPDATE videos SET holdout_from = ? WHERE id = ?", (int(from_frame), v["id"]))
    held_out = int((table.frame >= from_frame).sum())
    return {"dataset_id": dataset_id, "name": name, "video": v["name"], "from_frame": int(from_frame),
            "query_until_frame": middle, "query": len(query_rows), "gallery": len(gallery_rows),
            "identities": int(len(np.unique(table.identity[rows]))), "held_out_instances": held_out,
            "training_instances": int(len(table) - held_out)}


def training_mask(project: Project, table) -> np.ndarray:
    """Which rows of a video instance table may be trained and mined on: everything but the
    frames a cross-time split holds out."""
    holdout = {int(r[0]): int(r[1]) for r in project.query(
        "SELECT id, holdout_from FROM videos WHERE holdout_from IS NOT NULL")}
    if not holdout:
        return np.ones(len(table), dtype=bool)
    limit = np.full(len(table), np.iinfo(np.int64).max, dtype=np.int64)
    for video_id, first_held_out in holdout.items():
        limit[table.video_id == video_id] = first_held_out
    return table.frame < limit

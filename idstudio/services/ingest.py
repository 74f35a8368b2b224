"""Ingest: from videos, frame folders, MOT sequences and Market-1501 folders to a project's
person instances (boxes and crops).

Three stages overlap on all cores: frames are decoded sequentially in a background thread;
this thread detects and clips boxes (detectors with state see the frames in order) and hands
each frame's crops to a pool of JPEG encoders; one writer thread commits the batches in
order. Each batch of frames is committed in one transaction together with the video's
``last_frame``, and no batch is written after one that failed, so an interrupted import
leaves a consistent project that the same command resumes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from idstudio.core import market
from idstudio.core.boxes import assign_identities, assign_identities_by_frame, clip_boxes
from idstudio.core.detectors import DEFAULT_DETECTOR, make_detector
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext
from idstudio.core.mot import MotBoxes, read_mot_file, read_seqinfo
from idstudio.core.sources import FolderSource, VideoSource, open_source, prefetch, read_image
from idstudio.core.store import Project, opened

CROP_MAX_HEIGHT = 256
JPEG_QUALITY = 90
BATCH_FRAMES = 64
# OpenCV releases the GIL while resizing and encoding, so threads use every core.
ENCODE_WORKERS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# Frames handed to the encoders and batches waiting for the writer: bounds memory (a 1080p
# frame is 6 MB) while keeping every stage busy.
ENCODE_AHEAD = 4 * ENCODE_WORKERS
WRITE_AHEAD = 2

# (frame number, image) -> the frame's boxes clipped to it (xywh), their scores and identities
# (-1 unknown), and how many boxes lay entirely outside the frame.
BoxesFor = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, int]]


def encode_crop(image: np.ndarray, box: np.ndarray) -> bytes:
    """The box (xywh, already clipped) cut from the frame, at most CROP_MAX_HEIGHT high, as JPEG."""
    x0, y0 = int(box[0]), int(box[1])
    x1 = max(x0 + 1, int(np.ceil(box[0] + box[2])))
    y1 = max(y0 + 1, int(np.ceil(box[1] + box[3])))
    crop = image[y0:y1, x0:x1]
    if crop.shape[0] > CROP_MAX_HEIGHT:
        width = max(1, round(crop.shape[1] * CROP_MAX_HEIGHT / crop.shape[0]))
        crop = cv2.resize(crop, (width, CROP_MAX_HEIGHT), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


def _encode_all(image: np.ndarray, boxes: np.ndarray) -> list[bytes]:
    return [encode_crop(image, box) for box in boxes]


class _OrderedWriter:
    """Commits batches on one thread in the order they were submitted, while the caller
    decodes and encodes the next ones. Each batch is all-or-nothing
    (``add_frames_and_instances``); once one fails or the writer is abandoned, no later batch
    is written, so the video's ``last_frame`` never passes a batch that is missing."""

    def __init__(self, project: Project, video_id: int):
        self._project = project
        self._video_id = video_id
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write")
        self._pending: deque[Future] = deque()
        self._halted = threading.Event()

    def submit(self, frames: list[tuple[int, str | None]], rows: list[dict[str, Any]], encoded: list[Future]) -> None:
        while self._pending and (self._pending[0].done() or len(self._pending) >= WRITE_AHEAD):
            self._pending.popleft().result()  # a failed commit is raised here, in the caller's thread
        self._pending.append(self._thread.submit(self._commit, frames, rows, encoded))

    def _commit(self, frames, rows, encoded) -> None:
        if self._halted.is_set():
            return
        try:
            crops = [jpeg for future in encoded for jpeg in future.result()]
            self._project.add_frames_and_instances(self._video_id, frames, rows, crops, last_frame=frames[-1][0])
        except BaseException:
            self._halted.set()
            raise

    def drain(self) -> None:
        """Wait until every submitted batch is committed; raise the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Write nothing more (batches not yet started are dropped whole) and end the thread."""
        self._halted.set()
        self._pending.clear()
        self._thread.shutdown(wait=True)


def _known_boxes_for(frames: np.ndarray, boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray,
                     width: int, height: int) -> BoxesFor:
    """Boxes known before decoding (MOT det or gt files): clipped and grouped by frame in a few
    numpy calls up front, so the loop that keeps pace with the decoder only looks them up."""
    clipped, keep = clip_boxes(boxes, width, height)
    order = np.argsort(frames, kind="stable")  # file order within a frame
    numbers, starts = np.unique(frames[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    index = {}
    for number, lo, hi in zip(numbers.tolist(), starts.tolist(), ends.tolist()):
        rows = order[lo:hi]
        kept = rows[keep[rows]]
        index[number] = (clipped[kept], scores[kept], ids[kept], len(rows) - len(kept))
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0)

    def boxes_for(frame_number: int, image: np.ndarray):
        return index.get(frame_number, empty)

    return boxes_for


def _gt_boxes_for(gt: MotBoxes, width: int, height: int) -> BoxesFor:
    return _known_boxes_for(gt.frame, gt.boxes, gt.score, gt.ident, width, height)


def _detector_boxes_for(detector, gt: MotBoxes | None, width: int, height: int) -> BoxesFor:
    rows = getattr(detector, "rows", None)  # a detections file: every box is known up front
    if isinstance(rows, MotBoxes):
        ids = (assign_identities_by_frame(rows.frame, rows.boxes, gt.frame, gt.boxes, gt.ident) if gt is not None
               else np.full(len(rows), -1, dtype=np.int64))
        return _known_boxes_for(rows.frame, rows.boxes, rows.score, ids, width, height)
    gt_index = gt.by_frame() if gt is not None else {}

    def boxes_for(frame_number: int, image: np.ndarray):
        dets = detector.detect(image, frame_number)
        rows = gt_index.get(frame_number)
        if rows is not None and len(dets):
            ids = assign_identities(dets[:, :4], gt.boxes[rows], gt.ident[rows])
        else:
            ids = np.full(len(dets), -1, dtype=np.int64)
        boxes, keep = clip_boxes(dets[:, :4], width, height)
        return boxes[keep], dets[keep, 4], ids[keep], int((~keep).sum())

    boxes_for.warm = getattr(detector, "warm", None)  # type: ignore[attr-defined]
    return boxes_for


def _ingest(project: Project, source, kind: str, detector_name: str, box_source: str, boxes_for: BoxesFor,
            camera: str, ctx: JobContext, name: str | None = None, site: str | None = None) -> dict[str, Any]:
    """Shared loop of every frame source: detect, clip, crop, encode, commit in batches."""
    fingerprint = source.fingerprint()
    existing = project.query(
        "SELECT * FROM videos WHERE fingerprint = ? AND detector = ? AND stride = ?",
        (fingerprint, detector_name, source.stride),
    )
    resumed = False
    if existing:
        row = dict(existing[0])
        if row["status"] == "complete":
            raise UserError(
                f"{source.path.name} is already in this project (video {row['id']}, {row['detector']} boxes, "
                f"stride {row['stride']}); nothing was imported again."
            )
        video_id, start_after, resumed = row["id"], row["last_frame"], True
        ctx.log(f"Resuming the interrupted import of {source.path.name} after frame {start_after}.")
    else:
        try:
            video_id = project.add_video(
                name=name or source.path.name, path=str(source.path.resolve()), kind=kind, camera=camera,
                fingerprint=fingerprint, width=source.width, height=source.height, fps=source.fps,
                stride=source.stride, detector=detector_name, site=clean_site(site),
            )
        except sqlite3.IntegrityError:  # the same file registered by another import a moment ago
            raise UserError(f"{source.path.name} is being imported into this project by another process right now; "
                            f"nothing was imported twice, run this import again when that one has finished.") from None
        start_after = 0

    estimate = _frame_estimate(source)
    frames_in_batch: list[tuple[int, str | None]] = []
    rows: list[dict[str, Any]] = []
    encoded: list[Future] = []  # one future per frame: that frame's crops as JPEG
    ahead: deque[Future] = deque()  # encodings not yet known to be done
    added_frames = added_instances = clipped_out = 0
    last_number = start_after
    encoder = ThreadPoolExecutor(max_workers=ENCODE_WORKERS, thread_name_prefix="jpeg")
    writer = _OrderedWriter(project, video_id)

    def flush() -> None:
        nonlocal frames_in_batch, rows, encoded
        if frames_in_batch:
            writer.submit(frames_in_batch, rows, encoded)
        frames_in_batch, rows, encoded = [], [], []  # a batch that fails to commit is not retried

    project.update_video(video_id, error=None)
    warm = getattr(boxes_for, "warm", None)
    if resumed and warm is not None and start_after > 0:
        # A detector with state (the motion detector's background model) sees every frame
        # before the resume point again, so the resumed import finds the same boxes as one
        # that was never interrupted.
        ctx.log(f"Replaying the {source.path.name} frames up to {start_after} to warm the {detector_name} detector.")
        for frame in prefetch(source.frames()):
            if frame.number > start_after:
                break
            warm(frame.image, frame.number)
            ctx.check_cancelled()
    try:
        for frame in prefetch(source.frames(start_after=start_after)):
            kept, scores, ids, dropped = boxes_for(frame.number, frame.image)
            clipped_out += dropped
            for box, score, ident in zip(kept.tolist(), scores.tolist(), ids.tolist()):
                rows.append({"frame": frame.number, "x": box[0], "y": box[1], "w": box[2], "h": box[3],
                             "score": score, "source": box_source,
                             "identity": ident if ident >= 0 else None, "camera": camera})
            future = encoder.submit(_encode_all, frame.image, kept)
            encoded.append(future)
            ahead.append(future)
            while len(ahead) > ENCODE_AHEAD:
                ahead.popleft().result()
            frames_in_batch.append((frame.number, frame.path))
            last_number = frame.number
            added_frames += 1
            added_instances += len(kept)
            if len(frames_in_batch) >= BATCH_FRAMES:
                flush()
                ctx.progress(added_frames, max(estimate - start_after, added_frames + 1), f"{source.path.name}")
                if ctx.should_stop:
                    ctx.check_cancelled()
                    writer.drain()
                    ctx.log(f"Stopped: {source.path.name} is marked incomplete; run the same import to resume.")
                    return _result(project, video_id, added_frames, added_instances, complete=False)
        flush()
        writer.drain()
    except UserError as exc:
        try:
            flush()  # the frames before a bad one are kept
            writer.drain()
            project.update_video(video_id, error=str(exc))
        except UserError:
            pass  # a full or read-only disk: the first sentence is the one to show
        raise
    finally:
        writer.close()  # after a cancel or a crash, batches not yet written are dropped whole
        encoder.shutdown(wait=True, cancel_futures=True)
    total_frames = project.count("frames", "video_id = ?", (video_id,))
    short = source.ends_early() if hasattr(source, "ends_early") else None
    early = None
    if short is not None:
        early = (f"{source.path.name} ends early: only {short[0]} of the {short[1]} frames its header announces could be "
                 f"decoded, so the file is truncated or damaged; the {short[0]} frames were imported and are kept "
                 f"(video {video_id}), and a complete copy of the file can be imported beside them.")
    project.update_video(video_id, status="complete", n_frames=last_number if kind == "video" else total_frames,
                         error=early)
    ctx.progress(added_frames, added_frames, source.path.name)
    if clipped_out:
        ctx.log(f"{clipped_out} boxes lay entirely outside the frame and were dropped; others were clipped.")
    total_instances = project.count("instances", "video_id = ?", (video_id,))
    if total_instances == 0:
        raise UserError(
            f"No people were found in {source.path.name} ({total_frames} frames read, kept in the project); "
            f"try another detector (--detector hog or motion) or import detections with --det."
        )
    if early is not None:
        ctx.log(early)
        raise UserError(early)
    result = _result(project, video_id, added_frames, added_instances, complete=True)
    result["resumed"] = resumed
    return result


def _frame_estimate(source) -> int:
    """For the progress bar only: the header's frame count is never stored or trusted."""
    if isinstance(source, FolderSource):
        return len(source.files)
    capture = cv2.VideoCapture(str(source.path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    capture.release()
    return max(count // source.stride, 1)


def _result(project: Project, video_id: int, frames: int, instances: int, complete: bool) -> dict[str, Any]:
    video = project.video(video_id)
    return {"video_id": video_id, "videos": 1, "frames": frames, "instances": instances,
            "identities": project.scalar("SELECT COUNT(DISTINCT identity) FROM instances WHERE video_id = ?", (video_id,)),
            "n_frames": video["n_frames"], "complete": complete}


def import_video(project: Project | Path, path: Path, detector: str = DEFAULT_DETECTOR, det_file: Path | None = None,
                 gt_file: Path | None = None, stride: int = 1, camera: str | None = None, min_score: float | None = None,
                 ctx: JobContext | None = None, site: str | None = None) -> dict[str, Any]:
    """Import a video file (or a folder of frames). With ``det_file`` its MOT detections are
    used instead of a detector; with ``gt_file`` each box takes the identity of the gt box it
    overlaps best (IoU >= 0.5), so mining quality can be measured on realistic detections."""
    ctx = ctx or JobContext()
    path = Path(path)
    source = open_source(path, stride)
    det = make_detector(detector, det_file, min_score)
    gt = read_mot_file(gt_file, "gt") if gt_file else None
    with opened(project, create=True) as proj:
        return _ingest(proj, source, "video" if isinstance(source, VideoSource) else "frames", det.name, det.source,
                       _detector_boxes_for(det, gt, source.width, source.height), camera or path.stem, ctx, site=site)


def import_mot(project: Project | Path, seq_dir: Path, boxes: str | None = None, min_score: float | None = None,
               ctx: JobContext | None = None, site: str | None = None) -> dict[str, Any]:
    """Import a MOT sequence folder (seqinfo.ini, img1/, det/det.txt, gt/gt.txt). ``boxes``:
    'gt' (default where gt exists; pedestrians only) or 'det' (identities from gt by IoU)."""
    ctx = ctx or JobContext()
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    gt_path, det_path = seq_dir / "gt" / "gt.txt", seq_dir / "det" / "det.txt"
    boxes = boxes or ("gt" if gt_path.exists() else "det")
    if boxes not in ("gt", "det"):
        raise UserError(f"--boxes must be gt or det, not {boxes!r}.")
    wanted = gt_path if boxes == "gt" else det_path
    if not wanted.exists():
        raise UserError(f"{seq_dir.name} has no {wanted.relative_to(seq_dir)}; import it with --boxes {'det' if boxes == 'gt' else 'gt'}.")
    source = FolderSource(seq_dir / info.im_dir, fps=info.frame_rate)
    gt = read_mot_file(gt_path, "gt") if gt_path.exists() else None
    if boxes == "gt":
        boxes_for, detector_name, box_source = _gt_boxes_for(gt, source.width, source.height), "gt", "gt"
    else:
        det = make_detector("file", det_path, min_score)
        boxes_for, detector_name, box_source = _detector_boxes_for(det, gt, source.width, source.height), det.name, det.source
    with opened(project, create=True) as proj:
        result = _ingest(proj, source, "mot", detector_name, box_source, boxes_for, info.name, ctx, name=info.name, site=site)
    result["gt_format"] = gt.format if gt is not None else None
    if gt is not None:
        ctx.log(f"{seq_dir.name}: {gt_path.name} read as {gt.format} ground truth ({len(gt)} boxes used).")
    return result


def import_market(project: Project | Path, folder: Path, name: str | None = None,
                  ctx: JobContext | None = None) -> dict[str, Any]:
    """Import a Market-1501-style folder as a labelled evaluation dataset."""
    ctx = ctx or JobContext()
    folder = Path(folder)
    items = market.scan(folder)
    rows, crops, bad = [], [], []
    for number, item in enumerate(items):
        data = item.path.read_bytes()
        image = read_image(item.path)
        if image is None:
            bad.append(item.path.name)
            continue
        if data[:2] != b"\xff\xd8":  # store JPEG once; other formats are converted
            data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
        rows.append({"frame": None, "x": 0.0, "y": 0.0, "w": float(image.shape[1]), "h": float(image.shape[0]),
                     "score": 1.0, "source": "gallery", "identity": item.identity, "camera": item.camera})
        crops.append(data)
        if number % 500 == 0:
            ctx.progress(number, len(items), folder.name)
    if bad:
        raise UserError(f"{len(bad)} files in {folder.name} are not readable images, e.g. {bad[0]}; remove them and import again.")
    with opened(project, create=True) as proj:
        dataset_id = proj.add_dataset(name or folder.name, "market", str(folder.resolve()))
        ids = proj.add_frames_and_instances(None, [], rows, crops)
        proj.add_dataset_items(dataset_id, [(i, item.split, item.path.name) for i, item in zip(ids, items)])
    ctx.progress(len(items), len(items), folder.name)
    splits = [item.split for item in items]
    identities = [item.identity for item in items]
    return {"dataset_id": dataset_id, "name": name or folder.name, "images": len(items),
            "query": splits.count("query"), "gallery": splits.count("gallery"), "train": splits.count("train"),
            "junk": identities.count(market.JUNK), "distractors": identities.count(market.DISTRACTOR),
            "identities": len({i for i in identities if i > 0}), "videos": 0, "frames": 0, "instances": 0}


# The synthetic world's cameras film one place: its people walk from camera to camera.
WORLD_SITE = "synthetic world"
# Tracklet sets imported without --site share one site: most users hold one site's cameras.
DEFAULT_TRACKLET_SITE = "site 1"


def clean_site(site: str | None) -> str | None:
    """A site name as stored: trimmed; empty or 'none' is no site."""
    site = (site or "").strip()
    if not site or site.lower() == "none":
        return None
    if len(site) > 80:
        raise UserError(f"A site name is at most 80 characters, not {len(site)}.")
    return site


def import_tracklets(project: Project | Path, folder: Path, site: str | None = None,
                     ctx: JobContext | None = None) -> dict[str, Any]:
    """Import a folder of tracklets (PRID2011, iLIDS-VID or MARS layout; core/tracklet_sets.py):
    each camera becomes one video of kind ``tracklets`` at ``site`` (default: the project's
    one tracklet site), each crop one instance with its own frame number and its tracklet's
    number. The whole folder is read and checked first: a bad image stores nothing."""
    from idstudio.core import tracklet_sets
    from idstudio.core.sources import folder_fingerprint

    ctx = ctx or JobContext()
    folder = Path(folder)
    found = tracklet_sets.scan(folder)
    site = clean_site(site) if site is not None else DEFAULT_TRACKLET_SITE
    n_files = sum(len(t.files) for t in found.tracklets)
    ctx.log(f"{folder.name}: {found.layout} layout, {len(found.cameras)} camera(s), {len(found.tracklets)} tracklets, "
            f"{n_files} crops.")
    with opened(project, create=True) as proj:
        fingerprints = {cam: f"tracklets:{cam}:" + folder_fingerprint([f for t in found.of_camera(cam) for f in t.files])
                        for cam in found.cameras}
        for cam, fp in fingerprints.items():
            row = proj.query("SELECT id, status FROM videos WHERE fingerprint = ?", (fp,))
            if row and row[0]["status"] == "complete":
                raise UserError(f"The {cam} tracklets of {folder.name} are already in this project (video {row[0]['id']}); "
                                "nothing was imported again.")
        base = int(proj.scalar("SELECT MAX(identity) FROM instances") or 0) + 1  # gt apart from other sources' ids
        people = {p: base + k for k, p in enumerate(sorted({t.person for t in found.tracklets}))}
        prepared = {}
        done = 0
        for cam in found.cameras:  # read and check everything before storing anything
            rows, crops, frames, frame = [], [], [], 0
            for number, tracklet in enumerate(found.of_camera(cam)):
                for path, image in zip(tracklet.files, tracklet_sets.read_crops(tracklet)):
                    data = path.read_bytes()
                    if data[:2] != b"\xff\xd8" or image.shape[0] > CROP_MAX_HEIGHT:
                        data = encode_crop(image, np.array([0, 0, image.shape[1], image.shape[0]], np.float32))
                    frame += 1
                    rows.append({"frame": frame, "x": 0.0, "y": 0.0, "w": float(image.shape[1]), "h": float(image.shape[0]),
                                 "score": 1.0, "source": "tracklet", "identity": people[tracklet.person] if
                                 tracklet_sets.is_person(tracklet.person) else None, "camera": cam, "tracklet": number})
                    frames.append((frame, str(path.resolve())))
                    crops.append(data)
                done += len(tracklet.files)
                ctx.progress(done, n_files, f"reading {cam}")
                ctx.check_cancelled()
            prepared[cam] = (rows, crops, frames)
        videos = []
        for cam, (rows, crops, frames) in prepared.items():
            cam_dir = found.root / cam
            video_id = proj.add_video(name=f"{folder.name}/{cam}", path=str((cam_dir if cam_dir.is_dir() else found.root).resolve()),
                                      kind="tracklets", camera=cam, fingerprint=fingerprints[cam],
                                      width=int(max(r["w"] for r in rows)), height=int(max(r["h"] for r in rows)), fps=None,
                                      stride=1, detector="tracklets", site=site)
            proj.add_frames_and_instances(video_id, frames, rows, crops, last_frame=frames[-1][0])
            proj.update_video(video_id, status="complete", n_frames=len(frames))
            videos.append(video_id)
    ctx.progress(n_files, n_files, folder.name)
    return {"layout": found.layout, "site": site, "video_ids": videos, "videos": len(videos), "cameras": found.cameras,
            "tracklets": len(found.tracklets), "crops": n_files, "frames": n_files, "instances": n_files,
            "per_camera": {cam: len(found.of_camera(cam)) for cam in found.cameras}}


def set_site(project: Project | Path, videos: list[str], site: str | None) -> dict[str, Any]:
    """Put videos (by id or name) at ``site`` (None or '' removes them from any site)."""
    with opened(project) as proj:
        known = proj.videos()
        chosen = []
        for ref in videos:
            match = [v for v in known if str(v["id"]) == str(ref) or v["name"] == ref]
            if not match:
                names = ", ".join(v["name"] for v in known[:8])
                raise UserError(f"There is no video {ref!r} in this project; it has: {names or 'none'}.")
            chosen.extend(match)
        value = clean_site(site)
        with proj.transaction():
            proj.conn.executemany("UPDATE videos SET site = ? WHERE id = ?", [(value, v["id"]) for v in chosen])
    return {"site": value, "videos": [v["name"] for v in chosen]}


def sites(project: Project | Path) -> dict[str, Any]:
    """The videos of each site (None: at no site), and the sites where links can join cameras."""
    from idstudio.services.instances import linkable_sites

    with opened(project) as proj:
        out: dict[str | None, list[str]] = {}
        for v in proj.videos():
            out.setdefault(v.get("site"), []).append(v["name"])
        return {"sites": out, "linkable": linkable_sites(proj)}


def import_world(project: Project | Path, world, ctx: JobContext | None = None) -> dict[str, Any]:
    """Import a synthetic world: each camera's video with its noisy detections (identities
    from its gt), and its held-out labelled query/gallery split."""
    ctx = ctx or JobContext()
    totals = {"videos": 0, "frames": 0, "instances": 0}
    with opened(project, create=True) as proj:
        for camera in world.cameras:
            result = import_video(proj, camera.video, det_file=camera.det, gt_file=camera.gt, camera=camera.name, ctx=ctx,
                                  site=WORLD_SITE)
            for key in totals:
                totals[key] += result[key]
        gallery = import_market(proj, world.market_dir, name="synthetic-heldout", ctx=ctx)
    totals["dataset"] = gallery["name"]
    totals["gallery_images"] = gallery["images"]
    return totals


def demo(project_root: Path, config=None, ctx: JobContext | None = None) -> dict[str, Any]:
    """Generate the synthetic world inside the project folder and import it; an existing
    project is left as it is."""
    from idstudio.core import synth

    ctx = ctx or JobContext()
    project_root = Path(project_root)
    if (project_root / "idstudio.db").exists():
        with opened(project_root) as proj:
            summary = proj.summary()
        summary["generated"] = False
        return summary
    started = time.perf_counter()
    world_dir = project_root / "world"
    ctx.log(f"Generating the synthetic world in {world_dir} ...")
    world = synth.generate(world_dir, config or synth.SynthConfig(), ctx=ctx)
    ctx.log("Importing its videos and labelled split ...")
    result = import_world(project_root, world, ctx)
    result["generated"] = True
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result

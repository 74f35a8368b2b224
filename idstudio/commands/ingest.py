"""idstudio import-video | import-mot | import-tracklets | import-market | site."""

from __future__ import annotations

import argparse
from pathlib import Path

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result
from idstudio.core.detectors import DEFAULT_DETECTOR, DETECTORS
from idstudio.core.store import opened


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-video", help="import videos (or folders of frames), detecting people")
    add_project_argument(p)
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS,
                   help=f"person detector (default {DEFAULT_DETECTOR}: background subtraction, for static cameras)")
    p.add_argument("--det", type=Path, help="MOT-format detections for the video (replaces the detector)")
    p.add_argument("--gt", type=Path, help="MOT-format ground truth: boxes take the identity they overlap best")
    p.add_argument("--min-score", type=float, help="drop detections scored below this")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th frame (default 1)")
    p.add_argument("--camera", help="camera name (default: the file name)")
    add_site_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_import_video)

    p = sub.add_parser("import-mot", help="import MOT sequence folders (seqinfo.ini, img1/, det/, gt/)")
    add_project_argument(p)
    p.add_argument("sequences", nargs="+", type=Path, metavar="SEQ_DIR")
    p.add_argument("--boxes", choices=("gt", "det"), help="which boxes to import (default: gt where present)")
    p.add_argument("--min-score", type=float, help="drop detections scored below this (with --boxes det)")
    add_site_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_import_mot)

    p = sub.add_parser("import-tracklets", help="import a folder of tracklets per camera (PRID2011, iLIDS-VID or MARS layout)")
    add_project_argument(p)
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--site", help="the place its cameras film (default: the project's one tracklet site, 'site 1'); "
                   "links join cameras of one site")
    add_json_flag(p)
    p.set_defaults(handler=cmd_import_tracklets)

    p = sub.add_parser("site", help="put videos at a site (links join cameras of one site), or list the sites")
    add_project_argument(p)
    p.add_argument("site", nargs="?", metavar="NAME", help="the site ('none' takes the videos off any site)")
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video names or ids")
    add_json_flag(p)
    p.set_defaults(handler=cmd_site)

    p = sub.add_parser("import-market", help="import a Market-1501-style folder as a labelled dataset")
    add_project_argument(p)
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--name", help="dataset name (default: the folder name)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_import_market)


def site_phrase(site: str | None) -> str:
    return f"site {site!r}" if site else "no site"


def add_site_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", help="the place this footage was filmed: links join cameras of one site (default: none)")


def _run_each(args: argparse.Namespace, paths: list[Path], do_one) -> int:
    totals = {"videos": 0, "frames": 0, "instances": 0}
    ctx = ProgressBarContext(quiet=args.json)
    lines = []
    try:
        with opened(args.project, create=True) as project:
            for path in paths:
                result = do_one(project, path, ctx)
                for key in totals:
                    totals[key] += result[key]
                state = "" if result.get("complete", True) else " (incomplete: run again to resume)"
                lines.append(f"{path.name}: {result['frames']} frames, {result['instances']} instances{state}")
    finally:
        ctx.close()
    print_result(args, totals, "\n".join(lines))
    return 0


def cmd_import_video(args: argparse.Namespace) -> int:
    from idstudio.services.ingest import import_video

    if args.det and len(args.videos) > 1:
        from idstudio.core.errors import UserError

        raise UserError("--det gives the detections of one video; import videos with their own --det one at a time.")
    return _run_each(args, args.videos, lambda project, path, ctx: import_video(
        project, path, detector=args.detector, det_file=args.det, gt_file=args.gt, stride=args.stride,
        camera=args.camera, min_score=args.min_score, ctx=ctx, site=args.site))


def cmd_import_mot(args: argparse.Namespace) -> int:
    from idstudio.services.ingest import import_mot

    return _run_each(args, args.sequences, lambda project, path, ctx: import_mot(
        project, path, boxes=args.boxes, min_score=args.min_score, ctx=ctx, site=args.site))


def cmd_import_tracklets(args: argparse.Namespace) -> int:
    from idstudio.services.ingest import import_tracklets

    ctx = ProgressBarContext(quiet=args.json)
    try:
        result = import_tracklets(args.project, args.folder, site=args.site, ctx=ctx)
    finally:
        ctx.close()
    cams = ", ".join(f"{cam} {n}" for cam, n in result["per_camera"].items())
    print_result(args, result, f"{args.folder.name}: {result['layout']} layout, {result['tracklets']} tracklets ({cams}), "
                                f"{result['crops']} crops, at {site_phrase(result['site'])}.")
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from idstudio.core.errors import UserError
    from idstudio.services.ingest import set_site, sites

    if args.site is not None and not args.videos:
        raise UserError(f"Name the videos to put at site {args.site!r}: `idstudio site PROJECT {args.site} VIDEO ...` "
                        "(`idstudio info PROJECT` lists them).")
    if args.site is not None:
        result = set_site(args.project, args.videos, args.site)
        print_result(args, result, f"{len(result['videos'])} video(s) now at {site_phrase(result['site'])}.")
        return 0
    result = sites(args.project)
    lines = [f"{name or '(no site)'}: {', '.join(videos)}" for name, videos in result["sites"].items()]
    print_result(args, result, "\n".join(lines) or "This project has no videos yet.")
    return 0


def cmd_import_market(args: argparse.Namespace) -> int:
    from idstudio.services.ingest import import_market

    ctx = ProgressBarContext(quiet=args.json)
    try:
        with opened(args.project, create=True) as project:
            result = import_market(project, args.folder, name=args.name, ctx=ctx)
    finally:
        ctx.close()
    print_result(args, result, f"Dataset {result['name']}: {result['query']} queries, {result['gallery']} gallery, "
                                 f"{result['train']} train; {result['junk']} junk, {result['distractors']} distractors.")
    return 0

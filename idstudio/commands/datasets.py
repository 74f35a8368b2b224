"""``idstudio split``: a cross-time query/gallery dataset from a video's later frames."""

from __future__ import annotations

import argparse

from idstudio.commands.common import add_json_flag, add_project_argument, print_result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split", help="make a cross-time query/gallery dataset from a video's later frames (held out of training)",
        description="Frames from --from-frame (default: after 60%% of the video) on are held out of training and "
                    "mining; their boxes with ground-truth identities become a labelled dataset: queries from the "
                    "first half of those frames, the gallery from the second half, so every match crosses a time gap. "
                    "The video must have been imported with its identities (import-mot, or import-video --gt).")
    add_project_argument(p)
    p.add_argument("video", help="the video's name or id (see `idstudio info`)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--from-frame", type=int, help="first held-out frame")
    where.add_argument("--from-share", type=float, default=0.6,
                       help="share of the video's frames kept for training (default 0.6)")
    p.add_argument("--name", help="dataset name (default: VIDEO-crosstime)")
    p.add_argument("--queries-per-identity", type=int, default=4, help="queries per person, spread in time (default 4)")
    p.add_argument("--gallery-per-identity", type=int, default=16,
                   help="gallery crops per person, spread in time (default 16)")
    add_json_flag(p)
    p.set_defaults(handler=run_split)


def run_split(args: argparse.Namespace) -> int:
    from idstudio.core.store import Project
    from idstudio.services.splits import crosstime_split

    with Project.open(args.project) as project:
        result = crosstime_split(project, args.video, from_frame=args.from_frame, from_share=args.from_share,
                                 name=args.name, queries_per_identity=args.queries_per_identity,
                                 gallery_per_identity=args.gallery_per_identity)
    print_result(args, result,
                 f"Dataset {result['name']}: {result['query']} queries and {result['gallery']} gallery crops of "
                 f"{result['identities']} people from frame {result['from_frame']} of {result['video']} on; "
                 f"{result['held_out_instances']} instances held out of training, {result['training_instances']} left to train on.")
    return 0

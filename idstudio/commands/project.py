"""idstudio init | info | demo."""

from __future__ import annotations

import argparse

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result
from idstudio.core.store import Project
from idstudio.services import crop_cache


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create an empty project folder")
    add_project_argument(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("info", help="what a project holds")
    add_project_argument(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("demo", help="generate the synthetic demo world into PROJECT (if new), import it, open the GUI")
    add_project_argument(p)
    p.add_argument("--no-gui", action="store_true", help="generate and import only; print what was made")
    p.add_argument("--small", action="store_true", help="a small world (seconds to make; for trying things out)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_demo)


def cmd_init(args: argparse.Namespace) -> int:
    with Project.create(args.project) as project:
        summary = project.summary()
    print_result(args, summary, f"Created project {args.project}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        summary = project.summary()
        lines = [f"Project {project.root}  (schema {summary['schema_version']})"]
        for video in project.videos():
            state = "" if video["status"] == "complete" else f"  [{video['status'].upper()}: incomplete, run the same import to resume]"
            lines.append(f"  video {video['id']:>3} {video['name']:<28} camera {video['camera']:<10} "
                         f"{video['n_frames']:>6} frames {video['n_instances']:>7} instances  {video['detector']}"
                         f"  site {video.get('site') or '-'}{state}")
        for d in project.datasets():
            lines.append(f"  dataset {d['name']:<24} query {d['n_query'] or 0:>5}  gallery {d['n_gallery'] or 0:>6}  train {d['n_train'] or 0:>6}")
        lines.append(", ".join(f"{k} {v}" for k, v in summary.items() if k not in ("project", "schema_version")))
        summary["crop_caches"] = crop_cache.status(project)
        lines.append(crop_cache.describe(summary["crop_caches"]))
    print_result(args, summary, "\n".join(lines))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from idstudio.core import synth
    from idstudio.services import ingest

    ctx = ProgressBarContext(quiet=args.json)
    try:
        result = ingest.demo(args.project, synth.SynthConfig.small() if args.small else None, ctx=ctx)
    finally:
        ctx.close()
    made = "Generated and imported" if result.get("generated") else "Opened existing"
    print_result(args, result, None if args.json else
                 f"{made} demo project {args.project}: {result['videos']} videos, {result.get('frames', '?')} frames, "
                 f"{result['instances']} instances.")
    if args.no_gui:
        return 0
    from idstudio.gui.app import run

    return run(args.project)

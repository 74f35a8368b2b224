"""CLI: ``idstudio link`` (one cross-video link round) and ``idstudio links export|import``."""

from __future__ import annotations

import argparse
from pathlib import Path

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result
from idstudio.core import config


def register(sub: argparse._SubParsersAction) -> None:
    from idstudio.services.links import LinkConfig

    p = sub.add_parser("link", help="link the same person's pseudo-tracklets across videos (one link round)")
    add_project_argument(p)
    p.add_argument("--config", type=Path, default=None, help="JSON or TOML file with link settings")
    config.add_arguments(p, LinkConfig)
    add_json_flag(p)
    p.set_defaults(handler=_link)

    p = sub.add_parser("links", help="cross-video links: export them, or read decisions back from a file")
    links_sub = p.add_subparsers(dest="links_command", metavar="ACTION")
    e = links_sub.add_parser("export", help="write a link round (default: the latest) to a CSV file")
    add_project_argument(e)
    e.add_argument("--out", type=Path, required=True, help="CSV file to write")
    e.add_argument("--round", type=int, default=None, help="link round id (default: the latest)")
    add_json_flag(e)
    e.set_defaults(handler=_export)
    i = links_sub.add_parser("import", help="record the accept/reject decisions of a links CSV (its review column)")
    add_project_argument(i)
    i.add_argument("file", type=Path, help="CSV as written by `links export`, with review set to accept or reject")
    add_json_flag(i)
    i.set_defaults(handler=_import)


def _link(args: argparse.Namespace) -> int:
    from idstudio.services.links import LinkConfig, link

    cfg = config.build(LinkConfig, args.config, args)
    ctx = ProgressBarContext(quiet=args.json)
    try:
        result = link(args.project, cfg, ctx)
    finally:
        ctx.close()
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    human = (f"Link round {result['round_id']}: kept {result['n_links']} of {result['n_candidates']} candidate links "
             f"between {result['n_tracklets']} tracklets (precision {fmt(result['precision'])}, "
             f"recall {fmt(result['recall'])}).")
    print_result(args, result, human)
    return 0


def _export(args: argparse.Namespace) -> int:
    from idstudio.services.links import export_links

    result = export_links(args.project, args.out, args.round)
    print_result(args, result, f"Wrote {result['links']} links of round {result['round_id']} to {result['out']}.")
    return 0


def _import(args: argparse.Namespace) -> int:
    from idstudio.services.links import import_decisions

    result = import_decisions(args.project, args.file)
    print_result(args, result, f"Recorded {result['accept']} accepted and {result['reject']} rejected links.")
    return 0

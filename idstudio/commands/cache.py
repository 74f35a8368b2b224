"""idstudio cache build | drop: the decoded-crop cache (training builds its own; these build it ahead or free it)."""

from __future__ import annotations

import argparse

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result
from idstudio.core.crop_cache import human_bytes
from idstudio.services import crop_cache


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="the decoded-crop cache: every crop decoded once at the model's input size, so "
                       "training and embedding never wait on JPEG decoding")
    actions = p.add_subparsers(dest="cache_action", required=True, metavar="{build,drop}")
    b = actions.add_parser("build", help="decode the crops the cache lacks (all of them the first time); says its "
                           "size first, keeps what it finished when interrupted")
    add_project_argument(b)
    b.add_argument("--size", default="128x64", help="model input size, height x width (default 128x64: the Train "
                   "form's default; the synthetic world's cross-camera recipe uses 64x32)")
    add_json_flag(b)
    b.set_defaults(handler=cmd_build)
    d = actions.add_parser("drop", help="remove the cache (one size, or all); training decodes again until it "
                           "builds one")
    add_project_argument(d)
    d.add_argument("--size", default=None, help="only this input size, height x width (default: every size)")
    add_json_flag(d)
    d.set_defaults(handler=cmd_drop)


def cmd_build(args: argparse.Namespace) -> int:
    result = crop_cache.build(args.project, crop_cache.parse_size(args.size), ProgressBarContext())
    print_result(args, result, None)
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    size = crop_cache.parse_size(args.size) if args.size else None
    result = crop_cache.drop(args.project, size)
    text = (f"Dropped the crop cache {', '.join(result['dropped'])}: {human_bytes(result['freed_bytes'])} freed."
            if result["dropped"] else "This project has no crop cache.")
    print_result(args, result, text)
    return 0

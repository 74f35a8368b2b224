"""`idstudio gui [PROJECT]`: open the desktop application."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the desktop application (on PROJECT, else the last project)")
    parser.add_argument("project", type=Path, nargs="?", default=None, help="project folder (created if missing)")
    parser.add_argument("--self-test", action="store_true",
                        help="open the main window offscreen on a generated demo project, check the four views, exit 0 if all is well")
    parser.set_defaults(handler=_gui)


def _gui(args: argparse.Namespace) -> int:
    if args.self_test:
        from idstudio.gui.selftest import run_self_test

        return run_self_test()
    from idstudio.gui.app import run

    return run(args.project)

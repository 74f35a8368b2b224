"""``idstudio doctor [PROJECT] [--json]``: check the set-up; each problem comes with its fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from idstudio.commands.common import add_json_flag, print_result


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check Python, torch/torchvision, GPU, Qt, OpenCV, faiss and the project folder",
        description="Check the set-up and say how to fix each problem. Exit status 0 when everything "
        "idstudio needs works (no GPU is a note, not a failure), 1 otherwise.",
    )
    parser.add_argument("project", type=Path, nargs="?", default=None,
                        help="project folder to check for free disk and write permission (default: the current folder)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from idstudio.services import doctor

    report = doctor.run_checks(args.project)
    print_result(args, report.to_dict(), report.format_text())
    return 0 if report.ok else 1

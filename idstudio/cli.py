"""The headless front end: ``idstudio COMMAND ...`` over the same services as the GUI.

Each area registers its sub-commands from ``idstudio/commands/<area>.py``. A user error
ends in one sentence on stderr and exit status 2, never a traceback. With ``--json`` the
last line printed is one JSON object with the command's figures.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

from idstudio import __version__
from idstudio.core.errors import JobCancelled, UserError
from idstudio.core.failures import user_error

COMMAND_MODULES = ("project", "ingest", "datasets", "training", "links", "evaluation", "models", "cache", "app", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idstudio",
        description="Train and inspect person re-identification models learned from unlabeled video.",
    )
    parser.add_argument("--version", action="version", version=f"idstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"idstudio.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"idstudio.commands.{name}":
                continue  # area not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        result = args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a full disk or a read-only project outside the store's own writes
        translated = user_error(exc, getattr(args, "project", None))
        if translated is None:
            raise
        print(f"error: {translated}", file=sys.stderr)
        return 2
    except JobCancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted: what was already stored is kept", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())

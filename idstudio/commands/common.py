"""Helpers every sub-command shares: --json output, a progress-bar job context."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from idstudio.core.jobs import JobContext


def add_project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", type=Path, help="project folder")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures as the last line")


def print_result(args: argparse.Namespace, result: dict[str, Any], human: str | None = None) -> None:
    """Human text, then (with --json) the figures as one JSON line, last."""
    if human:
        print(human)
    if getattr(args, "json", False):
        print(json.dumps(result, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ProgressBarContext(JobContext):
    """A job context that draws a tqdm bar on stderr and prints log lines above it."""

    def __init__(self, quiet: bool = False, **kw: Any):
        super().__init__(**kw)
        self._bar = None
        self._quiet = quiet
        self.add_sink(self._draw)

    def _draw(self, event: dict[str, Any]) -> None:
        if self._quiet:
            return
        from tqdm import tqdm

        kind = event.get("type")
        if kind == "progress":
            total = max(int(event["total"]), 1)
            if self._bar is None or self._bar.total != total or event["done"] < self._bar.n:
                if self._bar is not None:
                    self._bar.close()
                self._bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, leave=False)
            self._bar.set_description(event.get("message", "")[:40], refresh=False)
            self._bar.update(int(event["done"]) - self._bar.n)
        elif kind == "log":
            (tqdm.write if self._bar is not None else print)(event["message"], file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        super().close()

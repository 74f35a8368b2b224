"""Market-1501-style labelled galleries: ``query/``, ``bounding_box_test/`` and optional
``bounding_box_train/`` with names ``PID_cCsS_FRAME_NN.jpg``. PID ``-1`` is junk (ignored
by the protocol), ``0000`` a distractor (kept)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from idstudio.core.errors import UserError

SPLIT_FOLDERS = {"query": "query", "bounding_box_test": "gallery", "bounding_box_train": "train"}
NAME = re.compile(r"^(-1|\d+)_c(\d+)(?:s(\d+))?_?(\d+)?")
JUNK, DISTRACTOR = -1, 0


@dataclass
class MarketItem:
    path: Path
    split: str
    identity: int
    camera: str


def parse_name(name: str) -> tuple[int, str] | None:
    match = NAME.match(name)
    if not match:
        return None
    return int(match.group(1)), match.group(2)


def scan(folder: Path) -> list[MarketItem]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; a Market-1501 dataset folder holds query/ and bounding_box_test/.")
    present = [name for name in SPLIT_FOLDERS if (folder / name).is_dir()]
    if "query" not in present or "bounding_box_test" not in present:
        raise UserError(f"{folder} has no query/ and bounding_box_test/ folders; it is not a Market-1501-style dataset.")
    items: list[MarketItem] = []
    bad: list[str] = []
    for sub in present:
        for path in sorted((folder / sub).iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue  # Thumbs.db and friends
            parsed = parse_name(path.name)
            if parsed is None:
                bad.append(f"{sub}/{path.name}")
                continue
            items.append(MarketItem(path, SPLIT_FOLDERS[sub], parsed[0], parsed[1]))
    if bad:
        raise UserError(
            f"{len(bad)} image names do not follow Market-1501 naming PID_cCsS_FRAME_NN.jpg, e.g. {bad[0]}; rename them and import again."
        )
    if not any(i.split == "query" for i in items):
        raise UserError(f"{folder}/query holds no images; a labelled dataset needs queries.")
    if not any(i.split == "gallery" for i in items):
        raise UserError(f"{folder}/bounding_box_test holds no images; a labelled dataset needs a gallery.")
    return items

"""MOT-format files: ``seqinfo.ini``, ``det/det.txt`` and ``gt/gt.txt``.

Lines are ``frame,id,x,y,w,h,score_or_flag[,class,visibility]`` with 1-based frames. In
ground truth, pedestrians are rows with flag 1 and class 1.
"""

from __future__ import annotations

import configparser
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idstudio.core.errors import UserError


@dataclass
class MotBoxes:
    """Rows of a MOT file as arrays, grouped by frame on demand."""

    frame: np.ndarray  # (n,) int
    ident: np.ndarray  # (n,) int (-1 for detections)
    boxes: np.ndarray  # (n, 4) float32 xywh
    score: np.ndarray  # (n,) float32

    def by_frame(self) -> dict[int, np.ndarray]:
        """frame -> row indices, in file order."""
        order = np.argsort(self.frame, kind="stable")
        frames, starts = np.unique(self.frame[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        return {int(f): order[s:e] for f, s, e in zip(frames, starts, ends)}

    def __len__(self) -> int:
        return len(self.frame)


def read_mot_file(path: Path, kind: str, min_score: float | None = None) -> MotBoxes:
    """Parse ``det`` or ``gt`` rows. A malformed line is refused with its line number, before
    anything is stored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.") from None
    need = 9 if kind == "gt" else 6
    data = _fast_parse(text)
    if data is None:  # irregular file: the careful parser names the bad line
        data = _careful_parse(text, path, kind, need)
    return _select(data, path, kind, min_score)


def _fast_parse(text: str) -> np.ndarray | None:
    """Well-formed files (the common case) in one numpy call; None sends the text to the
    careful parser, which names the first bad line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            data = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float64, comments="#")
    except (ValueError, UserWarning):
        return None
    if data.size == 0:
        return np.zeros((0, 9))
    if data.shape[1] < 6:
        return None
    # Missing trailing columns (score, flag, class, visibility) read as 1, like the careful parser.
    padding = np.ones((len(data), max(0, 9 - data.shape[1])))
    return np.concatenate([data, padding], axis=1)[:, :9]


def _careful_parse(text: str, path: Path, kind: str, need: int) -> np.ndarray:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(" ", "").split(",")
        if len(parts) < need and not (kind == "gt" and len(parts) >= 6):
            raise UserError(
                f"{path.name} line {number} has {len(parts)} fields; MOT {kind} lines need at least {need} "
                f"(frame,id,x,y,w,h,...). Fix or remove that line and import again."
            )
        try:
            values = [float(p) for p in parts[:9]]
        except ValueError:
            raise UserError(f"{path.name} line {number} has a field that is not a number: {line[:60]!r}. Fix it and import again.") from None
        rows.append(values + [1.0] * (9 - len(values)))
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


def _select(data: np.ndarray, path: Path, kind: str, min_score: float | None) -> MotBoxes:
    if kind == "gt":
        # Pedestrians only: flag (col 6) 1 and class (col 7) 1. 6-column gt has neither: keep all.
        data = data[(data[:, 6] == 1) & (data[:, 7] == 1)]
        score = np.ones(len(data), dtype=np.float32)
    else:
        score = data[:, 6].astype(np.float32)
        if min_score is not None:
            data, score = data[score >= min_score], score[score >= min_score]
    if np.any(data[:, 0] < 1):
        raise UserError(f"{path.name} has frame numbers below 1; MOT frames start at 1.")
    return MotBoxes(
        frame=data[:, 0].astype(np.int64),
        ident=data[:, 1].astype(np.int64),
        boxes=data[:, 2:6].astype(np.float32),
        score=score,
    )


@dataclass
class SeqInfo:
    name: str
    im_dir: str
    frame_rate: float
    im_ext: str
    width: int | None
    height: int | None


def read_seqinfo(seq_dir: Path) -> SeqInfo:
    """``seqinfo.ini`` if present (its seqLength is not trusted), else sensible defaults."""
    seq_dir = Path(seq_dir)
    parser = configparser.ConfigParser()
    ini = seq_dir / "seqinfo.ini"
    if ini.exists():
        try:
            parser.read(ini, encoding="utf-8")
        except configparser.Error as exc:
            raise UserError(f"{ini} is not a valid seqinfo.ini: {exc}.") from None
    section = parser["Sequence"] if parser.has_section("Sequence") else {}
    def get_int(key: str) -> int | None:
        try:
            return int(section.get(key)) if section.get(key) else None
        except ValueError:
            return None
    return SeqInfo(
        name=section.get("name", seq_dir.name),
        im_dir=section.get("imDir", "img1"),
        frame_rate=float(section.get("frameRate", 30) or 30),
        im_ext=section.get("imExt", ".jpg"),
        width=get_int("imWidth"),
        height=get_int("imHeight"),
    )

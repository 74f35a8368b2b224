"""MOT-format files: ``seqinfo.ini``, ``det/det.txt`` and ``gt/gt.txt``.

Lines are ``frame,id,x,y,w,h,...`` with 1-based frames. Detections carry a score in the
7th column. Ground truth comes in two layouts, told apart by the content: MOT15's
``frame,id,x,y,w,h,conf,X,Y,Z`` (conf 0 = ignore; world coordinates or -1) and MOT16/17's
``frame,id,x,y,w,h,flag,class,visibility`` (pedestrians: flag 1 and class 1). A 6-column
file is boxes only: every row is kept.
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
    format: str = ""  # gt: "MOT15", "MOT16/17" or "boxes only" (6 columns)

    def by_frame(self) -> dict[int, np.ndarray]:
        """frame -> row indices, in file order."""
        order = np.argsort(self.frame, kind="stable")
        frames, starts = np.unique(self.frame[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        return {int(f): order[s:e] for f, s, e in zip(frames, starts, ends)}

    def __len__(self) -> int:
        return len(self.frame)


MOT15_GT = "MOT15 ground truth (10 columns frame,id,x,y,w,h,conf,X,Y,Z with conf 1 = use, 0 = ignore)"
MOT16_GT = "MOT16/17 ground truth (9 columns frame,id,x,y,w,h,flag,class,visibility)"


def read_mot_file(path: Path, kind: str, min_score: float | None = None) -> MotBoxes:
    """Parse ``det`` or ``gt`` rows. A malformed line (too few fields, a field that is not a
    number, a NaN or infinite value, a box without positive width and height) is refused
    with its line number, before anything is stored. Ground truth is MOT15 (10 columns) or
    MOT16/17 (9 columns), told apart by the content; anything else is refused."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.") from None
    need = 9 if kind == "gt" else 6
    data = _fast_parse(text)
    if data is None:  # irregular file: the careful parser names the bad line
        data = _careful_parse(text, path, kind, need)
    _check_values(data, text, path)
    return _select(data, path, kind, min_score)


def _fast_parse(text: str) -> np.ndarray | None:
    """Well-formed files (the common case) in one numpy call, with their own number of
    columns; None sends the text to the careful parser, which names the first bad line."""
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
    return data


def _data_lines(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")]


def _careful_parse(text: str, path: Path, kind: str, need: int) -> np.ndarray:
    rows = []
    width = None
    for number, line in _data_lines(text):
        parts = line.replace(" ", "").split(",")
        if len(parts) < need and not (kind == "gt" and len(parts) >= 6):
            raise UserError(
                f"{path.name} line {number} has {len(parts)} fields; MOT {kind} lines need at least {need} "
                f"(frame,id,x,y,w,h,...). Fix or remove that line and import again."
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise UserError(f"{path.name} line {number} has a field that is not a number: {line[:60]!r}. Fix it and import again.") from None
        if kind == "gt" and width is not None and len(values) != width:
            raise UserError(f"{path.name} line {number} has {len(values)} fields where the lines before have {width}; "
                            f"ground truth lines must all have the same columns, so fix that line and import again.")
        width = width or len(values)
        rows.append(values)
    if kind == "gt":
        return np.array(rows, dtype=np.float64).reshape(-1, width or 9)
    # Detections: only the first seven fields matter; missing scores read as 1.
    return np.array([(r + [1.0] * 7)[:7] for r in rows], dtype=np.float64).reshape(-1, 7)


def _check_values(data: np.ndarray, text: str, path: Path) -> None:
    """NaN, infinite values and boxes without positive width and height are refused with
    their line numbers (never dropped without a word)."""
    head = data[:, :min(data.shape[1], 7)]
    bad = ~np.isfinite(head).all(axis=1) | ~(data[:, 4] > 0) | ~(data[:, 5] > 0)
    if not bad.any():
        return
    lines = _data_lines(text)
    rows = np.flatnonzero(bad)
    numbers = [str(lines[i][0]) for i in rows[:5]]
    listed = ", ".join(numbers) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    raise UserError(
        f"{path.name} line{'s' if len(rows) > 1 else ''} {listed} hold{'' if len(rows) > 1 else 's'} a value that is "
        f"NaN or infinite or a box whose width or height is not positive (e.g. {lines[rows[0]][1][:60]!r}); "
        f"fix or remove {'them' if len(rows) > 1 else 'it'} and import again, nothing was stored."
    )


def gt_format(data: np.ndarray) -> tuple[str | None, str]:
    """Which ground-truth layout the rows follow, decided by their content:
    ("MOT15" | "MOT16/17" | "boxes only" | None, why not when None)."""
    columns = data.shape[1]
    if len(data) == 0 or columns == 6:
        return "boxes only", ""
    col6 = data[:, 6]
    if columns == 10:
        if not np.isin(col6, (0, 1)).all():
            return None, "its 10-column rows have a conf column (7th) that is not 0 or 1, as detections have"
        return "MOT15", ""
    if columns == 9:
        flag_ok = np.isin(col6, (0, 1)).all()
        cls = data[:, 7]
        class_ok = (cls == np.round(cls)).all() and cls.min() >= 1 and cls.max() <= 12
        vis_ok = data[:, 8].min() >= 0 and data[:, 8].max() <= 1
        if flag_ok and class_ok and vis_ok:
            return "MOT16/17", ""
        what = ("a flag column (7th) that is not 0 or 1" if not flag_ok else
                "a class column (8th) that is not a whole number from 1 to 12" if not class_ok else
                "a visibility column (9th) outside 0..1")
        return None, f"its 9-column rows have {what}"
    return None, f"its rows have {columns} columns"


def _select(data: np.ndarray, path: Path, kind: str, min_score: float | None) -> MotBoxes:
    fmt = ""
    if kind == "gt":
        fmt, why = gt_format(data)
        if fmt is None:
            raise UserError(f"{path.name} is neither {MOT15_GT} nor {MOT16_GT}, as {why}; "
                            f"convert it to one of those (or import its boxes as detections with --det).")
        if fmt == "MOT15":
            data = data[data[:, 6] == 1]  # conf 0 = ignore
        elif fmt == "MOT16/17":
            data = data[(data[:, 6] == 1) & (data[:, 7] == 1)]  # pedestrians: flag 1, class 1
        score = np.ones(len(data), dtype=np.float32)
    else:
        score = data[:, 6].astype(np.float32) if data.shape[1] > 6 else np.ones(len(data), dtype=np.float32)
        if min_score is not None:
            data, score = data[score >= min_score], score[score >= min_score]
    if np.any(data[:, 0] < 1):
        raise UserError(f"{path.name} has frame numbers below 1; MOT frames start at 1.")
    return MotBoxes(
        frame=data[:, 0].astype(np.int64),
        ident=data[:, 1].astype(np.int64),
        boxes=data[:, 2:6].astype(np.float32),
        score=score,
        format=fmt,
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

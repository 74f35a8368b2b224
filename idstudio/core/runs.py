"""Bookkeeping of training runs that must survive a kill: a per-run lock, the status of a
run whose process died, the resume config, metrics written after the last checkpoint,
temporary files left by a kill, atomic writes, and seeding.

- ``RunLock``: an OS file lock on ``runs/<id>/.lock``, held while a process trains the run.
  The OS releases it when the process dies, however it dies, so a run marked ``running``
  whose lock is free was interrupted (``mark_interrupted``), and a resume of a run whose
  lock is held is refused with one sentence.
- ``resume_config``: a resumed run continues with its saved settings; only the fields the
  user gave change, and each change is reported.
- ``truncate_metrics``: events written after the checkpoint being resumed from are dropped,
  so ``metrics.jsonl`` never holds duplicated or backward steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from idstudio.core.errors import UserError

LOCK_NAME = ".lock"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class RunLock:
    """``with RunLock(run_dir, run_id):`` — this process trains the run; UserError when
    another process (or another job in this one) already does."""

    def __init__(self, run_dir: Path, run_id: str):
        self.path = Path(run_dir) / LOCK_NAME
        self.run_id = run_id
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise UserError(f"Run {self.run_id} is still being trained by another process{holder}; wait for it to "
                            f"finish or stop it before resuming.")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                _unlock(self.fd)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 200, 0).decode() or "{}")
        return f" (pid {info['pid']} on {info['host']})" if "pid" in info else ""
    except (OSError, ValueError, AttributeError):
        return ""


def is_locked(run_dir: Path) -> bool:
    """Whether some process (this one included) holds the run's lock now."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # never locked (or unreadable): no live trainer can hold it
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def mark_interrupted(conn: sqlite3.Connection, runs_dir: Path) -> list[str]:
    """Runs marked ``running`` whose process is gone (their lock is free) become
    ``interrupted``: a kill, a crash or a power cut left them. Returns their ids."""
    ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()]
    gone = [run_id for run_id in ids if not is_locked(runs_dir / run_id)]
    if gone:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("UPDATE runs SET status = 'interrupted', error = COALESCE(error, ?) WHERE id = ? AND status = 'running'",
                             [("its process ended without finishing (killed or crashed); resume it to continue", g) for g in gone])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return gone


# Fields that decide the model's shape: a checkpoint cannot be resumed under others.
MODEL_FIELDS = ("arch", "dim", "height", "width", "pooling", "last_stride", "colour", "colour_weight")
# Fields that only matter for a new run's start.
START_FIELDS = ("weights", "init")


def given_fields(config: Any) -> dict[str, Any]:
    """The fields of a config object that differ from its class's defaults: what a caller
    that passes a whole config on resume is taken to have given."""
    defaults = dataclasses.asdict(type(config)())
    return {k: v for k, v in dataclasses.asdict(config).items() if v != defaults[k]}


def resume_config(cls: type, saved: dict[str, Any], given: dict[str, Any], run_id: str) -> tuple[Any, list[str]]:
    """The saved config with only the given fields changed; returns (config, change lines).
    A change of the model's shape is refused with one sentence; start fields are ignored."""
    from idstudio.core.config import from_dict

    base = from_dict(cls, saved)
    current = dataclasses.asdict(base)
    wanted = dataclasses.asdict(from_dict(cls, {**current, **given}))
    changes, lines = {}, []
    for name, value in wanted.items():
        if name not in given or value == current[name] or name in START_FIELDS:
            continue
        if name in MODEL_FIELDS:
            raise UserError(f"Run {run_id} was trained with {name}={current[name]!r}, which a resume cannot change to "
                            f"{value!r}; resume without --{name.replace('_', '-')} or start a new run.")
        changes[name] = value
        lines.append(f"{name} {current[name]!r} -> {value!r}")
    return from_dict(cls, {**current, **changes}), lines


def truncate_metrics(path: Path, size: int | None) -> bool:
    """Cut ``metrics.jsonl`` back to ``size`` bytes (its size when the checkpoint being
    resumed was written): the events after it belong to work the resume does again.
    Returns whether anything was cut."""
    path = Path(path)
    if size is None or not path.exists() or path.stat().st_size <= size:
        return False
    with open(path, "r+b") as handle:
        handle.truncate(int(size))
    return True


def remove_temporary_files(run_dir: Path) -> list[str]:
    """Partly written files (``.best.pt.<pid>.tmp``, ...) that a kill during a write left
    behind. Only called while holding the run's lock, so none is being written now."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file so that a kill leaves the old or the new content, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def seed_everything(seed: int) -> None:
    """Seed the global generators a run draws from (torch's CPU generator drives the
    augmentation; numpy and random for anything else), so a seeded CPU run repeats."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)

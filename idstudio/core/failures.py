"""Storage failures a user can cause or fix — a full disk, a read-only project, a project
that another process holds locked — turned into the one sentence a user reads.

SQLite and the OS report these as ``sqlite3.OperationalError("database or disk is full")``,
``"disk I/O error"``, ``"attempt to write a readonly database"``, ``OSError(ENOSPC)``, ...;
``user_error(exc, where)`` maps each to a ``UserError`` that says what happened and what to
do, or returns None for anything else (a real bug keeps its traceback).
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from idstudio.core.errors import UserError

FULL = ("database or disk is full", "disk i/o error", "no space left")
READ_ONLY = ("readonly database", "read-only", "unable to open database file", "attempt to write a readonly")
LOCKED = ("database is locked", "database table is locked")


def user_error(exc: BaseException, where: Path | str | None = None) -> UserError | None:
    """The UserError for a storage failure, or None when ``exc`` is not one."""
    place = f" {where}" if where else ""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if any(t in text for t in FULL):
            return _full(place)
        if any(t in text for t in READ_ONLY):
            return _read_only(place)
        if any(t in text for t in LOCKED):
            return UserError(f"Another process kept the project{place} locked too long (an import, mining or training "
                             f"writing to it); nothing was lost, run the command again when it has finished.")
        return None
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _full(place or (f" {exc.filename}" if exc.filename else ""))
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _read_only(place or (f" {exc.filename}" if exc.filename else ""))
    return None


def _full(place: str) -> UserError:
    return UserError(f"The disk holding{place} is full, so the last batch was not written (everything committed "
                     f"before is kept); free some space and run the same command again.")


def _read_only(place: str) -> UserError:
    return UserError(f"The project{place} cannot be written (a read-only file, folder or disk), so nothing was "
                     f"changed; make it writable (chmod u+w, chattr -i or remount) and run the command again.")

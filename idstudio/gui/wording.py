"""Counts as the window writes them: "1 video", "2 videos"."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"

"""Memory at scale: mining, embedding and training stream their crops, so a project ten times
larger costs about the same memory (``bench/scale.py``, the suite's small version)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"


def pipeline(tmp_path: Path, n: int) -> dict:
    """Generate a project of ``n`` instances, mine, embed and train in one fresh process."""
    out = subprocess.run([sys.executable, str(BENCH), "--task", "pipeline", "--project", str(tmp_path / f"n{n}"),
                          "--n", str(n), "--steps", "2", "--input", "128x64"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_ten_times_the_instances_cost_about_the_same_memory(tmp_path):
    small, large = pipeline(tmp_path, 2_000), pipeline(tmp_path, 20_000)
    assert large["mine"]["instances"] == 20_000 and large["train"]["steps"] == 4
    assert large["peak_rss_mb"] <= 1.5 * small["peak_rss_mb"]
    # What grows with the project: crops held in memory at 128x64 would be 24 KiB each,
    # 430 MB more for the 18,000 extra instances; streamed, the growth is tables and caches.
    growth = (large["peak_rss_mb"] - large["base_rss_mb"]) - (small["peak_rss_mb"] - small["base_rss_mb"])
    assert growth < 150, (small, large)

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui


def test_gui_without_a_usable_platform_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "nosuchplatform"
    out = subprocess.run([sys.executable, "-m", "idstudio", "gui", str(tmp_path / "p")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "The GUI cannot open a window" in out.stderr and "QT_QPA_PLATFORM" in out.stderr
    assert "Traceback" not in out.stderr and "Aborted" not in out.stderr

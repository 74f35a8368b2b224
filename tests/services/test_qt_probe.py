"""The Qt platform check names exactly the libraries that Qt's xcb plugin cannot load, with
their Debian packages — not libxcb-cursor0, which Qt's own message names whatever is
missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idstudio.gui import qt_probe  # imports no Qt at module level (the probe's main() does)
from idstudio.services import doctor

QT_GENERIC_MESSAGE = (
    "qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin.\n"
    "qt.qpa.plugin: Could not load the Qt platform plugin \"xcb\" in \"\" even though it was found.\n"
    "This application failed to start because no Qt platform plugin could be initialized.\n"
    "Available platform plugins are: eglfs, minimal, offscreen, vnc, wayland, xcb.\n"
)


class FakeProbe:
    def __init__(self, stdout: str, stderr: str, returncode: int = -6):
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode

    def communicate(self, timeout=None):
        return self.stdout, self.stderr


def _probe_output(missing: list[str]) -> str:
    info = {"qt": "6.7.0", "pyside": "6.7.0", "plugins_path": "/x/plugins", "platforms": ["offscreen", "xcb"]}
    found = [{"library": m, "package": qt_probe.debian_package(m)} for m in missing]
    return json.dumps(info) + "\n" + json.dumps({"xcb_missing": found}) + "\n"


def test_debian_package_names():
    assert qt_probe.debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert qt_probe.debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert qt_probe.debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert qt_probe.debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert qt_probe.debian_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert qt_probe.debian_package("libxcb-render-util.so.0") == "libxcb-render-util0"
    assert qt_probe.debian_package("libglib-2.0.so.0") == "libglib2.0-0"
    ldd = ("\tlinux-vdso.so.1 (0x00007ffd)\n\tlibxcb-icccm.so.4 => not found\n"
           "\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x7f)\n"
           "\tlibxcb-keysyms.so.1 => not found\n\tlibxcb-icccm.so.4 => not found\n")
    assert qt_probe.missing_libraries(ldd) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_doctor_names_the_missing_xcb_libraries_not_the_one_qt_mentions():
    env = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}
    probe = FakeProbe(_probe_output(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]), QT_GENERIC_MESSAGE)
    check = doctor.check_qt(env, probe=probe)
    assert check.status == "problem"
    assert "libxcb-icccm.so.4 and libxcb-keysyms.so.1" in check.summary
    assert "libxcb-icccm4 and libxcb-keysyms1" in check.summary and "cursor" not in check.summary
    assert "`sudo apt-get install libxcb-icccm4 libxcb-keysyms1`" in check.fix and "cursor" not in check.fix
    # only the cursor library missing: that one is named
    probe = FakeProbe(_probe_output(["libxcb-cursor.so.0"]), QT_GENERIC_MESSAGE)
    check = doctor.check_qt(env, probe=probe)
    assert "libxcb-cursor0" in check.summary and "icccm" not in check.summary
    assert "`sudo apt-get install libxcb-cursor0`" in check.fix and "xcb-util-cursor" in check.fix
    # no display: a note, naming what a desktop here would still need
    probe = FakeProbe(_probe_output(["libxcb-keysyms.so.1"]), QT_GENERIC_MESSAGE)
    check = doctor.check_qt({"QT_QPA_PLATFORM": ""}, probe=probe)
    assert check.status == "note" and "lacks libxcb-keysyms1" in check.summary and "cursor" not in check.summary
    # nothing missing (ldd saw every library): no library is blamed
    probe = FakeProbe(_probe_output([]), QT_GENERIC_MESSAGE)
    check = doctor.check_qt(env, probe=probe)
    assert check.status == "problem" and "cursor" not in check.summary


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("ldd") is None, reason="the xcb plugin and ldd are Linux's")
def test_the_real_probe_names_what_ldd_finds_missing_here():
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":987"}
    env.pop("IDSTUDIO_BLOCK_QT", None)
    env.pop("WAYLAND_DISPLAY", None)
    out = subprocess.run([sys.executable, "-m", "idstudio.gui.qt_probe"], capture_output=True, text=True, env={**env, "QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    info = json.loads(out.stdout.splitlines()[0])
    plugin = Path(info["plugins_path"]) / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        pytest.skip("this Qt has no xcb platform plugin")
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    expected = sorted({line.split("=>")[0].strip() for line in ldd.splitlines() if "not found" in line})
    check = doctor.check_qt(env)
    assert sorted(m["library"] for m in check.details["xcb_missing"]) == expected
    if not expected:
        pytest.skip("every library of the xcb plugin is installed here; the fake-probe test covers the naming")
    for library in expected:
        assert library in check.summary and qt_probe.debian_package(library) in check.fix
    if "libxcb-cursor.so.0" not in expected:
        assert "libxcb-cursor0" not in check.summary + check.fix

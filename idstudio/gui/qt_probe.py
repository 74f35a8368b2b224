"""The doctor's Qt probe, run in a child process (``python -m idstudio.gui.qt_probe``): a
platform plugin that cannot load aborts the process, so it must not be the caller's.

Prints JSON lines: the installed platforms; the shared libraries that the xcb platform
plugin cannot load (from ``ldd`` of the plugin, which follows libQt6XcbQpa and the rest),
each with its Debian package; then one line when a QGuiApplication started. Qt's own
message names libxcb-cursor0 whenever the xcb plugin fails, whichever library is missing,
so the doctor names the ones found here instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys

# Debian/Ubuntu packages whose names do not follow the usual rule (see debian_package).
PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgssapi_krb5.so.2": "libgssapi-krb5-2",
}


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0, libX11-xcb.so.1 -> libx11-xcb1."""
    if soname in PACKAGE_EXCEPTIONS:
        return PACKAGE_EXCEPTIONS[soname]
    match = re.match(r"^(lib[\w.+-]+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    stem, version = match.group(1).lower().replace("_", "-"), match.group(2)
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def missing_libraries(ldd_output: str) -> list[str]:
    """Library names that ``ldd`` reports as ``not found``, once each, in order."""
    names: list[str] = []
    for line in ldd_output.splitlines():
        if "not found" in line and "=>" in line:
            name = line.split("=>", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    return names


def xcb_missing(plugins: str) -> list[dict[str, str]] | None:
    """What the xcb platform plugin cannot load, or None when that cannot be told (no
    plugin, no ldd: not Linux)."""
    plugin = os.path.join(plugins, "platforms", "libqxcb.so")
    ldd = shutil.which("ldd")
    if not os.path.isfile(plugin) or ldd is None:
        return None
    try:
        out = subprocess.run([ldd, plugin], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [{"library": name, "package": debian_package(name)} for name in missing_libraries(out)]


def main() -> int:
    import PySide6
    from PySide6 import QtCore

    plugins = QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath)
    folder = os.path.join(plugins, "platforms")
    names = []
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.startswith("libq") and ".so" in f:
                names.append(f[4:f.index(".so")])
            elif f.startswith("q") and f.endswith(".dll"):
                names.append(f[1:-4])
    print(json.dumps({"qt": QtCore.qVersion(), "pyside": PySide6.__version__,
                      "plugins_path": plugins, "platforms": names}), flush=True)
    print(json.dumps({"xcb_missing": xcb_missing(plugins)}), flush=True)
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication(sys.argv[:1])
    print(json.dumps({"started": app.platformName()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

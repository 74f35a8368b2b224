"""The doctor's Qt probe, run in a child process (``python -m idstudio.gui.qt_probe``): a
platform plugin that cannot load aborts the process, so it must not be the caller's.
Prints one JSON line with the installed platforms, then one when a QGuiApplication started."""

import json
import os
import sys


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
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication(sys.argv[:1])
    print(json.dumps({"started": app.platformName()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

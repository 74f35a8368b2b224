"""Entry point of the packaged app (PyInstaller one-folder build).

    idstudio                    open the GUI (the last project)
    idstudio PROJECT_FOLDER     open the GUI on that project (the .desktop entry's %f)
    idstudio --self-test        headless check: main window, demo project, four views; exit 0
    idstudio COMMAND ...        the CLI (`idstudio --help`), e.g. `idstudio doctor`
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _build_info() -> dict:
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent))
    try:
        return json.loads((base / "idstudio_build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--doctor-qt-probe"]:  # the doctor's child process (see services/doctor.py)
        from idstudio.gui.qt_probe import main as qt_probe_main

        return qt_probe_main()
    if _build_info().get("variant") == "cpu":
        # The CPU build carries stand-ins for the CUDA libraries: never let torch reach a GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if args[:1] == ["--self-test"]:
        from idstudio.gui.selftest import run_self_test

        return run_self_test(Path(args[1]) if len(args) > 1 else None)
    if not args or (len(args) == 1 and Path(args[0]).is_dir()):
        from idstudio.gui.app import run

        return int(run(args[0] if args else None) or 0)
    from idstudio.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # DataLoader workers re-enter the frozen program
    raise SystemExit(main())

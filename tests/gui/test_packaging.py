"""The one-folder desktop app: build it with PyInstaller exactly as `make package` does,
then start the frozen program with --version, `doctor` and --self-test (main window
offscreen, a demo project, the four views; exit 0). Slow: one full build (minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.gui]

REPO = Path(__file__).resolve().parents[2]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def frozen_app(tmp_path_factory) -> Path:
    pytest.importorskip("PyInstaller", reason="pyinstaller is installed by `make package` / the dev extra")
    out = tmp_path_factory.mktemp("package")
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "IDSTUDIO_BLOCK_QT"}
    proc = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(out / "dist"), "--workpath", str(out / "build"), str(REPO / "packaging" / "idstudio.spec")],
        cwd=REPO, capture_output=True, text=True, timeout=3000, env=env,
    )
    build_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    app = out / "dist" / "idstudio" / "idstudio"
    assert app.is_file() and os.access(app, os.X_OK)
    size = folder_size(app.parent)
    # figures for the report (pytest -s shows them); never asserted as times
    print(f"\npackage: build {build_s:.0f} s, folder {size / 1024**3:.2f} GiB")
    return app


def run_app(app: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("IDSTUDIO_BLOCK_QT", "PYTHONPATH", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run([str(app), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=app.parent.parent)


def test_frozen_app_version(frozen_app):
    from idstudio import __version__

    proc = run_app(frozen_app, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"idstudio {__version__}"


def test_frozen_app_layout_and_size(frozen_app):
    root = frozen_app.parent
    internal = root / "_internal"
    assert (internal / "resources" / "style.qss").is_file() or (internal / "resources").is_dir()
    platforms = {p.name for p in internal.rglob("platforms/libq*.so")}
    assert {"libqoffscreen.so", "libqxcb.so"} <= platforms, platforms
    assert list(internal.rglob("torchvision/_C*.so")), "torchvision's compiled ops must be bundled"
    for name in ("idstudio.desktop", "io.idstudio.IdStudio.metainfo.xml", "idstudio-256.png", "idstudio.svg"):
        assert (root / "share" / name).is_file(), name
    build = json.loads((internal / "idstudio_build.json").read_text())
    if build["variant"] == "cpu":  # the CUDA libraries are stubs or left out: keeps the folder small
        assert not list(internal.rglob("libcudnn_engines_precompiled*"))
        blas = list(internal.rglob("libcublasLt.so*"))
        assert blas and all(p.stat().st_size < 1_000_000 for p in blas if not p.is_symlink())
        assert folder_size(root) < 2.5 * 1024**3


def test_frozen_doctor_runs_everything_but_the_gpu_ok(frozen_app, tmp_path):
    proc = run_app(frozen_app, "doctor", str(tmp_path), "--json")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    checks = {c["name"]: c for c in report["checks"]}
    assert proc.returncode == 0, proc.stdout
    assert checks["idstudio"]["details"]["frozen"] is True
    assert checks["torch/torchvision"]["details"]["nms_ok"] is True
    assert checks["Qt platform"]["details"]["started"] == "offscreen"  # the probe re-enters the frozen program
    assert checks["OpenCV"]["details"]["ffmpeg"].startswith("YES")


def test_frozen_self_test_opens_the_window_on_a_demo_project(frozen_app, tmp_path):
    png = tmp_path / "window.png"
    proc = run_app(frozen_app, "--self-test", str(png))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test: OK" in proc.stderr
    assert png.is_file() and png.stat().st_size > 10_000


def test_frozen_cli_makes_a_demo_project_and_exports_onnx(frozen_app, tmp_path):
    project = tmp_path / "demo"
    proc = run_app(frozen_app, "demo", str(project), "--small", "--no-gui")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "model.onnx"
    proc = run_app(frozen_app, "export", str(project), "--checkpoint", "init", "--format", "onnx", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and out.stat().st_size > 1_000_000

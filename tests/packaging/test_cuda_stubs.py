"""packaging/cuda_stubs.py: a stub has the real library's soname, exported symbols and
symbol versions, loads where the real one did, and aborts with a clear message if called."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (shutil.which("cc") and shutil.which("readelf")), reason="needs cc and readelf")


def load_module():
    spec = importlib.util.spec_from_file_location("cuda_stubs", REPO / "packaging" / "cuda_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stub_keeps_soname_symbols_and_versions_and_aborts_when_called(tmp_path):
    cs = load_module()
    src = tmp_path / "real.c"
    src.write_text("int fancy_add(int a, int b) { return a + b; }\nint fancy_table[64];\n"
                   "__attribute__((weak)) int vague(void) { return 1; }\n")
    (tmp_path / "v.map").write_text("LIBFANCY_1 { global: fancy_add; fancy_table; vague; local: *; };\n")
    real = tmp_path / "real" / "libfancy.so.1"
    real.parent.mkdir()
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(real), "-Wl,-soname,libfancy.so.1",
                    f"-Wl,--version-script={tmp_path / 'v.map'}", str(src)], check=True)
    stub = cs.make_stub(real, tmp_path / "stub")
    assert stub.name == "libfancy.so.1" and cs.soname(stub) == "libfancy.so.1"
    names = {(s["name"], s["version"], s["kind"]) for s in cs.exported_symbols(stub)}
    assert {("fancy_add", "LIBFANCY_1", "FUNC"), ("fancy_table", "LIBFANCY_1", "OBJECT"), ("vague", "LIBFANCY_1", "FUNC")} <= names
    table = next(s for s in cs.exported_symbols(stub) if s["name"] == "fancy_table")
    assert table["size"] == 64 * 4
    # a weak symbol another loaded library defines is left out (no interposition)
    other_src = tmp_path / "other.c"
    other_src.write_text("__attribute__((weak)) int vague(void) { return 2; }\n")
    other = tmp_path / "libother.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(other), str(other_src)], check=True)
    stub2 = cs.make_stub(real, tmp_path / "stub2", others=[other])
    assert "vague" not in {s["name"] for s in cs.exported_symbols(stub2)}
    # loads, and calling it aborts with the message naming the library
    code = f"import ctypes; lib = ctypes.CDLL({str(stub)!r}); print('loaded', flush=True); lib.fancy_add(1, 2)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "loaded" in proc.stdout
    assert proc.returncode != 0 and "CUDA library libfancy.so.1 was left out" in proc.stderr
    assert stub.stat().st_size < 100_000

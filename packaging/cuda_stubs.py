"""Stand-ins for the big CUDA libraries in the CPU build of the frozen app.

PyPI's Linux torch is a CUDA build: ``libtorch_cuda.so`` (loaded by ``import torch``) is
linked against cuBLAS, cuFFT, cuSPARSE, NCCL, ... (about 1.9 GB), so they must be present
for torch to import even when no GPU is ever used. A *stub* is a tiny shared library with
the same SONAME, the same exported symbols and the same symbol versions, every function
pointing at one routine that prints which library is missing and aborts. The dynamic
linker is satisfied (lazy binding: nothing is resolved until called), and on the CPU path
nothing is called: the CPU build also hides every GPU (``CUDA_VISIBLE_DEVICES=""``) so torch
never reaches them. ``libcudart`` stays real, so ``torch.cuda.is_available()`` answers
truthfully (False).

    python packaging/cuda_stubs.py OUT_DIR LIB.so...   # writes OUT_DIR/<soname> for each
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

_SYM = re.compile(r"^\s*\d+:\s+([0-9a-fA-F]+)\s+(\d+|0x[0-9a-fA-F]+)\s+(\w+)\s+(\w+)\s+(\w+)\s+(\S+)\s+(\S+)")

STUB_C = r"""
#include <unistd.h>
#include <stdlib.h>
static const char msg[] =
  "idstudio: this is the CPU-only build of the app; the CUDA library %(soname)s was left out "
  "(a GPU code path was reached). Install idstudio with pip (`make setup`) to use a GPU.\n";
__attribute__((visibility("hidden"), noreturn)) void __idstudio_cuda_stub(void) {
  ssize_t ignored = write(2, msg, sizeof(msg) - 1); (void)ignored; abort();
}
"""


def soname(path: Path) -> str:
    out = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else path.name


def needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def exported_symbols(path: Path) -> list[dict]:
    """Defined dynamic symbols: name, default version, type, size."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    symbols, seen = [], set()
    for line in out.splitlines():
        m = _SYM.match(line)
        if not m:
            continue
        _, size, kind, bind, vis, ndx, name = m.groups()
        if ndx == "UND" or bind not in ("GLOBAL", "WEAK", "UNIQUE") or kind not in ("FUNC", "OBJECT", "IFUNC", "TLS", "NOTYPE"):
            continue
        version = None
        if "@@" in name:
            name, version = name.split("@@", 1)
        elif "@" in name:  # a non-default (old) version: consumers bind to the default one
            continue
        if ndx == "ABS":  # version nodes and linker-defined absolutes
            continue
        if name in seen or not name:
            continue
        seen.add(name)
        size = int(size, 16) if size.startswith("0x") else int(size)
        symbols.append({"name": name, "version": version, "kind": kind, "bind": bind, "size": size})
    return symbols


def _q(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_stub(real: Path, out_dir: Path, keep_needed: list[str] = (), others: list[Path] = ()) -> Path:
    """Write the stub of ``real`` as OUT_DIR/<soname>.

    ``keep_needed``: sonames the stub still depends on, because consumers find symbols
    through them (libtorch_cuda -> libtorch_nvshmem). ``others``: the real libraries loaded
    beside it. C++ vague-linkage symbols (WEAK/UNIQUE: inline functions, template instances,
    typeinfo) that one of them also defines are left out of the stub, so that it never
    interposes on a real definition."""
    real = Path(real)
    name = soname(real)
    symbols = exported_symbols(real)
    if others:
        elsewhere = set()
        for other in others:
            elsewhere.update(s["name"] for s in exported_symbols(Path(other)))
        symbols = [s for s in symbols if s["bind"] == "GLOBAL" or s["name"] not in elsewhere]
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    asm = ["\t.text", "\t.p2align 4", "idstudio_stub_entry:", "\tjmp __idstudio_cuda_stub"]
    data = []
    for s in symbols:
        q = _q(s["name"])
        directive = ".globl"
        if s["kind"] in ("OBJECT", "TLS"):
            section = ".tbss" if s["kind"] == "TLS" else ".bss"
            flags = '"awT",@nobits' if s["kind"] == "TLS" else '"aw",@nobits'
            data += [f"\t.section {section},{flags}", "\t.balign 16", f"\t{directive} {q}",
                     f"\t.type {q},@{'tls_object' if s['kind'] == 'TLS' else 'object'}",
                     f"\t.size {q},{max(s['size'], 1)}", f"{q}:", f"\t.zero {max(s['size'], 1)}"]
        else:
            asm += [f"\t{directive} {q}", f"\t.type {q},@function", f"\t.set {q},idstudio_stub_entry"]
    versions: dict[str, list[str]] = defaultdict(list)
    for s in symbols:
        versions[s["version"] or ""].append(s["name"])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "stub.c").write_text(STUB_C % {"soname": name})
        (tmp / "syms.s").write_text("\n".join(asm + data + ['\t.section .note.GNU-stack,"",@progbits']) + "\n")
        cmd = ["cc", "-shared", "-fPIC", "-O1", "-o", str(out), f"-Wl,-soname,{name}", "-Wl,--no-undefined",
               str(tmp / "stub.c"), str(tmp / "syms.s")]
        named = [v for v in versions if v]
        if named:
            nodes = []
            for i, v in enumerate(named):
                names = versions[v] + (versions[""] if i == 0 else [])
                body = "".join(f"    {_q(n)};\n" for n in names)
                nodes.append(f"{v} {{\n  global:\n{body}" + ("  local: *;\n" if i == 0 else "") + "};\n")
            (tmp / "versions.map").write_text("".join(nodes))
            cmd.append(f"-Wl,--version-script={tmp / 'versions.map'}")
        if keep_needed:  # tiny placeholders with those sonames, only to record DT_NEEDED entries
            cmd.append("-Wl,--no-as-needed")
            for i, dep in enumerate(keep_needed):
                dummy = tmp / f"libdep{i}.so"
                subprocess.run(["cc", "-shared", "-o", str(dummy), f"-Wl,-soname,{dep}", "-x", "c", "/dev/null"], check=True)
                cmd.append(str(dummy))
            cmd += ["-Wl,--allow-shlib-undefined", "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN"]
        subprocess.run(cmd, check=True)
    return out


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    for lib in argv[1:]:
        lib, _, keep = lib.partition(":")  # LIB:NEEDED1,NEEDED2 keeps those dependencies
        lib, _, other = lib.partition("+")  # LIB+OTHER1,OTHER2 avoids interposing on them
        stub = make_stub(Path(lib), out_dir, [k for k in keep.split(",") if k], [Path(o) for o in other.split(",") if o])
        print(f"{lib} ({Path(lib).stat().st_size / 1e6:.0f} MB) -> {stub} ({stub.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

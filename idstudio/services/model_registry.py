"""The project's model registry: identity models from elsewhere, chosen by name.

``add(project, file, ...)`` finds the file's kind (ONNX, TorchScript, the ISR release, an
idstudio checkpoint), builds its model card — from the card idstudio's own exports carry,
the fixed input size of an ONNX model, the ISR layout, the flags given, else the defaults
below — runs the model once to find its output dimension (and to refuse a model that fails,
returns the wrong shape or NaN), hashes the file and stores one row in ``models``.

``load(project, name)`` checks the file is still there and unchanged (size and mtime, else
the SHA-256 again) before loading it. Registered models are chosen by name (or
``model:NAME``) wherever a checkpoint is chosen (``services.models.resolve_checkpoint``);
their embeddings and indexes are cached under ``model:NAME@<hash>``.

Defaults for a file without an embedded card: input 256x128 (an ONNX model's fixed input
size wins), squash, ImageNet mean/std on [0, 1] RGB.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from idstudio.core import external_models as xm
from idstudio.core.errors import UserError
from idstudio.core.store import Project

PREFIX = "model:"
RESERVED = ("init", "colorhist")
DEFAULTS_HELP = ("defaults for a file without an embedded card: input 256x128 (an ONNX model's fixed input size wins), "
                 "squash, ImageNet mean/std on RGB in [0, 1]")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stored_path(project: Project, path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(project.root.resolve()))
    except ValueError:
        return str(path)


def file_of(project: Project, row: dict[str, Any]) -> Path:
    path = Path(row["path"])
    return path if path.is_absolute() else project.root / path


def parse_input(text: str | None) -> tuple[int, int] | None:
    if text is None or text == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", str(text))
    if not m:
        raise UserError(f"--input {text!r} is not HxW; give the model's input height and width like 256x128.")
    return int(m.group(1)), int(m.group(2))


def _check_name(project: Project, name: str) -> str:
    name = name.strip()
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", name):
        raise UserError(f"{name!r} cannot be a model name; use letters, digits, '.', '_', '+' or '-' (at most 64).")
    if name in RESERVED:
        raise UserError(f"{name!r} is a built-in checkpoint name; give the model another --name.")
    if (project.runs_dir / name).exists():
        raise UserError(f"{name!r} is the id of a run; give the model another --name.")
    if project.query("SELECT 1 FROM models WHERE name = ?", (name,)):
        raise UserError(f"A model named {name!r} is already registered; give another --name or remove it first.")
    return name


def build_card(path: Path, kind: str, input_size: tuple[int, int] | None = None, resize: str | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None, bgr: bool | None = None,
               scale: float | None = None) -> tuple[xm.ModelCard, list[str]]:
    """(card without dim, the fields taken from defaults)."""
    base: dict[str, Any] = {"kind": kind}
    assumed: list[str] = []
    known: set[str] = set()
    if kind == "isr":
        base.update(xm.isr_card().to_dict())
        known.update(("input", "resize", "normalisation", "colour"))
    elif kind in ("onnx", "torchscript"):
        embedded = xm.read_embedded_card(path, kind)
        if embedded:
            for k in ("height", "width", "resize", "mean", "std", "bgr", "scale", "note"):
                if k in embedded:
                    base[k] = embedded[k]
            base["note"] = embedded.get("note") or "idstudio export (card inside the file)"
            known.update(("input", "resize", "normalisation", "colour"))
        if kind == "onnx":
            fixed = xm.onnx_input_size(path)
            if fixed is not None:
                if input_size is not None and tuple(input_size) != tuple(fixed):
                    raise UserError(f"ONNX model {path.name} takes {fixed[0]}x{fixed[1]} images, not {input_size[0]}x"
                                    f"{input_size[1]}; drop --input or give {fixed[0]}x{fixed[1]}.")
                base["height"], base["width"] = fixed
                known.add("input")
    if input_size is not None:
        base["height"], base["width"] = input_size
        known.add("input")
    if resize is not None:
        base["resize"] = resize
        known.add("resize")
    if mean is not None:
        base["mean"] = tuple(mean)
    if std is not None:
        base["std"] = tuple(std)
    if scale is not None:
        base["scale"] = scale
    if mean is not None or std is not None or scale is not None:
        known.add("normalisation")
    if bgr is not None:
        base["bgr"] = bool(bgr)
        known.add("colour")
    if kind == "idstudio":
        known.update(("input", "resize", "normalisation", "colour"))
    for field in ("input", "resize", "normalisation", "colour"):
        if field not in known:
            assumed.append(field)
    return xm.ModelCard.from_dict(base), assumed


def _card_of_checkpoint(model: nn.Module) -> xm.ModelCard:
    spec = model.spec
    return xm.ModelCard("idstudio", spec.height, spec.width, "squash", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False, 1.0,
                        spec.dim, note=f"idstudio checkpoint: {spec.arch}, ImageNet normalisation inside the model")


def add(project: Project, file: str | Path, name: str | None = None, input_size: str | tuple[int, int] | None = None,
        resize: str | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
        bgr: bool | None = None, scale: float | None = None) -> dict[str, Any]:
    """Register a model file: its card, output dimension (one run) and hash go to ``models``."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise UserError(f"{path} does not exist; give the path of a model file.")
    if isinstance(input_size, str) or input_size is None:
        input_size = parse_input(input_size)
    name = _check_name(project, name or path.stem)
    kind = xm.detect_kind(path)
    if kind == "idstudio":
        from idstudio.core.model import load_checkpoint

        if any(v is not None for v in (input_size, resize, mean, std, bgr, scale)):
            raise UserError(f"{path.name} is an idstudio checkpoint, which knows its own input; drop the card flags.")
        model, _ = load_checkpoint(path)
        card, assumed = _card_of_checkpoint(model), []
    else:
        card, assumed = build_card(path, kind, input_size, resize, mean, std, bgr, scale)
        model = xm.open_model(path, card, name)
    dim = xm.probe(model, name)
    card = xm.ModelCard.from_dict({**card.to_dict(), "dim": dim})
    st = path.stat()
    row = {"name": name, "kind": kind, "path": _stored_path(project, path), "sha256": file_sha256(path),
           "size": st.st_size, "mtime_ns": st.st_mtime_ns, "card": json.dumps(card.to_dict()),
           "assumed": json.dumps(assumed), "created_at": time.time()}
    with project.transaction():
        project.conn.execute(f"INSERT INTO models ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))
    return _public(project, row)


def _public(project: Project, row: dict[str, Any]) -> dict[str, Any]:
    card = xm.ModelCard.from_dict(json.loads(row["card"]))
    return {"name": row["name"], "ref": PREFIX + row["name"], "kind": row["kind"], "path": str(file_of(project, row)),
            "sha256": row["sha256"], "card": card.to_dict(), "describe": card.describe(),
            "assumed": json.loads(row.get("assumed") or "[]")}


def list_models(project: Project) -> list[dict[str, Any]]:
    return [_public(project, dict(r)) for r in project.query("SELECT * FROM models ORDER BY created_at, name")]


def get(project: Project, name: str) -> dict[str, Any] | None:
    """The stored row of a registered model (by name or ``model:NAME``), else None."""
    name = str(name)
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    rows = project.query("SELECT * FROM models WHERE name = ?", (name,))
    return dict(rows[0]) if rows else None


def info(project: Project, name: str) -> dict[str, Any]:
    row = get(project, name)
    if row is None:
        raise UserError(f"No model named {name!r} is registered; see `idstudio model list`.")
    return _public(project, row)


def remove(project: Project, name: str) -> dict[str, Any]:
    row = get(project, name)
    if row is None:
        raise UserError(f"No model named {name!r} is registered; see `idstudio model list`.")
    with project.transaction():
        project.conn.execute("DELETE FROM models WHERE name = ?", (row["name"],))
    return _public(project, row)


def verified_path(project: Project, row: dict[str, Any]) -> Path:
    """The registered file, refused when it was moved or changed since it was registered."""
    path = file_of(project, row)
    if not path.is_file():
        raise UserError(f"The file of model {row['name']!r} is gone from {path}; put it back or register it again "
                        "with `idstudio model add`.")
    st = path.stat()
    if st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]:
        return path
    if st.st_size != row["size"] or file_sha256(path) != row["sha256"]:
        raise UserError(f"The file of model {row['name']!r} ({path.name}) changed since it was registered (its hash "
                        "differs); restore it, or register the new file under another name.")
    with project.transaction():  # same content, touched: remember the new time, skip the hash next time
        project.conn.execute("UPDATE models SET mtime_ns = ? WHERE name = ?", (st.st_mtime_ns, row["name"]))
    return path


def cache_key(row: dict[str, Any]) -> str:
    return f"{PREFIX}{row['name']}@{row['sha256'][:16]}"


def load(project: Project, name: str, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(the model, its row): an ``ExternalModel`` (``spec`` = its card), or an idstudio
    ``EmbeddingModel`` for a registered idstudio checkpoint."""
    row = get(project, name)
    if row is None:
        raise UserError(f"No model named {name!r} is registered; see `idstudio model list`.")
    path = verified_path(project, row)
    card = xm.ModelCard.from_dict(json.loads(row["card"]))
    model = xm.open_model(path, card, row["name"], device=device)
    return model.eval(), row

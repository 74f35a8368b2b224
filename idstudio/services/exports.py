"""Exports other tools read: ONNX / TorchScript models, embeddings (.npy + CSV), rank lists
(CSV) and a self-contained HTML report of the worst queries (crops inlined as base64)."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idstudio.core import evaluate as ev
from idstudio.core.errors import UserError
from idstudio.core.external_models import CARD_FILE, CARD_KEY, ModelCard
from idstudio.core.jobs import JobContext
from idstudio.core.model import EmbeddingModel
from idstudio.core.store import Project
from idstudio.services import evaluation

FORMATS = ("onnx", "torchscript", "embeddings", "ranks", "html")


def _prepare(out: Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out} is a folder; give a file name for the export.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the folder {out.parent}: {exc.strerror}.") from None
    return out


def _tmp(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def model_card(model: torch.nn.Module, kind: str, source: str = "") -> dict[str, Any]:
    """The card an idstudio export carries: its input size, no outside normalisation (it is
    inside the model), RGB in [0, 1], its output dimension; ``model add`` reads it."""
    spec = model.spec
    note = f"idstudio export of {spec.arch}" + (f" ({source})" if source else "") + ", ImageNet normalisation inside"
    return ModelCard(kind, spec.height, spec.width, "squash", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False, 1.0, spec.dim,
                     note=note).to_dict()


def export_onnx(model: torch.nn.Module, out: Path, opset: int = 17, source: str = "") -> Path:
    """ONNX with a dynamic batch axis; input 'images' float [0, 1] (n, 3, H, W), output
    'embeddings'; the model card in ``metadata_props`` (key ``idstudio.card``)."""
    out = _prepare(out)
    spec = model.spec
    dummy = torch.rand(2, 3, spec.height, spec.width)
    tmp = _tmp(out)
    model.eval()
    kwargs: dict[str, Any] = dict(input_names=["images"], output_names=["embeddings"],
                                  dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, opset_version=opset)
    # The TorchScript-based exporter: the torch.export one needs onnxscript, not a dependency.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo switch
            torch.onnx.export(model, (dummy,), str(tmp), **kwargs)
    import onnx

    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(model_card(model, "onnx", source))
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    return out


def export_torchscript(model: torch.nn.Module, out: Path, source: str = "") -> Path:
    """Traced TorchScript, same input and output as the ONNX export; the model card as the
    extra file ``idstudio_card.json``."""
    out = _prepare(out)
    spec = model.spec
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
        traced = torch.jit.trace(model, torch.rand(2, 3, spec.height, spec.width), check_trace=False)
    tmp = _tmp(out)
    traced.save(str(tmp), _extra_files={CARD_FILE: json.dumps(model_card(model, "torchscript", source))})
    os.replace(tmp, out)
    return out


def export_embeddings(project: Project, loaded: evaluation.LoadedModel, split: evaluation.Split, out: Path,
                      ctx: JobContext | None = None) -> tuple[Path, Path]:
    """``out`` (.npy float32, query rows then gallery rows) and ``out``.csv, row for row."""
    out = _prepare(out)
    if out.suffix != ".npy":
        out = out.with_suffix(".npy")
    qf, gf = evaluation.dataset_features(project, loaded, split, ctx=ctx)
    feats = np.concatenate([np.asarray(qf, np.float32), np.asarray(gf, np.float32)])
    tmp = _tmp(out)
    with open(tmp, "wb") as fh:
        np.save(fh, feats)
    os.replace(tmp, out)
    csv_path = out.with_suffix(".csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "instance_id", "identity", "camera", "split"])
        row = 0
        for name, table in (("query", split.query), ("gallery", split.gallery)):
            for i in range(len(table)):
                w.writerow([row, int(table.id[i]), int(table.identity[i]), table.camera[i] or "", name])
                row += 1
    return out, csv_path


def export_ranks(split: evaluation.Split, result: ev.EvalResult, out: Path) -> Path:
    """One CSV row per (query, rank): ids, score, identities, cameras, status, the query's AP."""
    out = _prepare(out)
    tmp = _tmp(out)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["query_id", "query_identity", "query_camera", "rank", "gallery_id", "gallery_identity",
                    "gallery_camera", "score", "status", "query_ap"])
        for qi in range(len(split.query)):
            ap = result.ap[qi]
            for r in range(result.ranked.shape[1]):
                g = int(result.ranked[qi, r])
                w.writerow([int(split.query.id[qi]), int(split.query.identity[qi]), split.query.camera[qi] or "", r + 1,
                            int(split.gallery.id[g]), int(split.gallery.identity[g]), split.gallery.camera[g] or "",
                            f"{result.scores[qi, r]:.6f}", ev.STATUS_NAMES[int(result.status[qi, r])],
                            "" if np.isnan(ap) else f"{ap:.6f}"])
    os.replace(tmp, out)
    return out


def _img(jpeg: bytes, label: str, css: str) -> str:
    data = base64.b64encode(jpeg).decode("ascii")
    return (f'<figure class="{css}"><img src="data:image/jpeg;base64,{data}" alt="{html.escape(label)}">'
            f"<figcaption>{html.escape(label)}</figcaption></figure>")


def export_html(project: Project, split: evaluation.Split, result: ev.EvalResult, loaded: evaluation.LoadedModel,
                out: Path, worst: int = 20, activation: bool = False) -> Path:
    """The ``worst`` used queries by AP, each with its top-k crops marked right / wrong / ignored;
    with ``activation``, each crop also with the model's activation map over it (where it looks)."""
    out = _prepare(out)
    used = np.nonzero(~np.isnan(result.ap))[0]
    order = used[np.argsort(result.ap[used], kind="stable")][:worst]
    s = result.summary()
    need = set(int(split.query.id[q]) for q in order)
    need.update(int(split.gallery.id[g]) for q in order for g in result.ranked[q])
    need_list = sorted(need)
    crops = dict(zip(need_list, project.crop_jpegs(need_list)))
    maps: dict[int, bytes] = {}
    if activation:
        overlays = evaluation.ActivationOverlays(project, loaded.ref_key, loaded)
        maps = dict(zip(need_list, overlays(need_list)))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>idstudio retrieval report</title><style>",
        "body{font-family:sans-serif;margin:1em;background:#fafafa}table{border-collapse:collapse}"
        "td{padding:2px 6px}.q{display:flex;align-items:flex-start;gap:6px;margin:8px 0;padding:6px;background:#fff;"
        "border:1px solid #ddd}figure{margin:0;text-align:center;font-size:10px}img{height:128px;display:block;"
        "border:4px solid transparent}.query img{border-color:#2563eb}.right img{border-color:#16a34a}"
        ".wrong img{border-color:#dc2626}.ignored img{border-color:#9ca3af;opacity:.55}"
        ".info{width:130px;font-size:12px}.pair{display:flex;flex-direction:column;gap:2px}",
        "</style></head><body>",
        f"<h1>Retrieval report: {html.escape(loaded.ref_key)} on {html.escape(split.dataset['name'])}</h1>",
        "<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
                            else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in s.items()) + "</table>",
        f"<p>The {len(order)} worst queries by average precision. Border: blue query, green right, red wrong, "
        "grey ignored by the protocol (same identity in the same camera, or junk).</p>",
    ]
    if activation:
        parts.append("<p>Beneath each crop: where the model looks (the mean of its last feature map's squared "
                     "activations, red strongest, as torchreid's visactmap draws it).</p>")

    def img(gid: int, label: str, css: str) -> str:
        if gid not in maps:
            return _img(crops[gid], label, css)
        return (f"<div class='pair'>{_img(crops[gid], label, css)}"
                f"{_img(maps[gid], 'activation', css + ' act')}</div>")
    for q in order:
        qid = int(split.query.id[q])
        parts.append("<div class='q'>")
        parts.append(f"<div class='info'>query {qid}<br>identity {int(split.query.identity[q])}<br>"
                     f"camera {html.escape(str(split.query.camera[q]))}<br>AP {result.ap[q]:.3f}<br>"
                     f"first hit rank {int(result.first_hit[q])}</div>")
        parts.append(img(qid, f"query {qid}", "query"))
        for r, g in enumerate(result.ranked[q]):
            gid = int(split.gallery.id[g])
            st = ev.STATUS_NAMES[int(result.status[q, r])]
            parts.append(img(gid, f"{r + 1}: id {int(split.gallery.identity[g])} {result.scores[q, r]:.3f}", st))
        parts.append("</div>")
    parts.append("</body></html>")
    tmp = _tmp(out)
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, out)
    return out


def export(project: Project, fmt: str, out: Path, checkpoint: str | Path | None = None, dataset: str | int | None = None,
           k: int = 10, worst: int = 20, ctx: JobContext | None = None, activation: bool = False) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    out = Path(out)
    if fmt in ("onnx", "torchscript"):
        loaded = evaluation.load(project, checkpoint)
        if loaded.ref_key == evaluation.COLORHIST:
            raise UserError("The colour-histogram baseline is not a network; export a run's checkpoint or 'init'.")
        if not isinstance(loaded.model, EmbeddingModel):
            raise UserError(f"{loaded.ref_key} is a model from elsewhere; use its own file, exports are for idstudio's "
                            "checkpoints.")
        path = (export_onnx if fmt == "onnx" else export_torchscript)(loaded.model, out, source=loaded.ref_key)
        return {"format": fmt, "path": str(path), "checkpoint": loaded.ref_key}
    if fmt == "embeddings":
        loaded = evaluation.load(project, checkpoint)
        split = evaluation.split_of(project, dataset)
        npy, csv_path = export_embeddings(project, loaded, split, out, ctx)
        return {"format": fmt, "path": str(npy), "csv": str(csv_path), "rows": len(split.query) + len(split.gallery),
                "checkpoint": loaded.ref_key}
    split, result, loaded = evaluation.evaluation_details(project, checkpoint, dataset, k=k, ctx=ctx)
    if fmt == "ranks":
        path = export_ranks(split, result, out)
        return {"format": fmt, "path": str(path), "rows": int(result.ranked.size), "checkpoint": loaded.ref_key}
    path = export_html(project, split, result, loaded, out, worst=worst, activation=activation)
    return {"format": fmt, "path": str(path), "queries": int(min(worst, result.n_queries)), "checkpoint": loaded.ref_key}

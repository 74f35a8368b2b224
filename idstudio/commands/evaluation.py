"""`idstudio embed | eval | search | export`: embeddings, metrics, retrieval and exports."""

from __future__ import annotations

import argparse
from pathlib import Path

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result

CHECKPOINT_HELP = ("run id, registered model name (`idstudio model add`), checkpoint file, 'init' (untrained start), or 'colorhist' (HSV histogram floor); "
                   "default: the latest run's best checkpoint")


def _open(args: argparse.Namespace):
    from idstudio.core.store import Project

    return Project.open(args.project)


def _common(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    add_project_argument(p)
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    if dataset:
        p.add_argument("--dataset", default=None, help="labelled dataset name or id (default: the first one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)


def register(subparsers) -> None:
    p = subparsers.add_parser("embed", help="embed a dataset (or all video instances) into the cache; optionally index it")
    _common(p)
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped crop")
    p.add_argument("--index", action="store_true", help="also build the faiss index of the gallery")
    p.add_argument("--index-kind", default="auto", choices=["auto", "exact", "ivf"], help="index type (default: by size)")
    p.add_argument("--rebuild", action="store_true", help="recompute embeddings and index")
    p.set_defaults(handler=cmd_embed)

    p = subparsers.add_parser("eval", help="Rank-1/5/10/20, mAP and mINP on a labelled dataset (Market-1501 protocol)")
    _common(p)
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (refused when it would not fit in memory)")
    p.add_argument("--centralize", type=int, default=0, metavar="K",
                   help="feature centralization (Pose2ID): average each feature with its tracklet or its mutual K "
                        "nearest neighbours before ranking (0 = off; combined with --rerank it comes first)")
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped crop")
    p.set_defaults(handler=cmd_eval)

    p = subparsers.add_parser("search", help="nearest gallery images of an instance or an image file")
    _common(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--instance", type=int, nargs="+", help="query instance id(s)")
    group.add_argument("--image", type=Path, nargs="+", help="query image file(s), embedded on the fly")
    p.add_argument("-k", type=int, default=10, help="hits per query (default: 10)")
    p.add_argument("--index-kind", default="auto", choices=["auto", "exact", "ivf"], help="index type (default: by size)")
    p.set_defaults(handler=cmd_search)

    p = subparsers.add_parser("export", help="export a model (onnx, torchscript), embeddings, rank lists or an HTML report")
    _common(p)
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "embeddings", "ranks", "html"])
    p.add_argument("--out", type=Path, required=True, help="output file")
    p.add_argument("-k", type=int, default=10, help="hits per query for ranks/html (default: 10)")
    p.add_argument("--worst", type=int, default=20, help="queries shown in the HTML report (default: 20)")
    p.add_argument("--activation", action="store_true",
                   help="html: show where the model looks under each crop (activation maps; idstudio models and ISR)")
    p.set_defaults(handler=cmd_export)


def cmd_embed(args: argparse.Namespace) -> int:
    from idstudio.services import evaluation

    ctx = ProgressBarContext(quiet=args.quiet)
    try:
        with _open(args) as project:
            out = evaluation.embed(project, args.checkpoint, args.dataset, flip=args.flip, index=args.index,
                                   kind=args.index_kind, rebuild=args.rebuild, ctx=ctx)
    finally:
        ctx.close()
    text = f"embedded {out['n']} instances ({out['scope']}, {out['checkpoint']}) in {out['seconds']} s -> {out['path']}"
    if "index_kind" in out:
        text += f"\nindex: {out['index_kind']}, {out['index_size']} vectors, recall {out['index_recall']:.3f}"
    print_result(args, out, text)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from idstudio.services import evaluation

    ctx = ProgressBarContext(quiet=args.quiet)
    try:
        with _open(args) as project:
            out = evaluation.evaluate(project, args.checkpoint, args.dataset, rerank=args.rerank, flip=args.flip, ctx=ctx,
                                      centralize=args.centralize)
    finally:
        ctx.close()
    how = [f"centralized k={out['centralize']}"] if out["centralize"] else []
    how += ["re-ranked"] if out["rerank"] else []
    how_text = f" ({', '.join(how)})" if how else ""
    text = (f"{out['dataset']} / {out['checkpoint']}{how_text}: "
            f"Rank-1 {out['rank1']:.1%}  Rank-5 {out['rank5']:.1%}  Rank-10 {out['rank10']:.1%}  "
            f"mAP {out['mAP']:.1%}  mINP {out['mINP']:.1%}  ({out['n_queries']} queries, {out['n_skipped']} skipped)")
    print_result(args, out, text)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from idstudio.services import evaluation

    ctx = ProgressBarContext(quiet=args.quiet)
    try:
        with _open(args) as project:
            results = evaluation.search(project, args.checkpoint, instances=args.instance, image=args.image, k=args.k,
                                        dataset=args.dataset, kind=args.index_kind, ctx=ctx)
    finally:
        ctx.close()
    lines = []
    for r in results:
        q = r["query"]
        lines.append(f"query {q.get('instance_id', q.get('image'))}"
                     + (f" (identity {q['identity']}, camera {q['camera']})" if q.get("identity") is not None else ""))
        for h in r["hits"]:
            mark = {"right": "+", "wrong": "x", "ignored": "."}.get(h["status"], " ")
            lines.append(f"  {h['rank']:3d} {mark} instance {h['instance_id']:<8d} score {h['score']:.4f}"
                         + (f"  identity {h['identity']} camera {h['camera']}" if h["identity"] is not None else ""))
    print_result(args, {"results": results}, "\n".join(lines))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from idstudio.services import exports

    ctx = ProgressBarContext(quiet=args.quiet)
    try:
        with _open(args) as project:
            out = exports.export(project, args.format, args.out, checkpoint=args.checkpoint, dataset=args.dataset,
                                 k=args.k, worst=args.worst, ctx=ctx, activation=args.activation)
    finally:
        ctx.close()
    print_result(args, out, f"wrote {out['path']}")
    return 0

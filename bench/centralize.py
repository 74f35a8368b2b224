"""Feature centralization (Pose2ID's neighbour part) with and without re-ranking, on every
labelled dataset of a project: mAP and Rank-1 for each k (0 = off).

    python bench/centralize.py PROJECT [--checkpoint REF ...] [--k 0,2,5] [--no-rerank]
    python bench/centralize.py [--real] [--work DIR]   # bench/real.py's project, ImageNet start

``--real`` builds (or reuses) bench/real.py's project and evaluates the start that training
begins from there (ImageNet MobileNetV2 with the colour part, saved once as a checkpoint
file). Embeddings are cached per checkpoint, so each extra k costs only the centralization
and the ranking. Prints one table per checkpoint; the last line is JSON
``{"checkpoints": {ref: {dataset: {"k": {"plain": {mAP, rank1}, "rerank": {...}}}}}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))  # bench/real.py builds the real project


def real_start(work: Path) -> tuple[Path, Path]:
    """bench/real.py's project and its default start saved as a checkpoint file."""
    import real

    from idstudio.core import config as cfgmod
    from idstudio.core.model import build_model, save_checkpoint
    from idstudio.services.train_config import TrainConfig

    pristine = real.build_project(work / "pristine", real.DEFAULT_DATA)
    root = work / "centralize"  # a copy: the embedding cache never goes into the pristine project
    if not (root / "idstudio.db").exists():
        import shutil

        shutil.copytree(pristine, root)
    path = work / "start-imagenet-colour.pt"
    if not path.is_file():
        cfg = cfgmod.build(TrainConfig, None, None)
        cfg.colour = "on"  # what `colour auto` chooses on this project (bench/real.py's table)
        model, message = build_model(cfg.spec(), weights=cfg.weights)
        print(message, file=sys.stderr)
        save_checkpoint(path, model)
    return root, path


def measure(root: Path, refs: list[str], ks: list[int], rerank: bool) -> dict:
    from idstudio.core.errors import UserError
    from idstudio.core.store import Project
    from idstudio.services import evaluation

    out: dict = {}
    with Project.open(root) as project:
        datasets = [d["name"] for d in project.datasets() if (d.get("n_query") or 0) and (d.get("n_gallery") or 0)]
        for ref in refs:
            table = out.setdefault(str(ref), {})
            for name in datasets:
                for k in ks:
                    cell = table.setdefault(name, {}).setdefault(str(k), {})
                    for rr in ([False, True] if rerank else [False]):
                        try:
                            r = evaluation.evaluate(project, ref, name, rerank=rr, centralize=k, store=False)
                        except UserError as exc:  # k larger than a tiny gallery
                            print(f"{ref} {name} k={k}: {exc}", file=sys.stderr)
                            continue
                        cell["rerank" if rr else "plain"] = {"mAP": round(r["mAP"], 4), "rank1": round(r["rank1"], 4),
                                                              "n_queries": r["n_queries"]}
    return out


def print_tables(results: dict, ks: list[int]) -> None:
    for ref, table in results.items():
        print(f"\n{ref}: mAP (Rank-1)")
        cols = [f"k={k}" for k in ks]
        print(f"{'set':30s}{'':8s}" + "".join(f"{c:>16s}" for c in cols))
        for name, cells in table.items():
            for mode in ("plain", "rerank"):
                if not any(mode in cells[str(k)] for k in ks):
                    continue
                row = "".join(
                    f"{cells[str(k)][mode]['mAP']:9.3f} ({cells[str(k)][mode]['rank1']:.2f})" if mode in cells[str(k)]
                    else f"{'-':>16s}" for k in ks)
                print(f"{name:30s}{mode:8s}{row}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path, nargs="?")
    ap.add_argument("--checkpoint", action="append", default=None, help="checkpoint reference(s) (default: latest)")
    ap.add_argument("--k", default="0,2,5", help="comma-separated k values (0 = off)")
    ap.add_argument("--no-rerank", action="store_true")
    ap.add_argument("--real", action="store_true", help="bench/real.py's project and its ImageNet start")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "idstudio-bench-real")
    args = ap.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    refs = args.checkpoint or [None]
    if args.real or args.project is None:  # no project: bench/real.py's (what `make bench` runs)
        from real import DEFAULT_DATA

        if not DEFAULT_DATA.is_dir():
            print(f"error: no real data at {DEFAULT_DATA}; give a PROJECT", file=sys.stderr)
            sys.exit(2)
        root, start = real_start(args.work)
        refs = args.checkpoint or [str(start)]
    else:
        root = args.project
    results = measure(root, refs, ks, not args.no_rerank)
    print_tables(results, ks)
    print(json.dumps({"project": str(root), "k": ks, "checkpoints": results}))


if __name__ == "__main__":
    main()

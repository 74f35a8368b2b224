"""Real-footage benchmark: train from real video without identities, evaluate on held-out sets.

The project is built from ``../shared/data/real`` as a user would build it:

* every ``mot-full`` sequence is imported with its gt boxes (``import-mot``), then split
  with ``idstudio split``: frames from 60 % of the sequence on become a cross-time
  query/gallery dataset (``<seq>-crosstime``) and are held out of training and mining;
* ``caviar/hallway.mpg`` (motion detector) and the ``MOT17-mini`` sequences add training
  video; their identities are never used by training (only to report mining precision);
* ``cuhk03-tracklets`` (two cameras, one tracklet per person in each, PRID2011 layout) is
  imported with ``import-tracklets`` as one site, ``cuhk03``: its identities are never used
  by training, only to report the link rounds' precision and recall;
* ``cuhk03-val`` and ``market-sample`` are real two-camera sets training never sees (other
  people than ``cuhk03-tracklets``).

``--set links=on|off`` compares training with and without cross-camera links (``auto``, the
default, turns them on here: the ``cuhk03`` site holds two cameras); ``--seeds 0,1,2`` runs
each seed and prints the mean and spread.

Then, on every dataset: the colour histogram, the untrained random model, the start
(ImageNet weights, no ReID training) and the model trained with the default settings for
``--minutes`` (10 by default: the issue's CPU budget). Prints one table; the last line is
JSON ``{"sets": {name: {"colorhist", "start", "untrained", "trained", "rank1": {...}}}, ...}``.

    python bench/real.py [--minutes 10] [--data ../shared/data/real] [--set key=value ...] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
SPLIT_SHARE = 0.6


def build_project(root: Path, data: Path, small: bool = False) -> Path:
    """The real-footage project (cached: built once per data folder)."""
    from idstudio.services import ingest
    from idstudio.services.splits import crosstime_split

    if (root / "idstudio.db").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    sequences = sorted(p for p in (data / "mot-full").iterdir() if (p / "gt" / "gt.txt").is_file())
    if small:
        sequences = [p for p in sequences if p.name != "MOT16-11-half"]
    for seq in sequences:
        result = ingest.import_mot(root, seq, boxes="gt")
        crosstime_split(root, result.get("name") or seq.name, from_share=SPLIT_SHARE)
    if not small:
        ingest.import_video(root, data / "caviar" / "hallway.mpg")
        for seq in sorted((data / "MOT17-mini").iterdir()):
            ingest.import_mot(root, seq, boxes="gt")
    if (data / "cuhk03-tracklets").is_dir():
        ingest.import_tracklets(root, data / "cuhk03-tracklets", site="cuhk03")
    ingest.import_market(root, data / "cuhk03-val")
    ingest.import_market(root, data / "market-sample")
    return root


def evaluate_all(project_root: Path, model) -> dict[str, dict[str, float]]:
    from idstudio.core.store import Project
    from idstudio.services.evaluation import evaluate_model

    out = {}
    with Project.open(project_root) as project:
        for d in project.datasets():
            r = evaluate_model(project, model.eval(), d["name"])
            out[d["name"]] = {"mAP": float(r["mAP"]), "rank1": float(r["rank1"])}
    return out


def parse_sets(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in pairs:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget (wall-clock)")
    ap.add_argument("--small", action="store_true", help="only the small sequences (the slow test's size)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "idstudio-bench-real")
    ap.add_argument("--set", action="append", default=[], help="a TrainConfig field for this run, key=value")
    ap.add_argument("--seeds", default="", help="comma-separated seeds: one run each, then the mean and spread")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"error: no real data at {args.data}; see ../shared/data/real/README.md", file=sys.stderr)
        sys.exit(2)

    # "-t": the project with the imported tracklets (a folder built before them is not reused)
    pristine = build_project(args.work / ("pristine-small-t" if args.small else "pristine-t"), args.data, args.small)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [None]
    runs = [run_once(args, pristine, seed) for seed in seeds]
    if len(runs) == 1:
        print(json.dumps(runs[0], default=str))
        return
    mean, spread = {}, {}
    for name in runs[0]["sets"]:
        mean[name] = {row: round(sum(r["sets"][name][row] for r in runs) / len(runs), 4) for row in ROWS}
        mean[name]["rank1"] = {"trained": round(sum(r["sets"][name]["rank1"]["trained"] for r in runs) / len(runs), 4)}
        values = [r["sets"][name]["trained"] for r in runs]
        spread[name] = round(max(values) - min(values), 4)
    print(f"mean of seeds {seeds}:")
    print_table(mean)
    print("trained spread (max - min): " + ", ".join(f"{k} {v:.3f}" for k, v in spread.items()))
    print(json.dumps({"seeds": seeds, "mean": mean, "spread": spread, "runs": runs}, default=str))


def run_once(args: argparse.Namespace, pristine: Path, seed: int | None) -> dict:
    """One training from a fresh copy of the pristine project, and the whole table."""
    from idstudio.core import config as cfgmod
    from idstudio.core.jobs import JobContext
    from idstudio.services.train_config import TrainConfig
    from idstudio.services.training import train

    run_root = args.work / "run"
    shutil.rmtree(run_root, ignore_errors=True)
    shutil.copytree(pristine, run_root)

    cfg = cfgmod.build(TrainConfig, None, None)
    cfg.eval_every = 0  # the budget goes to training; the table evaluates at the end
    for key, value in parse_sets(args.set).items():
        setattr(cfg, key, value)
    if seed is not None:
        cfg.seed = seed
    cfg.max_minutes = args.minutes
    started = time.perf_counter()

    def show(event):
        if event.get("type") == "log":
            print(f"[{time.perf_counter() - started:6.0f}s] {event.get('message')}", file=sys.stderr, flush=True)

    summary = train(run_root, cfg, JobContext(on_event=show))
    train_s = time.perf_counter() - started

    from idstudio.core.model import build_model
    from idstudio.core.store import Project
    from idstudio.services.evaluation import ColorHistogram
    from idstudio.services.models import load_model

    run_cfg = cfgmod.from_dict(TrainConfig, json.loads((run_root / "runs" / summary["run_id"] / "config.json").read_text()))
    with Project.open(run_root) as project:
        trained, _ = load_model(project, summary["run_id"])
    rows = {
        "colorhist": evaluate_all(run_root, ColorHistogram()),
        # the run's seed: the start row is the model this run started from (its projection is seeded)
        "untrained": evaluate_all(run_root, build_model(run_cfg.spec(colour=False), weights="none", seed=run_cfg.seed)[0]),
        "imagenet": evaluate_all(run_root, build_model(run_cfg.spec(colour=False), weights=run_cfg.weights, seed=run_cfg.seed)[0]),
        "start": evaluate_all(run_root, build_model(run_cfg.spec(), weights=run_cfg.weights, seed=run_cfg.seed)[0]),
        "trained": evaluate_all(run_root, trained),
    }
    sets = {}
    for name in rows["trained"]:
        entry: dict[str, object] = {row: round(rows[row][name]["mAP"], 4) for row in rows}
        entry["rank1"] = {row: round(rows[row][name]["rank1"], 4) for row in rows}
        sets[name] = entry
    print(f"seed {run_cfg.seed}:")
    print_table(sets)
    links = [{k: r.get(k) for k in ("epoch", "n_links", "keep", "precision", "recall")} for r in summary.get("link_rounds", [])]
    for r in links:
        print(f"  link round at epoch {r['epoch']}: {r['n_links']} links (keep {r['keep']:.2f}), precision "
              f"{r['precision'] if r['precision'] is None else round(r['precision'], 3)}, recall "
              f"{r['recall'] if r['recall'] is None else round(r['recall'], 3)}")
    return {"sets": sets, "start": summary_start(run_root, summary["run_id"]), "config": cfgmod.to_dict(run_cfg),
            "epochs_done": summary.get("epochs_done"), "train_seconds": round(train_s, 1),
            "rounds": [{k: r.get(k) for k in ("epoch", "n_pairs", "precision", "recall")} for r in summary["rounds"]],
            "link_rounds": links}


def summary_start(run_root: Path, run_id: str) -> str:
    return json.loads((run_root / "runs" / run_id / "config.json").read_text()).get("start", "")


ROWS = ("colorhist", "untrained", "imagenet", "start", "trained")


def print_table(sets: dict[str, dict]) -> None:
    print(f"{'set':28s}" + "".join(f"{row:>11s}" for row in ROWS) + "   trained Rank-1")
    for name, entry in sets.items():
        print(f"{name:28s}" + "".join(f"{entry[row]:11.3f}" for row in ROWS) + f"   {entry['rank1']['trained']:.3f}")


if __name__ == "__main__":
    main()

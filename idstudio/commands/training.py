"""CLI: ``idstudio mine``, ``idstudio train`` (also under torchrun), ``idstudio pairs export``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from idstudio.commands.common import ProgressBarContext, add_json_flag, add_project_argument, print_result
from idstudio.core import config


def register(sub: argparse._SubParsersAction) -> None:
    from idstudio.services.train_config import TrainConfig
    from idstudio.services.mining import MineConfig

    p = sub.add_parser("mine", help="mine positive pairs between frames with the current model (one round)")
    add_project_argument(p)
    p.add_argument("--config", type=Path, default=None, help="JSON or TOML file with mining settings")
    config.add_arguments(p, MineConfig)
    add_json_flag(p)
    p.set_defaults(handler=_mine)

    p = sub.add_parser("train", help="train an embedding from the project's videos (ISR); works under torchrun")
    add_project_argument(p)
    p.add_argument("--config", type=Path, default=None, help="JSON or TOML file with training settings")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue this run from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the config the run would use on this project (the "
                   "auto fields and the recipe resolved, as config.json will record them) and train nothing")
    config.add_arguments(p, TrainConfig)
    add_json_flag(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("pairs", help="mined pairs")
    pairs_sub = p.add_subparsers(dest="pairs_command", metavar="ACTION")
    e = pairs_sub.add_parser("export", help="write the latest round's pairs to a CSV file")
    add_project_argument(e)
    e.add_argument("--out", type=Path, required=True, help="CSV file to write")
    e.add_argument("--round", type=int, default=None, help="round id (default: the latest)")
    add_json_flag(e)
    e.set_defaults(handler=_export)


def _mine(args: argparse.Namespace) -> int:
    from idstudio.services.mining import MineConfig, mine

    cfg = config.build(MineConfig, args.config, args)
    ctx = ProgressBarContext()
    try:
        result = mine(args.project, cfg, ctx)
    finally:
        ctx.close()
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    human = (f"Round {result['round_id']}: {result['n_pairs']} pairs from {result['instances']} instances "
             f"(precision {fmt(result['precision'])}, recall {fmt(result['recall'])}, "
             f"largest component {fmt(result['largest_component_share'])}, gate {'on' if result['gate'] else 'off'}).")
    print_result(args, result, human)
    return 0


def _train(args: argparse.Namespace) -> int:
    from idstudio.services.train_config import TrainConfig
    from idstudio.services.training import train

    cfg = config.build(TrainConfig, args.config, args)
    if getattr(args, "dry_run", False):
        return _dry_run(args, cfg)
    # On resume only what was given (flags, config file) changes the run's saved settings.
    changes = config.given(TrainConfig, args.config, args) if args.resume else None
    rank = int(os.environ.get("RANK", "0"))
    ctx = ProgressBarContext(quiet=rank != 0)
    try:
        result = train(args.project, cfg, ctx, resume=args.resume, changes=changes)
    finally:
        ctx.close()
    if rank != 0:
        return 0
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    human = (f"Run {result['run_id']} {result['status']} after {result['epochs_done']} epochs in {result['seconds']} s: "
             f"mAP {fmt(result['mAP_start'])} -> {fmt(result['mAP_end'])}, last round precision {fmt(result['precision'])}.")
    print_result(args, result, human)
    return 0


def _dry_run(args: argparse.Namespace, cfg) -> int:
    from idstudio.core.store import Project
    from idstudio.services.recipe import resolve_train

    with Project.open(args.project) as project:
        resolved = resolve_train(project, cfg)  # the given fields as train() takes them: those off their defaults
    result = {"config": config.to_dict(resolved.config), **resolved.record()}
    lines = [f"Recipe: {resolved.recipe}."] + [f"  {name}: {value} ({resolved.reasons.get(name, '')})"
                                               for name, value in resolved.values.items()]
    print_result(args, result, "\n".join(lines))
    return 0


def _export(args: argparse.Namespace) -> int:
    from idstudio.services.mining import export_pairs

    result = export_pairs(args.project, args.out, args.round)
    print_result(args, result, f"Wrote {result['pairs']} pairs of round {result['round_id']} to {result['out']}.")
    return 0

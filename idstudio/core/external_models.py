"""Identity models from elsewhere, behind the interface of idstudio's own model.

Three kinds of file besides idstudio's checkpoints:

- ``onnx``: run by onnxruntime; one input ``(n, 3, H, W)`` float (a fixed batch size is
  run in chunks), one vector per image out;
- ``torchscript``: ``torch.jit.load`` (TorchScript code runs in its own interpreter, never
  Python's pickle);
- ``isr``: the ISR release (ICCV 2023, ``swin_base_patch4_window7_224.pth``): timm's
  ``swin_base_patch4_window7_224`` whose final-norm tokens are mean-pooled to 1024-d and
  projected by ``Linear(1024, 512)`` named ``feat``, read as weights only (no pickled
  code runs) with a key check that allows only timm's non-persistent buffers and
  the unused classifier head to differ.

Each is wrapped as an ``ExternalModel`` (an ``nn.Module``) that takes what idstudio's own
``EmbeddingModel`` takes — float RGB in [0, 1], ``(n, 3, H, W)`` at the card's input size —
applies the model card's colour order, value scale and normalisation, runs the model and
returns L2-normalised float32 ``(n, dim)``. ``model.spec`` is the ``ModelCard``: it has the
``height``, ``width`` and ``dim`` every caller of a model's spec reads, and a ``resize``
(``squash`` like idstudio's crops, or ``letterbox``: the crop scaled to fit and padded with
the ImageNet mean colour, which normalises to zero).

idstudio's own ONNX and TorchScript exports carry their card inside the file (ONNX
``metadata_props`` key ``idstudio.card``; TorchScript extra file ``idstudio_card.json``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idstudio.core.errors import UserError
from idstudio.core.model import IMAGENET_MEAN, IMAGENET_STD

KINDS = ("onnx", "torchscript", "isr", "idstudio")
RESIZES = ("squash", "letterbox")
CARD_KEY = "idstudio.card"  # ONNX metadata_props key
CARD_FILE = "idstudio_card.json"  # TorchScript extra file
DEFAULT_INPUT = (256, 128)  # torchreid's and fast-reid's usual person crop
ISR_ARCH = "swin_base_patch4_window7_224"
ISR_INPUT = (224, 224)
ISR_DIM = 512
PAD_RGB = tuple(int(round(m * 255)) for m in IMAGENET_MEAN)  # letterbox padding: zero after normalisation


@dataclass(frozen=True)
class ModelCard:
    """What a model expects and gives: ``x' = (x * scale - mean) / std`` on RGB (or BGR when
    ``bgr``) ``x`` in [0, 1] at ``height x width`` (resized by ``resize``); ``dim`` outputs."""

    kind: str
    height: int = DEFAULT_INPUT[0]
    width: int = DEFAULT_INPUT[1]
    resize: str = "squash"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    bgr: bool = False
    scale: float = 1.0
    dim: int = 0  # found by running the model once
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"Unknown model kind {self.kind!r}; idstudio reads {', '.join(KINDS)}.")
        if self.resize not in RESIZES:
            raise UserError(f"Unknown resize mode {self.resize!r}; choose squash or letterbox.")
        if int(self.height) < 8 or int(self.width) < 8:
            raise UserError(f"The input size {self.height}x{self.width} is too small; give HxW like 256x128.")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3:
                raise UserError(f"--{name} takes three numbers (R G B), not {len(value)}.")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if any(s == 0 for s in self.std):
            raise UserError("A normalisation std of 0 divides by zero; give three non-zero numbers to --std.")
        if not self.scale > 0:
            raise UserError("--scale must be positive: 1 for inputs in [0, 1], 255 for inputs in [0, 255].")
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))

    # what callers of an EmbeddingModel's spec read
    @property
    def arch(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def normalises(self) -> bool:
        return self.scale != 1.0 or any(self.mean) or any(s != 1 for s in self.std)

    def describe(self) -> dict[str, str]:
        """The card as short human lines, by field (for ``model list``, the GUI's card panel)."""
        if not self.normalises:
            norm = "none (inside the model)"
        else:
            fmt = lambda v: " ".join(f"{x:g}" for x in v)  # noqa: E731
            norm = f"mean {fmt(self.mean)}, std {fmt(self.std)}" + (f", on [0, {self.scale:g}]" if self.scale != 1 else "")
        return {"kind": self.kind, "input": f"{self.height}x{self.width} ({self.resize})",
                "colour": "BGR" if self.bgr else "RGB", "normalisation": norm, "output": f"{self.dim}-d, L2-normalised"}

    def decode_uint8(self, jpegs: Sequence[bytes]) -> torch.Tensor:
        """JPEG crops -> uint8 RGB (n, 3, H, W) by this card's resize mode."""
        if self.resize == "letterbox":
            return letterbox_uint8(jpegs, self.height, self.width)
        from idstudio.core.data import decode_crops_uint8

        return decode_crops_uint8(jpegs, self)


def letterbox_uint8(jpegs: Sequence[bytes], height: int, width: int) -> torch.Tensor:
    """Crops scaled to fit ``height x width`` with their aspect kept, centred, padded with
    the ImageNet mean colour; uint8 RGB (n, 3, H, W)."""
    out = np.empty((len(jpegs), height, width, 3), dtype=np.uint8)
    out[:] = PAD_RGB
    for i, jpeg in enumerate(jpegs):
        img = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            out[i] = 127
            continue
        h, w = img.shape[:2]
        s = min(height / h, width / w)
        nh, nw = max(1, min(height, round(h * s))), max(1, min(width, round(w * s)))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        y0, x0 = (height - nh) // 2, (width - nw) // 2
        out[i, y0:y0 + nh, x0:x0 + nw] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---- what kind of file ----------------------------------------------------------------------

def _not_a_model(path: Path, why: str = "") -> UserError:
    return UserError(f"{path.name} is not a model idstudio can read{why}; give an ONNX file, a TorchScript file, "
                     "an idstudio checkpoint or the ISR release's .pth.")


def detect_kind(path: Path) -> str:
    """``onnx``, ``torchscript``, ``isr`` or ``idstudio`` from the file's content."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; give the path of a model file.")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            raise _not_a_model(path, " (a damaged archive)") from None
        if any("/code/" in n for n in names) or any(n.endswith("/constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") for n in names):
            return _torch_file_kind(path)
        raise _not_a_model(path, " (an archive without a model)")
    head = path.read_bytes()[:4] if path.stat().st_size else b""
    if not head:
        raise _not_a_model(path, " (an empty file)")
    if head[:1] == b"\x08":  # ONNX's protobuf starts with field 1 (ir_version), a varint
        return "onnx"
    if head[:2] == b"\x80\x02":  # torch.save's legacy (non-zip) format: a pickle, read weights only
        return _torch_file_kind(path)
    raise _not_a_model(path)


def _load_weights(path: Path, mmap: bool = False) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise _not_a_model(path, f" ({type(exc).__name__} reading it with weights_only)") from None


def _torch_file_kind(path: Path) -> str:
    payload = _load_weights(path, mmap=True)
    if isinstance(payload, dict) and payload.get("format") == "idstudio-checkpoint-1":
        return "idstudio"
    if isr_state_dict(payload) is not None:
        return "isr"
    raise _not_a_model(path, " (a PyTorch file that is neither an idstudio checkpoint nor the ISR release layout)")


def read_embedded_card(path: Path, kind: str) -> dict[str, Any] | None:
    """The card idstudio's own exports carry inside the file, else None."""
    text = ""
    if kind == "onnx":
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001
            raise _not_a_model(path, " (an unreadable ONNX file)") from None
        text = next((p.value for p in model.metadata_props if p.key == CARD_KEY), "")
    elif kind == "torchscript":
        extra = {CARD_FILE: ""}
        try:
            _jit_load(path, extra)
        except Exception:  # noqa: BLE001
            raise _not_a_model(path, " (an unreadable TorchScript file)") from None
        text = extra[CARD_FILE]
        text = text.decode() if isinstance(text, bytes) else text
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def onnx_input_size(path: Path) -> tuple[int, int] | None:
    """The fixed (H, W) of an ONNX model's input, None when they are free."""
    backend = OnnxBackend(path)
    return backend.fixed_hw


def _jit_load(path: Path, extra: dict[str, Any] | None = None) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra or {})


# ---- backends ---------------------------------------------------------------------------------

class OnnxBackend:
    """An onnxruntime session that checks the model takes (n, 3, H, W) float images."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # no busy-waiting between runs: the decode threads that feed the next batch need the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001
            raise _not_a_model(self.path, " (onnxruntime cannot load it as ONNX)") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise UserError(f"ONNX model {self.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; idstudio "
                            "needs one image input (n, 3, H, W) and an embedding output.")
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise UserError(f"ONNX model {self.path.name} takes input {self._fmt(shape)}, not images (n, 3, H, W); "
                            "export it with a batch of 3-channel images as its input.")
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise UserError(f"ONNX model {self.path.name} takes {inp.type} input; idstudio feeds float images, "
                            "export it with a float input.")
        self.input_name = inp.name
        self.output_name = outputs[0].name
        self.dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.fixed_hw = (shape[2], shape[3]) if all(isinstance(s, int) and s > 0 for s in shape[2:]) else None

    @staticmethod
    def _fmt(shape: list) -> str:
        return "(" + ", ".join(str(s) if isinstance(s, int) else "n" if i == 0 else str(s) for i, s in enumerate(shape)) + ")"

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if self.batch is None or self.batch == len(x):
            return self._one(x)
        parts = []
        for s in range(0, len(x), self.batch):  # a fixed batch size: chunks, the last one padded
            chunk = x[s:s + self.batch]
            n = len(chunk)
            if n < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - n, axis=0)])
            parts.append(self._one(chunk)[:n])
        return np.concatenate(parts)

    def _one(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run([self.output_name], {self.input_name: x})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are long; one sentence
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX model {self.path.name} failed on a batch of shape {tuple(x.shape)} ({first}); "
                            "check its input size (--input HxW).") from None
        out = np.asarray(out)
        while out.ndim > 2 and out.shape[-1] == 1:  # (n, d, 1, 1) from a conv head
            out = out[..., 0]
        if out.ndim != 2 or out.shape[0] != len(x):
            raise UserError(f"ONNX model {self.path.name} returns shape {tuple(np.shape(out))} for {len(x)} images, "
                            "not one vector per image; export its embedding output.")
        return out


class ISRNet(nn.Module):
    """The ISR release's model: timm Swin-B, final-norm tokens mean-pooled (timm 0.4.12's
    ``forward_features``), ``feat = Linear(1024, 512)``."""

    def __init__(self, init: bool = True) -> None:
        super().__init__()
        import timm

        # init=False skips timm's weight init (4x faster to build) when every weight is loaded next
        self.model = timm.create_model(ISR_ARCH, pretrained=False, num_classes=0, **({} if init else {"weight_init": "skip"}))
        self.feat = nn.Linear(self.model.num_features, ISR_DIM)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (n, C, h, w): the final-norm tokens."""
        return self.model.forward_features(x).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(x)  # (n, 7, 7, 1024) NHWC after the final norm
        return self.feat(tokens.mean(dim=(1, 2)))


def isr_state_dict(payload: Any) -> dict[str, torch.Tensor] | None:
    """The state dict inside an ISR-release file ('state_dict', older copies 'model'), else None."""
    if not isinstance(payload, dict):
        return None
    for key in ("state_dict", "model"):
        sd = payload.get(key)
        if isinstance(sd, dict) and ("feat.weight" in sd or any(str(k).startswith("model.") for k in sd)):
            return sd
    return None


def _isr_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's keys in current timm's names: timm 0.4.12 downsampled at the end of a stage
    (``layers.i.downsample``), current timm at the start of the next (``layers.i+1``)."""
    import re

    old = "model.layers.0.downsample.reduction.weight" in sd
    out = {}
    for k, v in sd.items():
        if k.startswith("model."):
            name = k[len("model."):]
            if old:
                name = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", name)
            out["model." + name] = v
        else:
            out[k] = v
    return out


def load_isr(path: Path) -> ISRNet:
    """The ISR release from its file, every key checked (see the module docstring)."""
    path = Path(path)
    sd = isr_state_dict(_load_weights(path, mmap=True))
    if sd is None:
        raise UserError(f"{path.name} is not in the ISR release layout (a dict with 'state_dict' holding model.* and "
                        "feat.*); give the released swin_base_patch4_window7_224.pth.")
    net = ISRNet(init=False)
    sd = _isr_keys(sd)
    own = net.state_dict()
    ignorable = ("relative_position_index", "attn_mask")  # non-persistent buffers in current timm

    def allowed_extra(k: str) -> bool:
        return k.endswith(ignorable) or k.startswith("model.head.")  # the unused 1000-class head

    unexpected = sorted(k for k in sd if k not in own and not allowed_extra(k))
    missing = sorted(k for k in own if k not in sd)
    wrong = sorted(k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    if unexpected or missing or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)):
            if keys:
                shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                parts.append(f"{label}: {shown}")
        raise UserError(f"{path.name} does not match the ISR Swin-B layout ({'; '.join(parts)}); "
                        "give the released swin_base_patch4_window7_224.pth.")
    net.load_state_dict({k: sd[k] for k in own}, strict=True)
    return net.eval()


# ---- the wrapper -------------------------------------------------------------------------------

class ExternalModel(nn.Module):
    """An outside model with idstudio's model interface: float RGB [0, 1] (n, 3, H, W) at the
    card's size in, L2-normalised float32 (n, dim) out; ``spec`` is its ``ModelCard``."""

    def __init__(self, card: ModelCard, name: str, net: nn.Module | None = None, onnx: OnnxBackend | None = None):
        super().__init__()
        self.spec = card
        self.name = name
        self.net = net
        self.onnx = onnx
        self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def with_dim(self, dim: int) -> "ExternalModel":
        self.spec = dataclasses.replace(self.spec, dim=int(dim))
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        card = self.spec
        if card.bgr:
            x = x.flip(1)
        if card.scale != 1.0:
            x = x * card.scale
        if card.normalises:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own output for float [0, 1] RGB images (not normalised by idstudio)."""
        x = self.preprocess(x.float())
        if self.onnx is not None:
            return torch.from_numpy(self.onnx.run(x.detach().cpu().numpy())).float()
        out = self.net(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise UserError(f"Model {self.name} returns {type(out).__name__}, not a tensor; export a module that "
                            "returns the embedding.")
        while out.ndim > 2 and out.shape[-1] == 1:
            out = out[..., 0]
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise UserError(f"Model {self.name} returns shape {tuple(out.shape)} for {x.shape[0]} images, not one "
                            "vector per image; export its embedding output.")
        return out.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.raw(x)
        if not torch.isfinite(out).all():
            raise UserError(f"Model {self.name} returns NaN or infinite values; check its export and its input "
                            "normalisation (--mean, --std, --scale).")
        return F.normalize(out, dim=1).to(x.device)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor | None:
        """The last feature map (n, C, h, w) where the model exposes one (ISR), else None."""
        if isinstance(self.net, ISRNet):
            return self.net.feature_map(self.preprocess(x.float()))
        return None


def open_model(path: Path, card: ModelCard, name: str, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a file by its card (``dim`` may still be 0: see ``probe``)."""
    path = Path(path)
    if card.kind == "onnx":
        return ExternalModel(card, name, onnx=OnnxBackend(path)).eval()
    if card.kind == "torchscript":
        try:
            net = _jit_load(path)
        except Exception:  # noqa: BLE001
            raise _not_a_model(path, " (an unreadable TorchScript file)") from None
        return ExternalModel(card, name, net=net).to(device).eval()
    if card.kind == "isr":
        return ExternalModel(card, name, net=load_isr(path)).to(device).eval()
    from idstudio.core.model import load_checkpoint

    model, _ = load_checkpoint(path, device=device)
    return model.eval()


def isr_card(dim: int = ISR_DIM) -> ModelCard:
    return ModelCard("isr", ISR_INPUT[0], ISR_INPUT[1], "squash", IMAGENET_MEAN, IMAGENET_STD, False, 1.0, dim,
                     note="ISR release (ICCV 2023): timm Swin-B + feat Linear(1024, 512)")


@torch.inference_mode()
def probe(model: nn.Module, name: str, n: int = 2, seed: int = 0) -> int:
    """Run a model once on ``n`` person-sized random images: its output dimension. A shape
    or NaN problem is one sentence (raised by the model wrapper)."""
    spec = model.spec
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, spec.height, spec.width, generator=g)
    try:
        out = model(x)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model from elsewhere may fail any way
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"Model {name} fails on a batch of {n} images {spec.height}x{spec.width} ({first}); "
                        "check its input size (--input HxW).") from None
    if out.ndim != 2 or out.shape[0] != n:
        raise UserError(f"Model {name} returns shape {tuple(out.shape)} for {n} images, not one vector per image.")
    if not torch.isfinite(out).all():
        raise UserError(f"Model {name} returns NaN or infinite values; check its export and its input normalisation.")
    return int(out.shape[1])

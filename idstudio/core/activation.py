"""Where a model looks: activation maps over person crops, as torchreid's ``visactmap`` draws them.

The map of an image is the channel mean of its last feature map's squared activations
(L2-normalised over positions), upsampled to the crop, scaled to [0, 1] and blended over
the crop with OpenCV's JET colour map (red: strong). Only models idstudio can look inside
have one: its own (the backbone's last map) and the ISR release (the final-norm tokens);
an ONNX or TorchScript file, or the colour histogram, is refused in one sentence.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idstudio.core.errors import UserError

ALPHA = 0.45  # weight of the colour map in the blend


def feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last feature map (n, C, h, w) of float [0, 1] RGB images, or a UserError."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "backbone") and hasattr(inner, "mean") and hasattr(inner, "std"):  # EmbeddingModel
        return inner.backbone((x - inner.mean) / inner.std)
    look = getattr(inner, "feature_map", None)
    out = look(x) if callable(look) else None
    if out is None:
        kind = getattr(getattr(inner, "spec", None), "arch", type(inner).__name__)
        raise UserError(f"Activation maps need a model idstudio can look inside (its own checkpoints, init or the ISR "
                        f"release), not {kind}; choose one of those.")
    return out


@torch.inference_mode()
def activation_maps(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """(n, h, w) float32 maps in [0, 1], one per image, at the feature map's resolution."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    f = feature_map(model, x.to(device).float()).float()
    am = (f ** 2).mean(dim=1)  # (n, h, w)
    n, h, w = am.shape
    am = F.normalize(am.reshape(n, h * w), p=2, dim=1).reshape(n, h, w).cpu().numpy()
    lo = am.reshape(n, -1).min(axis=1)[:, None, None]
    hi = am.reshape(n, -1).max(axis=1)[:, None, None]
    return ((am - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def overlay(crop_bgr: np.ndarray, am: np.ndarray) -> np.ndarray:
    """A crop (BGR uint8) with its map upsampled to it and blended in JET colours."""
    h, w = crop_bgr.shape[:2]
    heat = cv2.resize(am, (w, h), interpolation=cv2.INTER_CUBIC)
    heat = np.uint8(np.clip(heat, 0, 1) * 255)
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    return cv2.addWeighted(crop_bgr, 1 - ALPHA, colour, ALPHA, 0)


def overlay_jpegs(model: nn.Module, jpegs: Sequence[bytes], quality: int = 90) -> list[bytes]:
    """Each crop with the model's activation map blended over it, as JPEG (the crop's own
    size and aspect; the model sees it as it does when embedding, by its spec)."""
    from idstudio.core.data import decode_crops_uint8

    if not len(jpegs):
        return []
    x = decode_crops_uint8(list(jpegs), model.spec).float().div_(255.0)
    maps = activation_maps(model, x)
    out = []
    for jpeg, am in zip(jpegs, maps):
        crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if crop is None:
            out.append(jpeg)
            continue
        out.append(cv2.imencode(".jpg", overlay(crop, am), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    return out

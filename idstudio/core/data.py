"""Crops to tensors: decoding (shared by training and embedding), pair datasets, augmentation."""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from idstudio.core.model import ModelSpec


def decode_crop(jpeg: bytes, height: int, width: int) -> np.ndarray:
    """One JPEG -> uint8 RGB (height, width, 3); an undecodable blob becomes a grey image."""
    img = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return np.full((height, width, 3), 127, dtype=np.uint8)
    if img.shape[0] != height or img.shape[1] != width:
        interp = cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_LINEAR
        img = cv2.resize(img, (width, height), interpolation=interp)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_crops_uint8(jpegs: Sequence[bytes], spec: ModelSpec) -> torch.Tensor:
    """JPEGs -> uint8 tensor (n, 3, H, W)."""
    if not len(jpegs):
        return torch.zeros((0, 3, spec.height, spec.width), dtype=torch.uint8)
    arr = np.stack([decode_crop(j, spec.height, spec.width) for j in jpegs])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def decode_crops(jpegs: Sequence[bytes], spec: ModelSpec) -> torch.Tensor:
    """JPEGs -> float tensor (n, 3, H, W) in [0, 1], resized to the spec's size, RGB."""
    return decode_crops_uint8(jpegs, spec).float().div_(255.0)


def train_transform(spec: ModelSpec, strength: float = 1.0):
    """Augmentation on uint8 (3, H, W) tensors -> float [0, 1]: mild random resized crop,
    flip, colour jitter, random erasing (torchvision.transforms.v2)."""
    from torchvision.transforms import v2

    s = float(strength)
    return v2.Compose([
        v2.RandomResizedCrop((spec.height, spec.width), scale=(1.0 - 0.25 * s, 1.0), ratio=(0.4, 0.6), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3 * s, contrast=0.3 * s, saturation=0.2 * s, hue=0.03 * s),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=0.4 * s, scale=(0.02, 0.2), value=0.0),
    ])


class CropStore:
    """Crops of a set of instances held in memory as uint8 (n, 3, H, W) (decoded once).

    At 128x64 a crop is 24 KiB: 100k instances are 2.4 GiB, so callers pass the ids they
    train on. Picklable (DataLoader workers under spawn/forkserver get a copy; shared
    memory for fork)."""

    def __init__(self, ids: np.ndarray, images: torch.Tensor):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.images = images
        order = np.argsort(self.ids)
        self._sorted = self.ids[order]
        self._order = order

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._sorted, ids)
        return self._order[np.clip(pos, 0, len(self._order) - 1)]

    @classmethod
    def load(cls, project: Any, ids: Sequence[int], spec: ModelSpec, batch: int = 1024) -> "CropStore":
        ids = np.asarray(ids, dtype=np.int64)
        chunks = [decode_crops_uint8(jpegs, spec) for _, jpegs in project.iter_crop_jpegs(list(ids), batch)]
        images = torch.cat(chunks) if chunks else torch.zeros((0, 3, spec.height, spec.width), dtype=torch.uint8)
        return cls(ids, images)


class PairDataset(Dataset):
    """Item i -> (view of a, view of b, weight, index) for the i-th positive pair.

    ``a_idx``/``b_idx`` index rows of the crop store; both views are augmented
    independently (near frames give near-duplicates: augmentation matters)."""

    def __init__(self, crops: CropStore, a_idx: np.ndarray, b_idx: np.ndarray, weights: np.ndarray,
                 transform=None):
        self.crops = crops
        self.a_idx = np.asarray(a_idx, dtype=np.int64)
        self.b_idx = np.asarray(b_idx, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.a_idx)

    def _view(self, row: int) -> torch.Tensor:
        img = self.crops.images[row]
        return self.transform(img) if self.transform is not None else img.float().div(255.0)

    def __getitem__(self, i: int):
        return self._view(self.a_idx[i]), self._view(self.b_idx[i]), torch.tensor(self.weights[i]), int(i)

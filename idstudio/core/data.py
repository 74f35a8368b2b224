"""Crops to tensors: decoding (shared by training and embedding), streaming crop reads, pair
datasets, augmentation."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import v2

from idstudio.core.errors import UserError
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
    if getattr(spec, "resize", "squash") != "squash":  # a model card that letterboxes (core/external_models.py)
        return spec.decode_uint8(jpegs)
    if not len(jpegs):
        return torch.zeros((0, 3, spec.height, spec.width), dtype=torch.uint8)
    arr = np.stack([decode_crop(j, spec.height, spec.width) for j in jpegs])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def decode_crops(jpegs: Sequence[bytes], spec: ModelSpec) -> torch.Tensor:
    """JPEGs -> float tensor (n, 3, H, W) in [0, 1], resized to the spec's size, RGB."""
    return decode_crops_uint8(jpegs, spec).float().div_(255.0)


def default_workers() -> int:
    """Decode threads: all but one core (the forward pass), at least 2, at most 8."""
    return max(2, min(8, (os.cpu_count() or 2) - 1))


# Measured on an H200 with 16 cores (bench/gpu.sh): embedding stored crops, nvJPEG through
# torchvision reached 7,300 images/s, the 8 CPU decode threads 10,600 (about 2,400 a thread).
# So the GPU decodes only where fewer than 4 threads would (at most 4 cores).
GPU_DECODE_BELOW_THREADS = 4


def gpu_decode_available(device: Any, spec: Any) -> bool:
    """JPEGs are decoded on this device: a CUDA device, a squash-resizing spec, and fewer
    CPU decode threads than beat torchvision's GPU decoder. ``IDSTUDIO_GPU_DECODE=1`` always
    decodes on the GPU, ``=0`` never."""
    if device is None or torch.device(device).type != "cuda" or getattr(spec, "resize", "squash") != "squash":
        return False
    choice = os.environ.get("IDSTUDIO_GPU_DECODE", "auto")
    if choice in ("0", "1"):
        return choice == "1"
    return default_workers() < GPU_DECODE_BELOW_THREADS


def decode_crops_gpu(jpegs: Sequence[bytes], spec: ModelSpec, device: Any) -> torch.Tensor:
    """JPEGs -> uint8 (n, 3, H, W) on a CUDA device, decoded there (``torchvision.io.decode_jpeg``)
    and resized with antialiasing; a batch the GPU decoder refuses is decoded on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not len(jpegs):
        return torch.zeros((0, 3, spec.height, spec.width), dtype=torch.uint8, device=device)
    try:
        images = decode_jpeg([torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs],
                             mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return decode_crops_uint8(jpegs, spec).to(device)
    out = torch.empty((len(images), 3, spec.height, spec.width), dtype=torch.uint8, device=device)
    for k, img in enumerate(images):
        if img.shape[1] == spec.height and img.shape[2] == spec.width:
            out[k] = img
        else:
            out[k] = F.interpolate(img[None].float(), size=(spec.height, spec.width), mode="bilinear",
                                   antialias=True, align_corners=False)[0].round_().clamp_(0, 255).to(torch.uint8)
    return out


def train_transform(strength: float = 1.0) -> v2.Transform:
    """Augmentation of a batch of uint8 crops (n, 3, H, W) -> float [0, 1] on the batch's
    device; every crop gets its own camera-like change (any crop size)."""
    steps: list[v2.Transform] = [v2.ToDtype(torch.float32, scale=True)]
    if strength > 0:
        steps.append(CameraJitter(strength))
    return v2.Compose(steps)


# Background mixing (the trainer's --background-mix). A pseudo-tracklet comes from one camera,
# so its members share their surroundings and the contrastive loss rewards matching them; across
# cameras backgrounds differ, and a model that learnt them loses there. So a share of the crops
# keeps its centre (the person) and takes its surroundings from a crop of another video.
# Measured on real footage (bench/real.py, seed 0): the learned part alone on the two-camera
# market-sample fell from the ImageNet start's 0.475 to 0.342 without it, only to 0.468 with
# it (0.432 with donors from any video: a donor of the same video often shares the scene).
# The two views of a pair are drawn apart (at a half, one view of each): drawn on their own, a
# quarter of the pairs kept their shared surroundings; apart, three seeds' worst miss of the
# start on the smallest sets fell from 0.010 to 0.003 mAP and the means moved under 0.005.
# The mask: 1 in the middle, 0.5 on an ellipse of half-axes 30 % of the width and 55 % of the
# height (a person fills the box's height down its middle), 0 from 1.5 times that out.
MIX_HALF_WIDTH, MIX_HALF_HEIGHT = 0.30, 0.55


def centre_mask(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(h, w) in [0, 1]: 1 at the centre of a crop, falling to 0 towards its sides."""
    ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h - 0.5
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w - 0.5
    r = ((xs[None, :] / MIX_HALF_WIDTH) ** 2 + (ys[:, None] / MIX_HALF_HEIGHT) ** 2).sqrt()
    return (1.5 - r).clamp(0, 1)


def background_donors(video: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mix, donor) for a batch of pairs, a views then b views (crop i pairs with i + n/2),
    whose crops come from ``video``: ``share`` of the crops drawn for mixing, each with a
    random donor from another video (another crop where the batch has one video only).
    The two views of a pair are drawn apart: both mixed only where the share is over a
    half, neither only where it is under, so as many pairs as the share allows differ in
    their surroundings (at 0.5, exactly one view of every pair). Drawn on the CPU from
    torch's global generator: seeded, saved with checkpoints, so a resumed run repeats them."""
    n = len(video)
    if n % 2:
        raise ValueError("background_donors needs the a views and the b views of the same pairs")
    u = torch.rand(n // 2)
    mix = torch.cat([u < share, u >= 1 - share])
    score = torch.rand(n, n) + (video[:, None] != video[None, :]).float()  # another video's crops first
    score.fill_diagonal_(-1.0)
    return mix, score.argmax(1)


def background_mix(x: torch.Tensor, mix: torch.Tensor, donor: torch.Tensor) -> torch.Tensor:
    """``x`` with crop i's surroundings taken from crop ``donor[i]`` where ``mix[i]``."""
    n, _, h, w = x.shape
    keep = 1 - mix.float().view(n, 1, 1, 1) * (1 - centre_mask(h, w, x.device).view(1, 1, h, w))
    return x * keep + x[donor] * (1 - keep)


class CameraJitter(v2.Transform):
    """Per-crop camera changes on a float batch (n, 3, H, W) in [0, 1], batched on its device.

    Mined pairs come from one camera, but the embedding is judged across cameras, so the two
    views of a pair must differ the way cameras do: colour cast (a gain per channel),
    exposure, gamma, a lighting gradient, blur, sensor noise, framing (scale, shift, flip),
    sometimes no colour, and occlusion (random erasing). Measured on the synthetic world:
    with torchvision's usual mild colour jitter, training lowered the held-out cross-camera
    mAP; with these changes it rose well above the untrained model's."""

    def __init__(self, strength: float = 1.0):
        super().__init__()
        self.strength = float(strength)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        # Drawn on the CPU from torch's global generator: seeded, and saved with checkpoints.
        x = flat_inputs[0]
        n, s = (x.shape[0] if x.ndim == 4 else 1), self.strength
        p = min(s, 1.0)  # probabilities saturate; magnitudes scale on

        def signed(*shape: int) -> torch.Tensor:
            return torch.rand(*shape) * 2 - 1

        return {
            "scale": 1 + (torch.rand(n) * 0.25 - 0.15) * s,
            "shift": signed(n, 2) * torch.tensor([0.08, 0.06]) * s,
            "flip": torch.where(torch.rand(n) < 0.5, -1.0, 1.0),
            "blur": (torch.rand(n) < 0.5 * p).float() * torch.rand(n),
            "gain": torch.exp(torch.randn(n, 3) * 0.35 * s),
            "exposure": torch.exp(signed(n) * 0.35 * s),
            "gamma": torch.exp(signed(n) * 0.5 * s),
            "slope": signed(n, 2) * 0.6 * s,
            "grey": (torch.rand(n) < 0.2 * p).float(),
            "noise": torch.rand(n) * 0.03 * s,
            "erase": torch.rand(n) < 0.4 * p,
            "erase_box": torch.rand(n, 4),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        single = inpt.ndim == 3
        x = inpt[None] if single else inpt
        x = _camera_jitter(x.float(), {k: v.to(x.device) for k, v in params.items()})
        return x[0] if single else x


def _camera_jitter(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    n, _, h, w = x.shape
    col = (n, 1, 1, 1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = p["scale"] * p["flip"]
    theta[:, 1, 1] = p["scale"]
    theta[:, :, 2] = p["shift"]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    k = torch.tensor([0.25, 0.5, 0.25], device=x.device)
    blurred = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), k.view(1, 1, 1, 3).repeat(3, 1, 1, 1), groups=3)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 1, 1), mode="replicate"), k.view(1, 1, 3, 1).repeat(3, 1, 1, 1), groups=3)
    x = x + (blurred - x) * p["blur"].view(col)
    ys = torch.linspace(-0.5, 0.5, h, device=x.device).view(1, 1, h, 1)
    xs = torch.linspace(-0.5, 0.5, w, device=x.device).view(1, 1, 1, w)
    light = 1 + p["slope"][:, 0].view(col) * ys + p["slope"][:, 1].view(col) * xs
    x = x.clamp(min=1e-4) ** p["gamma"].view(col) * p["gain"].view(n, 3, 1, 1) * p["exposure"].view(col) * light
    grey = p["grey"].view(col)
    x = x * (1 - grey) + x.mean(1, keepdim=True) * grey
    x = (x + torch.randn_like(x) * p["noise"].view(col)).clamp(0, 1)
    # random erasing: one box of 10-40 % of the height and 20-60 % of the width
    eh, ew = (p["erase_box"][:, 0] * 0.3 + 0.1) * h, (p["erase_box"][:, 1] * 0.4 + 0.2) * w
    y0, x0 = p["erase_box"][:, 2] * (h - eh), p["erase_box"][:, 3] * (w - ew)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    box = ((rows >= y0.view(n, 1, 1)) & (rows < (y0 + eh).view(n, 1, 1)) & (cols >= x0.view(n, 1, 1))
           & (cols < (x0 + ew).view(n, 1, 1)) & p["erase"].view(n, 1, 1))
    return x.masked_fill(box.unsqueeze(1), 0.0)


class CropReader:
    """Decoded crops read from a project's ``crops.db`` as they are needed.

    Each process and thread opens its own read-only SQLite connection on first use (so a
    DataLoader worker, which gets a pickled copy, reads in parallel with the others), and
    decoded crops sit in a bounded LRU cache (``cache_mb`` per process). Memory depends on
    the batch and the cache, never on the project size."""

    def __init__(self, crops_db: Path | str, spec: ModelSpec, cache_mb: float = 64.0):
        self.path = Path(crops_db)
        self.spec = spec
        self.cache_mb = float(cache_mb)
        self._init_local()

    def _init_local(self) -> None:
        self._local = threading.local()
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        crop_bytes = 3 * self.spec.height * self.spec.width
        self._capacity = int(self.cache_mb * 2 ** 20 // max(crop_bytes, 1))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "spec": self.spec, "cache_mb": self.cache_mb}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def crop_jpegs(self, ids: Sequence[int]) -> list[bytes]:
        """JPEG bytes in the given order (one query per 900 ids), like ``Project.crop_jpegs``."""
        ids = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        conn = self._conn()
        for start in range(0, len(ids), 900):  # SQLite's variable limit
            chunk = ids[start:start + 900]
            found.update(conn.execute(
                f"SELECT instance_id, jpeg FROM crops WHERE instance_id IN ({','.join('?' * len(chunk))})", chunk))
        missing = [i for i in ids if i not in found]
        if missing:
            raise UserError(f"The crops of {len(missing)} instances are missing from {self.path.name}; re-import their video.")
        return [found[i] for i in ids]

    def decode(self, ids: Sequence[int]) -> torch.Tensor:
        """uint8 (n, 3, H, W) crops of the given instances, through the cache."""
        ids = [int(i) for i in ids]
        out: list[torch.Tensor | None] = [None] * len(ids)
        with self._lock:
            for k, i in enumerate(ids):
                hit = self._cache.get(i)
                if hit is not None:
                    self._cache.move_to_end(i)
                    out[k] = hit
        todo = [k for k, v in enumerate(out) if v is None]
        if todo:
            fresh = decode_crops_uint8(self.crop_jpegs([ids[k] for k in todo]), self.spec)
            with self._lock:
                for k, img in zip(todo, fresh):
                    out[k] = img
                    if self._capacity:
                        self._cache[ids[k]] = img.clone()  # not a view that would keep the whole batch alive
                while len(self._cache) > self._capacity:
                    self._cache.popitem(last=False)
        if not ids:
            return torch.zeros((0, 3, self.spec.height, self.spec.width), dtype=torch.uint8)
        return torch.stack(out)  # type: ignore[arg-type]


class CropStore:
    """The crops of a set of instances (``ids``), by row: ``get(rows)`` -> uint8 (n, 3, H, W).

    Reads the decoded-crop cache (a ``core.crop_cache.CachedCrops``; ``crop_cache.crop_store``
    chooses it where it is up to date), streams from ``crops.db`` through a ``CropReader``
    (``CropStore.load``), or holds given uint8 images (tests, small sets). Picklable:
    DataLoader workers read on their own."""

    def __init__(self, ids: np.ndarray, images: Any):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.source = images
        order = np.argsort(self.ids)
        self._sorted = self.ids[order]
        self._order = order

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._sorted, ids)
        return self._order[np.clip(pos, 0, len(self._order) - 1)]

    @property
    def cached(self) -> bool:
        """Read from the decoded-crop cache (a gather, no decoding)."""
        return hasattr(self.source, "read")

    def get(self, rows: Sequence[int] | np.ndarray, pin: bool = False) -> torch.Tensor:
        """uint8 (n, 3, H, W); ``pin``: in pinned memory (where the cache gathers into it)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.cached:
            return self.source.read(rows, pin=pin)
        if isinstance(self.source, CropReader):
            return self.source.decode(self.ids[rows].tolist())
        return self.source[torch.from_numpy(rows)]

    def pairs_batch(self, a_rows: np.ndarray, b_rows: np.ndarray, weights: np.ndarray, items: np.ndarray,
                    pin: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training batch gathered at once: (the a views then the b views, uint8 (2n, 3, H, W);
        weights; pair indices), the values a DataLoader collates from ``CropPairs``."""
        images = self.get(np.concatenate([a_rows, b_rows]), pin=pin)
        return images, torch.as_tensor(np.asarray(weights, np.float32)), torch.as_tensor(np.asarray(items, np.int64))

    @classmethod
    def load(cls, project: Any, ids: Sequence[int], spec: ModelSpec, cache_mb: float = 64.0) -> "CropStore":
        """Crops of ``ids`` read from the project's crop file as they are needed."""
        from idstudio.core.store import CROPS_NAME

        return cls(np.asarray(ids, dtype=np.int64), CropReader(project.root / CROPS_NAME, spec, cache_mb))


class PairDataset(Dataset):
    """Item i -> (crop a, crop b, weight, index) for the i-th positive pair, crops as uint8
    (3, H, W): the trainer augments whole batches on its device (``train_transform``), each
    view independently (near frames give near-duplicates: augmentation matters).

    ``a_idx``/``b_idx`` index rows of the crop store. A batch is fetched and decoded at once
    (``__getitems__``: one query for both views)."""

    def __init__(self, crops: CropStore, a_idx: np.ndarray, b_idx: np.ndarray, weights: np.ndarray):
        self.crops = crops
        self.a_idx = np.asarray(a_idx, dtype=np.int64)
        self.b_idx = np.asarray(b_idx, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.a_idx)

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]

    def __getitems__(self, items: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        return CropPairs(self.crops).__getitems__(self.rows(items))

    def rows(self, items: Sequence[int]) -> list[tuple[int, int, float, int]]:
        """The pairs ``items`` as (a row, b row, weight, index): what ``CropPairs`` reads."""
        items = np.asarray(items, dtype=np.int64)
        return list(zip(self.a_idx[items].tolist(), self.b_idx[items].tolist(), self.weights[items].tolist(),
                        items.tolist()))


class CropPairs(Dataset):
    """Pairs named by their crop-store rows: a batch of (a row, b row, weight, index) ->
    [(crop a, crop b, weight, index)], fetched and decoded at once. It holds nothing but the
    crop store, so one DataLoader serves a whole run while the pairs change from epoch to
    epoch (``EpochBatches``): its worker processes and their warm crop caches live on."""

    def __init__(self, crops: CropStore):
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, item: tuple[int, int, float, int]):
        return self.__getitems__([item])[0]

    def __getitems__(self, items: Sequence[tuple[int, int, float, int]]):
        n = len(items)
        images = self.crops.get(np.array([it[0] for it in items] + [it[1] for it in items], dtype=np.int64))
        return [(images[k], images[n + k], torch.tensor(w, dtype=torch.float32), int(i))
                for k, (_, _, w, i) in enumerate(items)]


class EpochBatches:
    """A DataLoader's batch sampler whose batches are replaced before each epoch."""

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

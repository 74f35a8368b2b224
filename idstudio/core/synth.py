"""A seeded multi-camera pedestrian world with ground truth (numpy + OpenCV, no Qt).

``generate(out_dir, SynthConfig())`` writes, per camera, an MP4 video, a MOT ``gt.txt``
(``frame,id,x,y,w,h,1,1,visibility``; 1-based frames; only boxes at least partly visible,
clipped to the frame) and a noisy ``det.txt`` (``frame,-1,x,y,w,h,score,-1,-1,-1``: jitter,
misses, false positives on the background), plus a held-out cross-camera query/gallery split
in Market-1501 naming (``market/query``, ``market/bounding_box_test``) and a ``world.json``
manifest that ``World.load(root)`` reads back.

Layout::

    root/world.json
    root/cam1/cam1.mp4, root/cam1/gt/gt.txt, root/cam1/det/det.txt, root/cam1/seqinfo.ini
    root/market/query/PPPP_cCs1_FFFFFF_NN.jpg, root/market/bounding_box_test/...

People (``core.people``) are drawn side-on with a walk cycle (swinging legs and arms,
bobbing), from a small shared palette so colour alone is weak: what separates identities is
the combination of top pattern (solid, stripes, two-tone, block, logo), sleeves,
trousers/shorts/skirt, hair colour and length, bags, body height/width/leg length and skin
tone. Cameras differ in background (textured street, park, hall), colour cast, lighting
gradient, gamma, noise, blur and person scale. The evaluation identities never walk in the
videos (an honest held-out split) but are rendered by the same renderer in the same cameras.

Determinism: the same seed gives byte-identical ``gt.txt``/``det.txt``/``world.json`` and the
same frames (the MP4 encoder itself is deterministic for identical frames).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from idstudio.core.people import draw_person, random_appearance

# --------------------------------------------------------------------------------------
# configuration and manifest


@dataclass
class SynthConfig:
    """Size and difficulty of a synthetic world. ``SynthConfig()`` is the demo default."""

    seed: int = 0
    n_cameras: int = 4
    n_frames: int = 360
    width: int = 384
    height: int = 288
    fps: float = 15.0
    n_video_ids: int = 40
    n_eval_ids: int = 40
    cams_per_id: tuple[int, int] = (2, 4)  # each video identity crosses this many cameras
    passes_per_cam: int = 1  # extra crossings of the same camera by an identity (0..n)
    views_per_cam: tuple[int, int] = (2, 4)  # eval views per identity per camera
    n_distractors: int = 60  # 0000_ crops (background and body parts)
    n_junk: int = 12  # -1_ crops
    person_height: tuple[int, int] = (60, 140)
    det_miss_rate: float = 0.07
    det_fp_per_frame: float = 0.25
    det_jitter: float = 0.05
    write_train: bool = False  # also write market/bounding_box_train from the video ids
    jpeg_quality: int = 90

    @classmethod
    def small(cls, seed: int = 0) -> "SynthConfig":
        """A world for tests: 2 cameras x 80 frames, 10 + 10 identities; a few seconds."""
        return cls(
            seed=seed,
            n_cameras=2,
            n_frames=80,
            n_video_ids=10,
            n_eval_ids=10,
            cams_per_id=(2, 2),
            passes_per_cam=0,
            views_per_cam=(2, 3),
            n_distractors=8,
            n_junk=3,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SynthConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**kw)


@dataclass
class Camera:
    name: str
    video: Path
    gt: Path
    det: Path
    width: int
    height: int
    fps: float
    n_frames: int


@dataclass
class World:
    root: Path
    config: SynthConfig
    cameras: list[Camera]
    market_dir: Path
    video_ids: list[int] = field(default_factory=list)
    eval_ids: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, root: str | Path) -> "World":
        root = Path(root)
        data = json.loads((root / "world.json").read_text(encoding="utf-8"))
        cams = [
            Camera(
                name=c["name"],
                video=root / c["video"],
                gt=root / c["gt"],
                det=root / c["det"],
                width=int(c["width"]),
                height=int(c["height"]),
                fps=float(c["fps"]),
                n_frames=int(c["n_frames"]),
            )
            for c in data["cameras"]
        ]
        return cls(
            root=root,
            config=SynthConfig.from_dict(data["config"]),
            cameras=cams,
            market_dir=root / data["market_dir"],
            video_ids=list(data.get("video_ids", [])),
            eval_ids=list(data.get("eval_ids", [])),
        )


# --------------------------------------------------------------------------------------
# cameras


@dataclass
class _CamModel:
    index: int
    width: int
    height: int
    background: np.ndarray
    gain: np.ndarray  # (h, w, 3) float32: colour cast x lighting gradient
    lut: np.ndarray  # (256, 1, 3) uint8 gamma/contrast per channel
    blur: float
    noise: list[np.ndarray]
    horizon: float  # foot y of the farthest walkable row
    near: float  # foot y of the nearest walkable row
    h_far: float
    h_near: float

    def person_height(self, foot_y: float) -> float:
        t = (foot_y - self.horizon) / max(1.0, self.near - self.horizon)
        return self.h_far + t * (self.h_near - self.h_far)

    def finish(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = frame.astype(np.float32) * self.gain
        out = cv2.LUT(np.clip(f, 0, 255).astype(np.uint8), self.lut)
        if self.blur > 0.3:
            out = cv2.GaussianBlur(out, (0, 0), self.blur)
        n = self.noise[int(rng.integers(len(self.noise)))]
        dy, dx = int(rng.integers(8)), int(rng.integers(8))
        n = n[dy:dy + self.height, dx:dx + self.width]
        return np.clip(out.astype(np.int16) + n, 0, 255).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    small = rng.random((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _make_background(rng: np.random.Generator, w: int, h: int, horizon: int, style: str) -> np.ndarray:
    img = np.zeros((h, w, 3), np.float32)
    if style == "street":
        wall = np.array(rng.uniform([60, 80, 120], [140, 160, 200]), np.float32)  # brick, sandstone
        ground = np.array(rng.uniform([80, 80, 80], [150, 150, 150]), np.float32)
    elif style == "park":
        wall = np.array(rng.uniform([60, 110, 60], [110, 170, 120]), np.float32)
        ground = np.array(rng.uniform([90, 120, 130], [140, 170, 180]), np.float32)
    else:  # hall
        wall = np.array(rng.uniform([150, 150, 150], [220, 220, 210]), np.float32)
        ground = np.array(rng.uniform([60, 80, 100], [120, 140, 160]), np.float32)
    img[:horizon] = wall
    img[horizon:] = ground
    tex = _smooth_noise(rng, h, w, 24)[..., None] * 50 - 25 + _smooth_noise(rng, h, w, 4)[..., None] * 24 - 12
    img += tex
    if style == "street":  # windows and doors on a facade
        ww, wh = int(rng.integers(18, 30)), int(rng.integers(20, 34))
        gx, gy = ww + int(rng.integers(10, 22)), wh + int(rng.integers(10, 20))
        win = np.array(rng.uniform(30, 90, 3), np.float32)
        for y in range(8, horizon - wh - 10, gy):
            for x in range(int(rng.integers(0, gx)), w - ww, gx):
                c = win + rng.uniform(-15, 25)
                cv2.rectangle(img, (x, y), (x + ww, y + wh), tuple(float(v) for v in c), -1)
                cv2.rectangle(img, (x, y), (x + ww, y + wh), tuple(float(v) for v in wall * 0.6), 1)
        # kerb and paving lines in perspective
        cv2.line(img, (0, horizon), (w, horizon), tuple(float(v) for v in ground * 0.6), 3)
        for i in range(-6, 12):
            x0 = w / 2 + i * 40
            cv2.line(img, (int(w / 2 + i * 16), horizon), (int(x0 + (x0 - w / 2) * 1.6), h),
                     tuple(float(v) for v in ground * 0.8), 1, cv2.LINE_AA)
        y = horizon + 6
        step = 6
        while y < h:
            cv2.line(img, (0, y), (w, y), tuple(float(v) for v in ground * 0.82), 1)
            step = int(step * 1.35) + 1
            y += step
    elif style == "park":  # trees along the back, a path
        for _ in range(int(rng.integers(5, 9))):
            x = int(rng.integers(0, w))
            r = int(rng.integers(18, 40))
            trunk = (40, 60, 80)
            cv2.rectangle(img, (x - 3, horizon - r), (x + 3, horizon + 4), trunk, -1)
            g = wall * rng.uniform(0.5, 0.8)
            cv2.circle(img, (x, horizon - r - r // 2), r, tuple(float(v) for v in g), -1, cv2.LINE_AA)
        grass = np.array(rng.uniform([50, 120, 60], [90, 170, 110]), np.float32)
        band = int((h - horizon) * 0.15)
        img[horizon:horizon + band] = grass + tex[horizon:horizon + band] * 1.5
        img[h - band // 2:] = grass + tex[h - band // 2:] * 1.5
    else:  # hall: floor tiles, pillars, a long window band
        tile = int(rng.integers(20, 36))
        c = tuple(float(v) for v in ground * 0.75)
        for x in range(-w, 2 * w, tile):
            cv2.line(img, (int(w / 2 + (x - w / 2) * 0.3), horizon), (x, h), c, 1, cv2.LINE_AA)
        y, step = horizon, 5
        while y < h:
            cv2.line(img, (0, y), (w, y), c, 1)
            step = int(step * 1.3) + 1
            y += step
        cv2.rectangle(img, (0, horizon // 4), (w, horizon // 2), tuple(float(v) for v in wall * 0.55), -1)
        for x in range(int(rng.integers(20, 60)), w, int(rng.integers(80, 130))):
            cv2.rectangle(img, (x, 0), (x + 14, horizon), tuple(float(v) for v in wall * 0.8), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _make_camera(rng: np.random.Generator, index: int, cfg: SynthConfig) -> _CamModel:
    w, h = cfg.width, cfg.height
    style = ["street", "park", "hall"][index % 3] if index < 3 else ["street", "park", "hall"][int(rng.integers(3))]
    horizon = int(h * rng.uniform(0.42, 0.55))
    bg = _make_background(rng, w, h, horizon, style)
    lo, hi = cfg.person_height
    span = hi - lo
    h_near = float(rng.uniform(lo + 0.55 * span, hi))
    h_far = float(max(lo, h_near * rng.uniform(0.5, 0.7)))
    casts = [(0.85, 1.0, 1.18), (1.18, 1.02, 0.85), (0.9, 1.12, 0.92), (1.1, 0.88, 1.06), (1.0, 1.0, 1.0)]
    cast = (np.array(casts[index % len(casts)]) * rng.uniform(0.94, 1.06, 3)).astype(np.float32)  # BGR gains
    cast /= cast.mean() / rng.uniform(0.8, 1.15)
    # a lighting gradient across the frame (sunlight, shade)
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    ang = rng.uniform(0, 2 * np.pi)
    grad = 1 + rng.uniform(0.1, 0.3) * (np.cos(ang) * gx + np.sin(ang) * gy)
    gain = grad[..., None] * cast[None, None, :]
    gamma = rng.uniform(0.8, 1.25, 3)
    contrast = rng.uniform(0.75, 1.15)
    x = np.arange(256, dtype=np.float32) / 255.0
    lut = np.stack([np.clip(255 * (0.5 + contrast * (x ** g - 0.5)), 0, 255) for g in gamma], -1)
    lut = lut.astype(np.uint8).reshape(256, 1, 3)
    sigma = rng.uniform(2.0, 7.0)
    noise = [np.clip(rng.normal(0, sigma, (h + 8, w + 8, 3)), -40, 40).astype(np.int16) for _ in range(4)]
    return _CamModel(index=index, width=w, height=h, background=bg, gain=gain.astype(np.float32), lut=lut,
                     blur=float(rng.uniform(0.0, 1.3)), noise=noise, horizon=float(horizon + h_far * 0.15),
                     near=float(h - 4), h_far=h_far, h_near=h_near)


# --------------------------------------------------------------------------------------
# trajectories


@dataclass
class _Pass:
    pid: int
    start: int  # 0-based frame at which the walker is at x_start
    x_start: float
    direction: int
    y0: float
    y1: float
    speed: float  # body heights per frame
    phase0: float

    def state(self, t: int, cam: _CamModel, n: int) -> tuple[float, float, float, float]:
        """(cx, foot_y, height, phase) at frame t; x advances by speed x height per frame."""
        k = t - self.start
        frac = min(1.0, max(0.0, k / max(1, n)))
        y = self.y0 + (self.y1 - self.y0) * frac
        hgt = cam.person_height(y)
        x = self.x_start + self.direction * self.speed * hgt * k
        phase = self.phase0 + self.speed * k / 0.75 * 2 * math.pi
        return x, y, hgt, phase


def _plan_passes(rng: np.random.Generator, cams: list[_CamModel], apps: dict[int, dict], cfg: SynthConfig):
    passes: list[list[_Pass]] = [[] for _ in cams]
    n = cfg.n_frames
    for pid, app in apps.items():
        k = int(rng.integers(cfg.cams_per_id[0], min(cfg.cams_per_id[1], len(cams)) + 1))
        chosen = rng.choice(len(cams), size=k, replace=False)
        for ci in chosen:
            for _ in range(1 + int(rng.integers(0, cfg.passes_per_cam + 1))):
                cam = cams[int(ci)]
                direction = 1 if rng.random() < 0.5 else -1
                y0 = float(rng.uniform(cam.horizon, cam.near))
                y1 = float(np.clip(y0 + rng.uniform(-0.25, 0.25) * (cam.near - cam.horizon), cam.horizon, cam.near))
                hmax = cam.h_near * 1.1
                x_start = -0.4 * hmax if direction > 0 else cam.width + 0.4 * hmax
                speed = app["speed"] * float(rng.uniform(0.9, 1.1))
                dur = int((cam.width + 0.8 * hmax) / (speed * cam.person_height((y0 + y1) / 2)))
                start = int(rng.integers(-dur // 2, max(1 - dur // 2, n - dur // 3)))
                passes[int(ci)].append(_Pass(pid, start, x_start, direction, y0, y1, speed,
                                             float(rng.uniform(0, 2 * math.pi))))
    return passes


def _visibility(boxes: list[tuple[float, float, float, float]], w: int, h: int) -> list[float]:
    """Share of each box inside the frame and not covered by boxes drawn after it."""
    vis = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        bw, bh = max(1.0, x1 - x0), max(1.0, y1 - y0)
        gw, gh = 16, 32
        gxs = x0 + (np.arange(gw) + 0.5) * bw / gw
        gys = y0 + (np.arange(gh) + 0.5) * bh / gh
        ok = ((gxs >= 0) & (gxs < w))[None, :] & ((gys >= 0) & (gys < h))[:, None]
        for fx0, fy0, fx1, fy1 in boxes[i + 1:]:
            cover = ((gxs >= fx0) & (gxs < fx1))[None, :] & ((gys >= fy0) & (gys < fy1))[:, None]
            ok &= ~cover
        vis.append(float(ok.mean()))
    return vis


def _clip(box, w: int, h: int):
    x0, y0, x1, y1 = box
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(w), x1), min(float(h), y1)
    return x0, y0, x1, y1


# --------------------------------------------------------------------------------------
# generation


def _seqinfo(name: str, cam: _CamModel, cfg: SynthConfig) -> str:
    return (f"[Sequence]\nname={name}\nimDir=img1\nframeRate={cfg.fps:g}\nseqLength={cfg.n_frames}\n"
            f"imWidth={cam.width}\nimHeight={cam.height}\nimExt=.jpg\n")


def _render_camera(root: Path, name: str, cam: _CamModel, passes: list[_Pass], apps: dict[int, dict],
                   cfg: SynthConfig, rng: np.random.Generator, tick) -> Camera:
    cdir = root / name
    (cdir / "gt").mkdir(parents=True, exist_ok=True)
    (cdir / "det").mkdir(parents=True, exist_ok=True)
    video = cdir / f"{name}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (cam.width, cam.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an MP4 writer for {video}")
    gt_lines: list[str] = []
    det_lines: list[str] = []
    w, h = cam.width, cam.height
    try:
        for t in range(cfg.n_frames):
            frame = cam.background.copy()
            states = []
            for p in passes:
                x, y, hgt, phase = p.state(t, cam, cfg.n_frames)
                if -hgt < x < w + hgt:
                    states.append((y, p.pid, x, hgt, phase, p.direction))
            states.sort(key=lambda s: (s[0], s[1]))
            drawn = []
            for y, pid, x, hgt, phase, direction in states:
                b = draw_person(frame, apps[pid], x, y, hgt, phase, direction)
                drawn.append((pid, b))
            frame = cam.finish(frame, rng)
            writer.write(frame)
            vis = _visibility([b for _, b in drawn], w, h)
            for (pid, b), v in zip(drawn, vis):
                x0, y0, x1, y1 = _clip(b, w, h)
                if v <= 0 or x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                gt_lines.append(f"{t + 1},{pid},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},1,1,{v:.3f}")
                # detector: misses (more when occluded), jitter, scores
                miss = cfg.det_miss_rate + (0.5 if v < 0.35 else 0.0)
                if rng.random() < miss:
                    continue
                bw, bh = x1 - x0, y1 - y0
                j = cfg.det_jitter
                dx0 = x0 + rng.normal(0, j) * bw
                dy0 = y0 + rng.normal(0, j) * bh
                dw = bw * (1 + rng.normal(0, j))
                dh = bh * (1 + rng.normal(0, j))
                dx0, dy0, dx1, dy1 = _clip((dx0, dy0, dx0 + dw, dy0 + dh), w, h)
                if dx1 - dx0 < 4 or dy1 - dy0 < 8:
                    continue
                score = float(np.clip(0.55 + 0.4 * v + rng.normal(0, 0.08), 0.05, 0.999))
                det_lines.append(f"{t + 1},-1,{dx0:.1f},{dy0:.1f},{dx1 - dx0:.1f},{dy1 - dy0:.1f},{score:.3f},-1,-1,-1")
            # false positives on the background (person-shaped boxes)
            for _ in range(int(rng.poisson(cfg.det_fp_per_frame))):
                fy1 = float(rng.uniform(cam.horizon, h))
                fh = cam.person_height(fy1) * float(rng.uniform(0.5, 1.1))
                fw = fh * float(rng.uniform(0.3, 0.5))
                fx0 = float(rng.uniform(0, w - fw))
                bx = _clip((fx0, fy1 - fh, fx0 + fw, fy1), w, h)
                score = float(np.clip(rng.uniform(0.2, 0.7), 0.05, 0.999))
                det_lines.append(f"{t + 1},-1,{bx[0]:.1f},{bx[1]:.1f},{bx[2] - bx[0]:.1f},{bx[3] - bx[1]:.1f},{score:.3f},-1,-1,-1")
            tick()
    finally:
        writer.release()
    (cdir / "gt" / "gt.txt").write_text("\n".join(gt_lines) + "\n", encoding="utf-8")
    (cdir / "det" / "det.txt").write_text("\n".join(det_lines) + "\n", encoding="utf-8")
    (cdir / "seqinfo.ini").write_text(_seqinfo(name, cam, cfg), encoding="utf-8")
    return Camera(name=name, video=video, gt=cdir / "gt" / "gt.txt", det=cdir / "det" / "det.txt",
                  width=w, height=h, fps=cfg.fps, n_frames=cfg.n_frames)


def _crop(frame: np.ndarray, box, rng: np.random.Generator, jitter: float = 0.04) -> np.ndarray:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    x0 += rng.normal(0, jitter) * bw
    x1 += rng.normal(0, jitter) * bw
    y0 += rng.normal(0, jitter) * bh
    y1 += rng.normal(0, jitter) * bh
    x0, y0, x1, y1 = _clip((x0, y0, x1, y1), w, h)
    xi0, yi0 = int(x0), int(y0)
    xi1, yi1 = max(xi0 + 2, int(math.ceil(x1))), max(yi0 + 2, int(math.ceil(y1)))
    crop = frame[yi0:yi1, xi0:xi1]
    return cv2.resize(crop, (64, 128), interpolation=cv2.INTER_LINEAR)


def _compress(frame: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _render_view(cam: _CamModel, app: dict, rng: np.random.Generator, others: list[dict]):
    """One frame of one camera with the target person fully in view (plus maybe others)."""
    frame = cam.background.copy()
    y = float(rng.uniform(cam.horizon, cam.near))
    hgt = cam.person_height(y)
    x = float(rng.uniform(0.25 * hgt, cam.width - 0.25 * hgt))
    people = [(y, 0, x, hgt, app)]
    for k, o in enumerate(others):
        oy = float(np.clip(y + rng.uniform(-0.3, 0.3) * (cam.near - cam.horizon), cam.horizon, cam.near))
        ohg = cam.person_height(oy)
        ox = x + rng.choice([-1, 1]) * rng.uniform(0.2, 0.5) * ohg
        people.append((oy, k + 1, ox, ohg, o))
    people.sort(key=lambda s: (s[0], s[1]))
    box = None
    for py, k, px, ph, a in people:
        b = draw_person(frame, a, px, py, ph, float(rng.uniform(0, 2 * math.pi)), 1 if rng.random() < 0.5 else -1)
        if k == 0:
            box = b
    frame = _compress(cam.finish(frame, rng))
    return frame, box, (x, y, hgt)


def _write_market(root: Path, cams: list[_CamModel], cfg: SynthConfig, rng: np.random.Generator,
                  eval_apps: dict[int, dict], tick, train_apps: dict[int, dict] | None = None) -> Path:
    mdir = root / "market"
    qdir, gdir = mdir / "query", mdir / "bounding_box_test"
    qdir.mkdir(parents=True, exist_ok=True)
    gdir.mkdir(parents=True, exist_ok=True)
    quality = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    frame_no = [0]

    def next_frame() -> int:
        frame_no[0] += int(rng.integers(5, 40))
        return frame_no[0]

    pool = list(eval_apps.values())
    for pid, app in eval_apps.items():
        k = int(rng.integers(2, min(3, len(cams)) + 1))
        chosen = sorted(int(c) for c in rng.choice(len(cams), size=k, replace=False))
        for ci in chosen:
            n_views = int(rng.integers(cfg.views_per_cam[0], cfg.views_per_cam[1] + 1))
            for v in range(n_views):
                others = []
                if rng.random() < 0.35:
                    others.append(pool[int(rng.integers(len(pool)))])
                frame, box, _ = _render_view(cams[ci], app, rng, others)
                crop = _crop(frame, box, rng)
                folder = qdir if v == 0 else gdir
                name = f"{pid:04d}_c{ci + 1}s1_{next_frame():06d}_{v + 1:02d}.jpg"
                cv2.imwrite(str(folder / name), crop, quality)
        tick()
    # distractors: background patches and body parts of people who are in no list
    for i in range(cfg.n_distractors):
        ci = int(rng.integers(len(cams)))
        cam = cams[ci]
        if i % 2 == 0:
            frame = _compress(cam.finish(cam.background.copy(), rng))
            bh = float(rng.uniform(cam.h_far, cam.h_near))
            bw = bh * float(rng.uniform(0.3, 0.6))
            x0 = float(rng.uniform(0, cam.width - bw))
            y0 = float(rng.uniform(0, cam.height - bh))
            box = (x0, y0, x0 + bw, y0 + bh)
        else:
            frame, box, _ = _render_view(cam, random_appearance(rng), rng, [])
            x0, y0, x1, y1 = box
            part = float(rng.uniform(0.3, 0.55))
            box = (x0, y0, x1, y0 + (y1 - y0) * part) if rng.random() < 0.5 else (x0, y1 - (y1 - y0) * part, x1, y1)
        crop = _crop(frame, box, rng, 0.02)
        cv2.imwrite(str(gdir / f"0000_c{ci + 1}s1_{next_frame():06d}_01.jpg"), crop, quality)
    # junk: heavily blurred slivers
    for i in range(cfg.n_junk):
        ci = int(rng.integers(len(cams)))
        frame, box, _ = _render_view(cams[ci], random_appearance(rng), rng, [])
        x0, y0, x1, y1 = box
        cut = float(rng.uniform(0.15, 0.3))
        box = (x0, y0, x0 + (x1 - x0) * cut, y1) if rng.random() < 0.5 else (x1 - (x1 - x0) * cut, y0, x1, y1)
        crop = cv2.GaussianBlur(_crop(frame, box, rng, 0.02), (0, 0), 2.5)
        cv2.imwrite(str(gdir / f"-1_c{ci + 1}s1_{next_frame():06d}_01.jpg"), crop, quality)
    if train_apps:  # optional labelled views of the video identities (a supervised reference)
        tdir = mdir / "bounding_box_train"
        tdir.mkdir(parents=True, exist_ok=True)
        for pid, app in train_apps.items():
            for ci in range(len(cams)):
                for v in range(2):
                    frame, box, _ = _render_view(cams[ci], app, rng, [])
                    name = f"{pid:04d}_c{ci + 1}s1_{next_frame():06d}_{v + 1:02d}.jpg"
                    cv2.imwrite(str(tdir / name), _crop(frame, box, rng), quality)
    return mdir


def generate(out_dir: str | Path, config: SynthConfig | None = None, ctx=None) -> World:
    """Generate the world into ``out_dir`` (created) and return it."""
    cfg = config or SynthConfig()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(cfg.seed).spawn(4 + cfg.n_cameras)
    rng_world = np.random.default_rng(seeds[0])
    rng_apps = np.random.default_rng(seeds[1])
    rng_market = np.random.default_rng(seeds[2])
    cams = [_make_camera(rng_world, i, cfg) for i in range(cfg.n_cameras)]
    video_ids = list(range(1, cfg.n_video_ids + 1))
    eval_ids = list(range(cfg.n_video_ids + 1, cfg.n_video_ids + cfg.n_eval_ids + 1))
    apps = {pid: random_appearance(rng_apps) for pid in video_ids}
    eval_apps = {pid: random_appearance(rng_apps) for pid in eval_ids}
    passes = _plan_passes(rng_world, cams, apps, cfg)

    total = cfg.n_cameras * cfg.n_frames + cfg.n_eval_ids
    done = [0]

    def tick() -> None:
        done[0] += 1
        if ctx is not None and (done[0] % 20 == 0 or done[0] == total):
            ctx.check_cancelled()
            ctx.progress(done[0], total, "rendering synthetic world")

    cameras = []
    for i, cam in enumerate(cams):
        name = f"cam{i + 1}"
        rng = np.random.default_rng(seeds[4 + i])
        cameras.append(_render_camera(root, name, cam, passes[i], apps, cfg, rng, tick))
    market = _write_market(root, cams, cfg, rng_market, eval_apps, tick, apps if cfg.write_train else None)
    if ctx is not None:
        ctx.progress(total, total, "synthetic world written")

    manifest = {
        "format": "idstudio-synth-world",
        "version": 1,
        "config": cfg.to_dict(),
        "cameras": [
            {"name": c.name, "video": c.video.relative_to(root).as_posix(), "gt": c.gt.relative_to(root).as_posix(),
             "det": c.det.relative_to(root).as_posix(), "width": c.width, "height": c.height, "fps": c.fps,
             "n_frames": c.n_frames}
            for c in cameras
        ],
        "market_dir": market.relative_to(root).as_posix(),
        "video_ids": video_ids,
        "eval_ids": eval_ids,
    }
    (root / "world.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return World.load(root)

"""Synthetic people for ``core.synth``: a random appearance and the renderer that draws it.

``random_appearance(rng)`` draws a person from small shared palettes (BGR), so colour alone is
a weak cue: what separates identities is the combination of top pattern (solid, stripes,
two-tone, block, logo), sleeves, trousers/shorts/skirt, hair colour and length, bags, body
height/width/leg length and skin tone. ``draw_person(img, app, cx, foot_y, height, ...)``
draws it side-on with a walk cycle (swinging legs and arms, bobbing) into a frame, with
sub-pixel (fixed-point) OpenCV drawing, and returns its box. No camera, world or file here.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np


# --------------------------------------------------------------------------------------
# appearance

# Small shared palettes (BGR): colour alone is a weak cue.
TOPS = [(70, 40, 25), (30, 30, 30), (225, 225, 220), (130, 130, 130), (40, 40, 170),
        (50, 90, 40), (150, 180, 200), (180, 130, 80)]
BOTTOMS = [(110, 60, 40), (35, 35, 35), (110, 110, 110), (110, 150, 170), (40, 60, 90), (200, 200, 200)]
HAIR = [(20, 20, 25), (25, 40, 70), (40, 70, 110), (90, 150, 190), (160, 160, 160), (30, 50, 130)]
SKIN = [(150, 180, 225), (120, 160, 205), (90, 130, 180), (60, 90, 130), (170, 195, 235)]
BAGS = [(30, 30, 30), (60, 40, 120), (100, 60, 30), (40, 90, 140), (140, 140, 40)]
SHOES = [(20, 20, 20), (230, 230, 230), (40, 60, 90), (90, 90, 90)]
PATTERNS = ["solid", "hstripes", "vstripes", "twotone", "block", "logo"]
BOTTOM_KINDS = ["trousers", "trousers", "shorts", "skirt"]
BAG_KINDS = ["none", "none", "backpack", "shoulder", "handbag"]


def _jitter(rng: np.random.Generator, colour, amount: float = 14.0) -> tuple[int, int, int]:
    c = np.asarray(colour, float) + rng.normal(0, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def random_appearance(rng: np.random.Generator) -> dict[str, Any]:
    """One identity's look: palette picks with a little jitter, pattern, body shape, extras."""
    top = _jitter(rng, TOPS[rng.integers(len(TOPS))])
    top2 = _jitter(rng, TOPS[rng.integers(len(TOPS))])
    if np.abs(np.subtract(top, top2)).sum() < 90:  # make the pattern visible
        top2 = tuple(int(255 - v * 0.7) for v in top)
    bottom_kind = BOTTOM_KINDS[rng.integers(len(BOTTOM_KINDS))]
    return {
        "top": top,
        "top2": top2,
        "pattern": PATTERNS[rng.integers(len(PATTERNS))],
        "stripe": float(rng.uniform(0.035, 0.07)),  # stripe period in body heights
        "long_sleeves": bool(rng.random() < 0.6),
        "bottom": _jitter(rng, BOTTOMS[rng.integers(len(BOTTOMS))], 10),
        "bottom_kind": bottom_kind,
        "tights": _jitter(rng, (40, 40, 40), 15) if rng.random() < 0.5 else None,
        "hair": _jitter(rng, HAIR[rng.integers(len(HAIR))], 8),
        "long_hair": bool(rng.random() < (0.7 if bottom_kind == "skirt" else 0.3)),
        "hat": bool(rng.random() < 0.12),
        "skin": _jitter(rng, SKIN[rng.integers(len(SKIN))], 6),
        "shoes": _jitter(rng, SHOES[rng.integers(len(SHOES))], 8),
        "bag": BAG_KINDS[rng.integers(len(BAG_KINDS))],
        "bag_colour": _jitter(rng, BAGS[rng.integers(len(BAGS))], 10),
        "height": float(rng.uniform(0.86, 1.1)),
        "width": float(rng.uniform(0.8, 1.3)),
        "legs": float(rng.uniform(0.92, 1.08)),
        "speed": float(rng.uniform(0.045, 0.075)),  # body heights per frame at 15 fps
    }


# --------------------------------------------------------------------------------------
# person renderer

_S = 4  # fixed-point shift for sub-pixel drawing
_F = 1 << _S


def _p(x: float, y: float) -> tuple[int, int]:
    return (int(round(x * _F)), int(round(y * _F)))


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, v * f)) for v in c)


class _Box:
    def __init__(self) -> None:
        self.x0 = self.y0 = 1e9
        self.x1 = self.y1 = -1e9

    def add(self, x: float, y: float, r: float = 0.0) -> None:
        self.x0 = min(self.x0, x - r)
        self.x1 = max(self.x1, x + r)
        self.y0 = min(self.y0, y - r)
        self.y1 = max(self.y1, y + r)


def _limb(img, box: _Box, a, b, colour, thick: float) -> None:
    t = max(1, int(round(thick)))
    cv2.line(img, _p(*a), _p(*b), colour, t, cv2.LINE_AA, _S)
    box.add(*a, thick / 2)
    box.add(*b, thick / 2)


def _fill_poly(img, box: _Box, pts, colour) -> None:
    arr = np.array([_p(x, y) for x, y in pts], np.int32)
    cv2.fillConvexPoly(img, arr, colour, cv2.LINE_AA, _S)
    for x, y in pts:
        box.add(x, y)


def _pattern_poly(img, box: _Box, pts, app: dict, u: float) -> None:
    """Fill the torso polygon with the identity's pattern."""
    h, w = img.shape[:2]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = max(0, int(math.floor(min(xs)))), min(w, int(math.ceil(max(xs))) + 1)
    y0, y1 = max(0, int(math.floor(min(ys)))), min(h, int(math.ceil(max(ys))) + 1)
    for x, y in pts:
        box.add(x, y)
    if x1 <= x0 or y1 <= y0:
        return
    pw, ph = x1 - x0, y1 - y0
    mask = np.zeros((ph, pw), np.uint8)
    arr = np.array([_p(x - x0, y - y0) for x, y in pts], np.int32)
    cv2.fillConvexPoly(mask, arr, 255, cv2.LINE_AA, _S)
    c1 = np.array(app["top"], np.float32)
    c2 = np.array(app["top2"], np.float32)
    pattern = app["pattern"]
    top_y = min(ys)
    yy = (np.arange(y0, y1, dtype=np.float32) - top_y)[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) - min(xs))[None, :]
    period = max(2.0, app["stripe"] * u)
    if pattern == "hstripes":
        sel = ((yy // (period / 2)) % 2 == 1) & (xx > -1)
    elif pattern == "vstripes":
        sel = ((xx // (period / 2)) % 2 == 1) & (yy > -1)
    elif pattern == "twotone":
        sel = (yy > (max(ys) - top_y) * 0.5) & (xx > -1)
    elif pattern == "block":  # contrasting yoke over the shoulders
        sel = (yy < (max(ys) - top_y) * 0.35) & (xx > -1)
    elif pattern == "logo":
        cy, cx = (max(ys) - top_y) * 0.38, (max(xs) - min(xs)) * 0.5
        r = max(1.5, 0.045 * u)
        sel = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * 1.2)
    else:
        sel = np.zeros((ph, pw), bool)
    tex = np.where(sel[..., None], c2, c1)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    region = img[y0:y1, x0:x1]
    region[:] = (region * (1 - alpha) + tex * alpha).astype(np.uint8)


def draw_person(img: np.ndarray, app: dict, cx: float, foot_y: float, height: float,
                phase: float, facing: int) -> tuple[float, float, float, float]:
    """Draw one walking person side-on; returns the tight box (x0, y0, x1, y1)."""
    u = height * app["height"] / 1.0  # body height in pixels
    d = 1 if facing >= 0 else -1
    box = _Box()
    wf = app["width"]
    bob = 0.012 * u * abs(math.cos(phase))
    L = 0.47 * u * app["legs"]
    hip_y = foot_y - L + bob * 0.5
    torso_len = 0.93 * u - L - 0.16 * u
    sh_y = hip_y - torso_len
    skin, skin_far = app["skin"], _shade(app["skin"], 0.8)
    top, top_far = app["top"], _shade(app["top"], 0.75)
    bot = app["bottom"]
    kind = app["bottom_kind"]
    leg_t = 0.075 * u * (0.85 + 0.15 * wf)
    arm_t = 0.052 * u * (0.85 + 0.15 * wf)

    def leg(k: int, far: bool) -> None:
        ph = phase + k * math.pi
        a = 0.42 * math.sin(ph)
        flex = 0.7 * max(0.0, math.cos(ph))  # knee bends while the leg swings forward
        hip = (cx + 0.01 * u * d, hip_y)
        knee = (hip[0] + math.sin(a) * L * 0.5 * d, hip[1] + math.cos(a) * L * 0.5)
        b = a - flex
        foot = (knee[0] + math.sin(b) * L * 0.5 * d, knee[1] + math.cos(b) * L * 0.5)
        f = 0.75 if far else 1.0
        thigh_c = _shade(bot, f) if kind != "skirt" else _shade(app["tights"] or skin, f)
        shin_c = _shade(bot, f) if kind == "trousers" else _shade(app["tights"] or skin, f)
        if kind == "shorts":
            shin_c = _shade(skin, f)
        _limb(img, box, hip, knee, thigh_c, leg_t)
        _limb(img, box, knee, foot, shin_c, leg_t * 0.85)
        toe = (foot[0] + 0.06 * u * d, foot[1])
        _limb(img, box, (foot[0] - 0.01 * u * d, foot[1]), toe, _shade(app["shoes"], f), leg_t * 0.7)

    def arm(k: int, far: bool) -> None:
        ph = phase + k * math.pi + math.pi
        a = 0.38 * math.sin(ph)
        sh = (cx + 0.015 * u * d, sh_y + 0.03 * u)
        elbow = (sh[0] + math.sin(a) * 0.15 * u * d, sh[1] + math.cos(a) * 0.15 * u)
        b = a + 0.25 + 0.2 * max(0.0, math.sin(ph))
        hand = (elbow[0] + math.sin(b) * 0.14 * u * d, elbow[1] + math.cos(b) * 0.14 * u)
        tc = top_far if far else top
        sc = skin_far if far else skin
        _limb(img, box, sh, elbow, tc, arm_t)
        _limb(img, box, elbow, hand, tc if app["long_sleeves"] else sc, arm_t * 0.9)
        cv2.circle(img, _p(*hand), int(round(arm_t * 0.55 * _F)), sc, -1, cv2.LINE_AA, _S)
        if not far and app["bag"] == "handbag":
            bw, bh = 0.08 * u, 0.07 * u
            _fill_poly(img, box, [(hand[0] - bw / 2, hand[1] + 0.01 * u), (hand[0] + bw / 2, hand[1] + 0.01 * u),
                                  (hand[0] + bw / 2, hand[1] + bh), (hand[0] - bw / 2, hand[1] + bh)],
                       app["bag_colour"])

    arm(1, True)
    leg(1, True)
    leg(0, False)
    # pelvis joins legs and torso
    hw = 0.085 * u * wf
    _fill_poly(img, box, [(cx - hw * 0.9, hip_y - 0.04 * u), (cx + hw * 0.9, hip_y - 0.04 * u),
                          (cx + hw * 0.8, hip_y + 0.04 * u), (cx - hw * 0.8, hip_y + 0.04 * u)], bot)
    if kind == "skirt":
        sl = 0.2 * u
        _fill_poly(img, box, [(cx - hw, hip_y - 0.03 * u), (cx + hw, hip_y - 0.03 * u),
                              (cx + hw * 1.5, hip_y + sl), (cx - hw * 1.5, hip_y + sl)], bot)
    # long hair hangs behind the shoulders, under the torso's back edge
    head_r = 0.062 * u
    head_c = (cx + 0.035 * u * d, sh_y - 0.095 * u)
    if app["long_hair"] and not app["hat"]:
        hx = head_c[0] - 0.02 * u * d
        _fill_poly(img, box, [(hx - head_r * 1.05, head_c[1]), (hx + head_r * 1.05, head_c[1]),
                              (hx + head_r * 0.9 - 0.02 * u * d, sh_y + 0.08 * u),
                              (hx - head_r * 0.9 - 0.02 * u * d, sh_y + 0.08 * u)], app["hair"])
    # torso with pattern, a slight forward lean
    sw = 0.085 * u * wf
    lean = 0.02 * u * d
    torso = [(cx - sw + lean, sh_y), (cx + sw + lean, sh_y), (cx + hw, hip_y), (cx - hw, hip_y)]
    _pattern_poly(img, box, torso, app, u)
    if app["bag"] == "backpack":
        bx = cx - d * (sw + 0.045 * u) + lean * 0.5
        _fill_poly(img, box, [(bx - 0.05 * u, sh_y + 0.03 * u), (bx + 0.05 * u, sh_y + 0.03 * u),
                              (bx + 0.05 * u, sh_y + 0.2 * u), (bx - 0.05 * u, sh_y + 0.2 * u)],
                   app["bag_colour"])
    # neck and head
    _limb(img, box, (cx + 0.02 * u * d, sh_y + 0.01 * u), (head_c[0], head_c[1] + head_r * 0.6), skin, 0.045 * u)
    cv2.ellipse(img, _p(*head_c), (int(head_r * 0.9 * _F), int(head_r * _F)), 0, 0, 360, skin, -1, cv2.LINE_AA, _S)
    box.add(head_c[0], head_c[1], head_r)
    if app["hat"]:
        cv2.ellipse(img, _p(head_c[0], head_c[1] - head_r * 0.2), (int(head_r * 1.05 * _F), int(head_r * 0.85 * _F)),
                    0, 180, 360, app["hair"], -1, cv2.LINE_AA, _S)
        _limb(img, box, (head_c[0] - head_r * 0.2 * d, head_c[1] - head_r * 0.25),
              (head_c[0] + head_r * 1.6 * d, head_c[1] - head_r * 0.25), app["hair"], max(1.0, 0.015 * u))
    else:
        # hair cap covers the top and the back of the head
        cv2.ellipse(img, _p(head_c[0] - 0.012 * u * d, head_c[1] - head_r * 0.15),
                    (int(head_r * 1.0 * _F), int(head_r * 0.95 * _F)), 0,
                    180 if d > 0 else 180, 360, app["hair"], -1, cv2.LINE_AA, _S)
        back = (head_c[0] - head_r * 0.55 * d, head_c[1] + head_r * 0.1)
        cv2.ellipse(img, _p(*back), (int(head_r * 0.5 * _F), int(head_r * 0.75 * _F)), 0, 0, 360,
                    app["hair"], -1, cv2.LINE_AA, _S)
    box.add(head_c[0], head_c[1] - head_r * 1.1)
    if app["bag"] == "shoulder":
        strap_a = (cx + sw * 0.6 * d + lean, sh_y + 0.005 * u)
        bag_c = (cx - d * (hw + 0.01 * u), hip_y - 0.01 * u)
        _limb(img, box, strap_a, bag_c, _shade(app["bag_colour"], 0.7), max(1.0, 0.018 * u))
        _fill_poly(img, box, [(bag_c[0] - 0.055 * u, bag_c[1] - 0.02 * u), (bag_c[0] + 0.055 * u, bag_c[1] - 0.02 * u),
                              (bag_c[0] + 0.05 * u, bag_c[1] + 0.08 * u), (bag_c[0] - 0.05 * u, bag_c[1] + 0.08 * u)],
                   app["bag_colour"])
    if app["bag"] == "backpack":
        _limb(img, box, (cx - sw * 0.5 * d + lean, sh_y + 0.01 * u), (cx + 0.2 * sw * d, sh_y + 0.16 * u),
              _shade(app["bag_colour"], 0.7), max(1.0, 0.02 * u))
    arm(0, False)
    return box.x0, box.y0, box.x1, box.y1

"""Folders of tracklets, as video re-identification sets and trackers lay them out.

A tracklet is one person's crops from one camera, in time order. Three layouts are read,
decided by what the folder holds, never by its name alone:

* **PRID2011** — ``cam_a/person_0001/0001.png``: a folder per camera, in it a folder per
  tracklet, in that its crops;
* **iLIDS-VID** — ``cam1/person001/cam1_person001_00317.png``: the same shape with other
  names (told apart from PRID2011 by the camera folders' names only, for the log);
* **MARS** — ``bbox_train/0001/0001C1T0001F001.jpg``: a folder per person holding every
  camera's tracklets, each crop named person, ``C`` camera, ``T`` tracklet, ``F`` frame.
  DukeMTMC-VideoReID (``train/0001/0001/0001_C6_F0001_X30823.jpg``: person, tracklet,
  crops named person, ``C`` camera, ``F`` frame) reads the same way.

The folder (or file-name) identity is kept as ground truth only: it measures links, it never
trains, the rule for MOT gt. Wrapper folders with one sub-folder (``prid_2011/multi_shot/``)
are looked through. ``scan`` checks the layout; ``read_crops`` decodes, where an unreadable
image is one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idstudio.core.errors import UserError
from idstudio.core.sources import read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MARS_NAME = re.compile(r"^(-?\d+)C(\d+)T(\d+)F(\d+)", re.IGNORECASE)
DUKE_NAME = re.compile(r"^(-?\d+)_C(\d+)_F(\d+)", re.IGNORECASE)
EXPECTED = ("cam_a/person_0001/0001.png (PRID2011), cam1/person001/*.png (iLIDS-VID) or "
            "bbox_train/0001/0001C1T0001F001.jpg (MARS)")


@dataclass
class Tracklet:
    camera: str
    name: str          # the tracklet's folder (or MARS key), shown to people
    person: str        # the identity the layout gives: ground truth only
    files: list[Path] = field(default_factory=list)


@dataclass
class TrackletSet:
    root: Path
    layout: str
    tracklets: list[Tracklet]

    @property
    def cameras(self) -> list[str]:
        return sorted({t.camera for t in self.tracklets})

    def of_camera(self, camera: str) -> list[Tracklet]:
        return [t for t in self.tracklets if t.camera == camera]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _camera_tracklet(root: Path, cams: list[Path]) -> TrackletSet | None:
    """PRID2011 / iLIDS-VID: every sub-folder is a camera of tracklet folders of images."""
    tracklets = []
    for cam in cams:
        folders = _dirs(cam)
        if not folders or _images(cam):
            return None
        for t in folders:
            if _dirs(t):
                return None
            tracklets.append(Tracklet(cam.name, t.name, t.name, _images(t)))
    if len(cams) < 1 or not tracklets:
        return None
    layout = "PRID2011" if all(c.name.lower().startswith("cam_") for c in cams) else "iLIDS-VID"
    return TrackletSet(root, layout, tracklets)


def _person_folders(root: Path, people: list[Path]) -> TrackletSet | None:
    """MARS (``person/PPPPCcTtttFfff.jpg``) or DukeMTMC-VideoReID (``person/tracklet/PPPP_Cc_Ffff.jpg``)."""
    by_key: dict[tuple[str, str, str], Tracklet] = {}
    layout = None
    for person in people:
        files = _images(person)
        if files:  # MARS
            for f in files:
                m = MARS_NAME.match(f.name)
                if m is None:
                    return None
                key = (person.name, f"C{int(m.group(2))}", f"T{m.group(3)}")
                by_key.setdefault(key, Tracklet(key[1], f"{person.name}{key[1]}{key[2]}", person.name)).files.append(f)
            layout = layout or "MARS"
        else:  # DukeMTMC-VideoReID: one folder per tracklet
            for t in _dirs(person):
                files = _images(t)
                m = DUKE_NAME.match(files[0].name) if files else None
                if files and m is None:
                    return None
                camera = f"C{int(m.group(2))}" if m else "C?"
                by_key[(person.name, camera, t.name)] = Tracklet(camera, f"{person.name}/{t.name}", person.name, files)
            layout = layout or "DukeMTMC-VideoReID"
    if not by_key:
        return None
    return TrackletSet(root, layout or "MARS", [by_key[k] for k in sorted(by_key)])


def _layout_at(root: Path) -> TrackletSet | None:
    """The tracklet set whose top is ``root``, or None."""
    subs = _dirs(root)
    if not subs or _images(root):
        return None
    if any(_images(s) for s in subs):  # person folders of crops named the MARS way
        return _person_folders(root, subs)
    if any(MARS_NAME.match(f.name) for s in subs[:2] for t in _dirs(s)[:2] for f in _images(t)[:1]):
        return None  # the MARS root (bbox_train beside bbox_test): one level down
    if _duke_like(subs):  # person/tracklet/crops: the same shape as camera/tracklet/crops, told by the names
        return _person_folders(root, subs)
    return _camera_tracklet(root, subs)


def scan(folder: Path) -> TrackletSet:
    """The tracklets under ``folder``, or one sentence saying why it is not a tracklet set."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"There is no folder {folder}.")
    root, found = folder, None
    for _ in range(4):  # wrappers: prid_2011/multi_shot/, MARS/bbox_train/
        found = _layout_at(root)
        subs = _dirs(root)
        train = [s for s in subs if s.name.lower() in ("bbox_train", "train")]
        if found is not None or not (len(subs) == 1 or len(train) == 1):
            break
        root = subs[0] if len(subs) == 1 else train[0]
    if found is None:
        raise UserError(f"{folder} is not a folder of tracklets in a known layout; expected {EXPECTED}.")
    for t in found.tracklets:
        if not t.files:
            raise UserError(f"Tracklet {t.camera}/{t.name} in {folder} holds no images; nothing was imported.")
    return found


def _duke_like(people: list[Path]) -> bool:
    for person in people[:3]:
        for t in _dirs(person)[:1]:
            files = _images(t)
            if files and DUKE_NAME.match(files[0].name):
                return True
    return False


def read_crops(tracklet: Tracklet) -> list[np.ndarray]:
    """The tracklet's crops (BGR), in file order; an unreadable image is one sentence."""
    out = []
    for path in tracklet.files:
        image = read_image(path)
        if image is None or image.size == 0:
            raise UserError(f"{path} is not a readable image; nothing was imported. Remove or replace it and import again.")
        out.append(image)
    return out


def is_person(name: str) -> bool:
    """False for the layouts' junk and distractor folders (MARS ``00-1`` and ``0000``)."""
    return re.fullmatch(r"0+|0*-1", name) is None

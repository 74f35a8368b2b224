"""The decoded-crop cache: every instance's crop decoded once, at one input size, in one file.

Training reads a batch of crops many times an epoch, and decoding JPEGs on the CPU (about
2,400 crops a second a core) kept a GPU idle most of the time (bench/gpu.sh: 0.066x a bare
loop on an H200). So crops are decoded once, resized to the model's input and stored as
uint8 (3, H, W) slots in ``cache/crops/crops-HxW.u8`` beside the store, and a batch is a
gather of slots: one ``pread`` a crop, straight into the batch's (pinned) buffer. Reads go
through the OS page cache, never a memory map, so a process holds only its batches, not the
pages of a 6 GB file it has touched (bench/datapath.py: RSS at 1M instances against 10k).

Never stale: ``crops.db`` logs every insert, change and removal of a crop (``crop_changes``,
kept by triggers, so no writer can forget it) and carries a random id of its own. Each slot
remembers the log position it was decoded at; a slot whose instance has a later log row, or
a cache made from another ``crops.db``, is not read, and ``update`` decodes it again. The
file's own metadata is written (atomically) only after its pixels are on disk, so a build
that is killed or cancelled keeps the slots it finished and nothing half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from idstudio.core.data import CropStore, decode_crops_uint8
from idstudio.core.errors import UserError
from idstudio.core.jobs import JobContext

FORMAT = "idstudio-crop-cache-1"
FOLDER = "crops"
# Kept free beside the cache: a full disk would fail the store's own writes next.
DISK_MARGIN_BYTES = 512 * 2 ** 20
BUILD_BATCH = 512
# A batch gathers crops from all over the file, fast only where the OS page cache holds it: a
# cold 2.3 GB cache read at random from this machine's disk gave 134 crops/s, against 38,000
# hot. So ``auto`` builds no cache larger than this share of the machine's memory (a 6 GB one of
# a million 64x32 crops fits a 24 GB machine), and a run reads the file through once ahead.
MEMORY_SHARE = 0.5
WARM_CHUNK = 64 * 2 ** 20


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0

def store_position(conn: sqlite3.Connection) -> tuple[str, int] | None:
    """(the store's id, its last change-log position), or None where the store keeps no log."""
    try:
        row = conn.execute("SELECT value FROM crop_meta WHERE key = 'store_id'").fetchone()
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM crop_changes").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    return (row[0], int(seq)) if row else None


def crop_bytes(height: int, width: int) -> int:
    return 3 * int(height) * int(width)


def size_label(height: int, width: int) -> str:
    return f"{int(height)}x{int(width)}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class CropCache:
    """One cache file: crops of a project at (height, width), by slot, with its metadata."""

    def __init__(self, cache_dir: Path, height: int, width: int):
        self.height, self.width = int(height), int(width)
        self.folder = Path(cache_dir) / FOLDER
        stem = f"crops-{size_label(height, width)}"
        self.pixels_path = self.folder / f"{stem}.u8"
        self.meta_path = self.folder / f"{stem}.json"
        self.index_path = self.folder / f"{stem}.index.npy"  # (n, 2) int64: instance id, log position
        self.crop_bytes = crop_bytes(height, width)
        self.store_id: str | None = None
        self.ids = np.zeros(0, np.int64)
        self.seqs = np.zeros(0, np.int64)
        self._read_meta()

    @classmethod
    def of(cls, project: Any, height: int, width: int) -> "CropCache":
        return cls(project.cache_dir, height, width)

    @classmethod
    def all_of(cls, project: Any) -> list["CropCache"]:
        """Every cache file the project has, one per input size."""
        folder = Path(project.cache_dir) / FOLDER
        out = []
        for meta in sorted(folder.glob("crops-*.json")):
            try:
                h, w = meta.stem.split("-", 1)[1].split("x")
                out.append(cls(project.cache_dir, int(h), int(w)))
            except ValueError:
                continue
        return out

    # ---- metadata ----
    def _read_meta(self) -> None:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT or (meta.get("height"), meta.get("width")) != (self.height, self.width):
                return
            index = np.load(self.index_path)
            count = int(meta["count"])
            if index.shape != (count, 2) or self.pixels_path.stat().st_size < count * self.crop_bytes:
                return
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return
        self.store_id = meta.get("store_id")
        self.ids, self.seqs = index[:, 0].copy(), index[:, 1].copy()

    def _write_meta(self) -> None:
        tmp_index = self.index_path.with_suffix(".tmp.npy")
        np.save(tmp_index, np.stack([self.ids, self.seqs], axis=1) if len(self.ids) else np.zeros((0, 2), np.int64))
        os.replace(tmp_index, self.index_path)
        meta = {"format": FORMAT, "height": self.height, "width": self.width, "count": int(len(self.ids)),
                "store_id": self.store_id, "written_at": time.time()}
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta) + "\n", encoding="utf-8")
        os.replace(tmp, self.meta_path)

    @property
    def exists(self) -> bool:
        return self.meta_path.exists()

    @property
    def nbytes(self) -> int:
        try:
            return self.pixels_path.stat().st_size
        except OSError:
            return 0

    # ---- what is fresh ----
    def _usable(self, position: tuple[str, int] | None) -> bool:
        return position is not None and position[0] == self.store_id and len(self.ids) > 0

    def _stale(self, conn: sqlite3.Connection) -> np.ndarray:
        """Per slot: its instance's crop changed (or went) after the slot was decoded."""
        stale = np.zeros(len(self.ids), bool)
        changed = conn.execute("SELECT instance_id, MAX(seq) FROM crop_changes WHERE seq > ? GROUP BY instance_id",
                               (int(self.seqs.min()),)).fetchall()
        if changed:
            changed_ids = np.array([c[0] for c in changed], np.int64)
            changed_seq = np.array([c[1] for c in changed], np.int64)
            slots, hit = self._slots_of(changed_ids)
            stale[slots[hit][changed_seq[hit] > self.seqs[slots[hit]]]] = True
        return stale

    def _slots_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slot, found) for each id."""
        order = np.argsort(self.ids, kind="stable")
        slots = order[np.minimum(np.searchsorted(self.ids[order], ids), len(order) - 1)]
        return slots, self.ids[slots] == ids

    def _fresh_ids(self, conn: sqlite3.Connection) -> tuple[np.ndarray, tuple[str, int] | None]:
        """The instance ids whose slot holds the store's current crop, and the store's position."""
        position = store_position(conn)
        if not self._usable(position):
            return np.zeros(0, np.int64), position
        return self.ids[~self._stale(conn)], position

    def slots_for(self, conn: sqlite3.Connection, ids: np.ndarray) -> np.ndarray | None:
        """The slot of each of ``ids``, or None unless every one of them is cached and fresh."""
        ids = np.asarray(ids, np.int64)
        if not self._usable(store_position(conn)):
            return None
        slots, found = self._slots_of(ids)
        if not found.all() or self._stale(conn)[slots].any():
            return None
        return slots

    def status(self, conn: sqlite3.Connection) -> dict[str, Any]:
        """What a person needs to know: size on disk, input size, how many of the store's crops
        it lacks (new or changed since). Counts only, no list of ids: cheap enough for a view."""
        position = store_position(conn)
        fresh = int(len(self.ids) - self._stale(conn).sum()) if self._usable(position) else 0
        instances = int(conn.execute("SELECT COUNT(*) FROM crops").fetchone()[0])
        missing = instances - fresh  # every fresh slot's crop is in the store: a removal is a change
        return {"size": size_label(self.height, self.width), "bytes": self.nbytes, "cached": fresh,
                "instances": instances, "missing": missing, "up_to_date": missing == 0 and self.exists,
                "path": str(self.pixels_path)}

    def plan(self, conn: sqlite3.Connection, wanted: np.ndarray | None = None) -> dict[str, Any]:
        """What ``update`` would do: ids to decode, the bytes the file grows by, the disk free."""
        wanted = all_crop_ids(conn) if wanted is None else np.asarray(wanted, np.int64)
        have, position = self._fresh_ids(conn)  # none from another store's cache: it starts again
        todo = wanted[~np.isin(wanted, have)] if len(have) else wanted
        reused = int(np.isin(todo, self.ids).sum()) if self._usable(position) else 0
        grow = (len(todo) - reused) * self.crop_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder).free
        total = (len(self.ids) + len(todo) - reused) * self.crop_bytes
        memory = physical_memory()
        return {"todo": todo, "grow_bytes": int(grow), "free_bytes": int(free), "position": position,
                "fits": grow + DISK_MARGIN_BYTES <= free, "total_bytes": int(total), "memory_bytes": memory,
                "fits_memory": not memory or total <= MEMORY_SHARE * memory}

    def short_of_disk_sentence(self, plan: dict[str, Any]) -> str:
        return (f"The crop cache at {size_label(self.height, self.width)} needs {human_bytes(plan['grow_bytes'])} more "
                f"and only {human_bytes(plan['free_bytes'])} are free in {self.folder}; free some disk (keeping "
                f"{human_bytes(DISK_MARGIN_BYTES)} spare) or use --crop-cache off to decode the JPEGs every step.")

    # ---- building ----
    def update(self, project: Any, wanted: np.ndarray | None = None, ctx: JobContext | None = None,
               plan: dict[str, Any] | None = None) -> dict[str, Any]:
        """Decode what is missing or stale (all of the store's crops, or ``wanted``) into the file.

        One builder at a time (a lock file); a cancelled or killed build keeps what it finished."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._read_meta()  # another builder may have finished meanwhile
            conn = project.crops_conn
            plan = self.plan(conn, wanted) if plan is None else plan
            if plan["position"] is None:
                raise UserError("This project's crop store keeps no change log (it is read-only or was written by an "
                                "older idstudio); open it once writable to cache its crops.")
            if not plan["fits"]:
                raise UserError(self.short_of_disk_sentence(plan))
            store_id, seq = plan["position"]  # read before the crops: a change during the build is a later position
            if store_id != self.store_id:
                self.store_id, self.ids, self.seqs = store_id, np.zeros(0, np.int64), np.zeros(0, np.int64)
            todo = plan["todo"]
            t0 = time.perf_counter()
            slot_of = {int(i): k for k, i in enumerate(self.ids.tolist())} if len(todo) else {}
            spec = SimpleNamespace(height=self.height, width=self.width, resize="squash")
            fd = os.open(self.pixels_path, os.O_RDWR | os.O_CREAT, 0o644)
            done = 0
            try:
                ids, seqs = list(self.ids.tolist()), list(self.seqs.tolist())
                label = f"caching crops at {size_label(self.height, self.width)}"
                for start in range(0, len(todo), BUILD_BATCH):
                    if ctx is not None:
                        ctx.check_cancelled()
                        ctx.progress(done, len(todo), label)
                    chunk = todo[start:start + BUILD_BATCH].tolist()
                    images = decode_crops_uint8(project.crop_jpegs(chunk), spec).numpy()
                    new, refreshed = [], []
                    for k, instance in enumerate(chunk):
                        slot = slot_of.get(instance)
                        if slot is None:
                            slot = slot_of[instance] = len(ids) + len(new)
                            new.append(instance)
                        else:
                            refreshed.append(slot)
                        os.pwrite(fd, images[k].tobytes(), slot * self.crop_bytes)
                    # the chunk is written: only now does the index hold it
                    ids.extend(new)
                    seqs.extend([seq] * len(new))
                    for slot in refreshed:
                        seqs[slot] = seq
                    done += len(chunk)
                if ctx is not None:
                    ctx.progress(done, len(todo), label)
            finally:
                os.fsync(fd)
                os.close(fd)
                if done:
                    self.ids, self.seqs = np.array(ids, np.int64), np.array(seqs, np.int64)
                if done or not self.exists:
                    self._write_meta()
            return {"size": size_label(self.height, self.width), "decoded": done, "bytes": self.nbytes,
                    "cached": int(len(self.ids)), "seconds": round(time.perf_counter() - t0, 2)}

    def drop(self) -> int:
        """Remove the file; returns the bytes freed."""
        freed = self.nbytes
        for path in (self.meta_path, self.index_path, self.pixels_path):
            path.unlink(missing_ok=True)
        self.store_id, self.ids, self.seqs = None, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return freed

    def reader(self, slots: np.ndarray) -> "CachedCrops":
        return CachedCrops(self.pixels_path, self.height, self.width, slots)

    def warm(self) -> threading.Thread:
        """Read the whole file once, in a background thread and in file order (at the disk's
        sequential speed), so that the OS page cache holds it for the run's random gathers. (A
        read-ahead hint alone left a 6 GB file half on disk here.)"""
        def read_ahead() -> None:
            try:
                fd = os.open(self.pixels_path, os.O_RDONLY)
            except OSError:
                return
            buffer = bytearray(WARM_CHUNK)
            try:
                while os.readv(fd, [buffer]) == WARM_CHUNK:
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)

        thread = threading.Thread(target=read_ahead, name="idstudio-cache-warm", daemon=True)
        thread.start()
        return thread


def all_crop_ids(conn: sqlite3.Connection) -> np.ndarray:
    """Every instance id that has a crop, ascending."""
    rows = conn.execute("SELECT instance_id FROM crops ORDER BY instance_id").fetchall()
    return np.fromiter((r[0] for r in rows), np.int64, len(rows))


class CachedCrops:
    """The crops of a set of instances, read from a cache file: row k of the set is ``slots[k]``.

    ``read(rows)`` gathers them with one ``pread`` a crop, in file order, each straight into
    its place in a new (optionally pinned) uint8 (n, 3, H, W) tensor. Picklable (a worker or
    another process opens the file itself)."""

    def __init__(self, path: Path | str, height: int, width: int, slots: np.ndarray):
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.slots = np.asarray(slots, np.int64)
        self.crop_bytes = crop_bytes(height, width)
        self._fd: int | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, rows: np.ndarray | Iterable[int], pin: bool = False) -> torch.Tensor:
        rows = np.asarray(rows, np.int64)
        out = torch.empty((len(rows), 3, self.height, self.width), dtype=torch.uint8, pin_memory=pin)
        if not len(rows):
            return out
        flat = out.numpy().reshape(len(rows), self.crop_bytes)
        slots = self.slots[rows]
        order = np.argsort(slots, kind="stable")  # file order
        ordered = slots[order]
        # One call a run of consecutive slots, scattered to its crops' places: a batch grouped by
        # frame holds runs of a frame's people (ids are frame-major), so far fewer calls.
        cut = np.flatnonzero(np.diff(ordered) != 1) + 1
        starts, ends = np.r_[0, cut].tolist(), np.r_[cut, len(ordered)].tolist()
        fd, preadv, places = self._file(), os.preadv, order.tolist()
        for start, end, slot in zip(starts, ends, ordered[starts].tolist()):
            want = (end - start) * self.crop_bytes
            if preadv(fd, [flat[k] for k in places[start:end]], slot * self.crop_bytes) != want:
                raise UserError(f"The crop cache {self.path.name} is shorter than its index says; drop it "
                                "(`idstudio cache drop`) and build it again.")
        return out

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


def cacheable(spec: Any) -> bool:
    """A model card whose crops the cache can hold: squashed to its input size (a letterboxing
    outside model decodes as before)."""
    return getattr(spec, "resize", "squash") == "squash"


def find_reader(project: Any, ids: np.ndarray, spec: Any) -> CachedCrops | None:
    """A reader of an up-to-date cache holding every one of ``ids`` at the spec's size, else
    None (decode instead)."""
    if not cacheable(spec) or not hasattr(project, "crops_conn"):
        return None
    cache = CropCache.of(project, spec.height, spec.width)
    if not cache.exists:
        return None
    with project.lock:
        slots = cache.slots_for(project.crops_conn, np.asarray(ids, np.int64))
    return None if slots is None else cache.reader(slots)


def crop_store(project: Any, ids: np.ndarray, spec: Any, use_cache: bool = True) -> CropStore:
    """The crops of ``ids``: from the decoded-crop cache where it holds all of them fresh,
    else decoded from ``crops.db`` as they are needed."""
    ids = np.asarray(ids, np.int64)
    reader = find_reader(project, ids, spec) if use_cache else None
    if reader is None:
        return CropStore.load(project, ids, spec)
    CropCache.of(project, spec.height, spec.width).warm()
    return CropStore(ids, reader)


def ensure(project: Any, spec: Any, setting: str = "auto", ctx: JobContext | None = None) -> str:
    """Bring the cache at the spec's size up to date with the whole store before a job reads it
    (``setting``: auto, on or off). Returns one sentence for the log. ``auto`` falls back to decoding (and says why) where the disk is short or
    the store keeps no change log; ``on`` raises the sentence instead."""
    if setting == "off":
        return "Crop cache: off (JPEGs decoded every step)."
    if not cacheable(spec):
        return "Crop cache: not used by this model card (it letterboxes its crops); JPEGs decoded every step."
    cache = CropCache.of(project, spec.height, spec.width)
    with project.lock:
        plan = cache.plan(project.crops_conn)
    label = size_label(spec.height, spec.width)
    if not len(plan["todo"]):
        return f"Crop cache: up to date at {label} ({human_bytes(cache.nbytes)})."
    problem = None
    if plan["position"] is None:
        problem = "this project's crop store keeps no change log (read-only?)"
    elif not plan["fits"]:
        problem = cache.short_of_disk_sentence(plan)
    elif not plan["fits_memory"] and setting == "auto":
        problem = (f"the cache at {label} would be {human_bytes(plan['total_bytes'])}, more than half of this "
                   f"machine's {human_bytes(plan['memory_bytes'])} of memory, so its random reads would wait on the "
                   "disk (--crop-cache on uses it anyway, e.g. on a fast SSD; a smaller input size fits).")
    if problem is not None:
        if setting == "on":
            raise UserError(problem if problem.endswith(".") else f"No crop cache: {problem}.")
        return f"Crop cache: not built, JPEGs decoded every step: {problem}"
    if ctx is not None:
        ctx.log(f"Crop cache: decoding {len(plan['todo'])} crops once at {label} "
                f"({human_bytes(plan['grow_bytes'])} more on disk).")
    result = cache.update(project, ctx=ctx, plan=plan)
    return f"Crop cache: up to date at {label} ({human_bytes(result['bytes'])}, {result['seconds']:.1f} s to build)."


class Prefetcher:
    """``make(item)`` for each item, computed ``depth`` items ahead in one background thread,
    yielded in order. The thread is the only one that reads (no per-epoch process start-up);
    an error in it is raised in the consumer; leaving the loop early stops it."""

    def __init__(self, make: Callable[[Any], Any], items: Iterable[Any], depth: int = 4):
        self.make, self.items, self.depth = make, list(items), max(1, int(depth))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        out: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def work() -> None:
            try:
                for item in self.items:
                    if stop.is_set():
                        return
                    value = self.make(item)
                    while not stop.is_set():
                        try:
                            out.put((True, value), timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # raised again in the consumer
                out.put((False, exc))

        thread = threading.Thread(target=work, name="idstudio-prefetch", daemon=True)
        thread.start()
        try:
            for _ in range(len(self.items)):
                ok, value = out.get()
                if not ok:
                    raise value
                yield value
        finally:
            stop.set()
            thread.join(timeout=5)


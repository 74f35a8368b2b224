"""The project store: one folder, two SQLite files.

``idstudio.db`` holds the metadata (videos, frames, instances, datasets, mining rounds,
pairs, reviews, runs, checkpoints, evaluations) in WAL mode with a schema version and
migrations. ``crops.db`` holds each instance's crop once, as a JPEG blob: millions of small
files would be slow. All writes are batched in transactions.

Human decisions live in the append-only ``reviews`` table: rows are only ever inserted,
model output never touches them, and undo appends a new row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import sqlite_utils

from idstudio.core.errors import UserError
from idstudio.core.failures import user_error

DB_NAME = "idstudio.db"
CROPS_NAME = "crops.db"

# Each migration moves the schema from version i to i + 1. Never edit a released one.
MIGRATIONS: list[str] = [
    # 0 -> 1: the initial schema, designed for every issue's needs.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE videos (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,              -- video | frames | mot
        camera TEXT NOT NULL,
        fingerprint TEXT NOT NULL,       -- size+mtime+head hash: detects a second import
        width INTEGER, height INTEGER, fps REAL,
        n_frames INTEGER DEFAULT 0,      -- frames decoded (never the container's claim)
        stride INTEGER NOT NULL DEFAULT 1,
        detector TEXT NOT NULL,
        status TEXT NOT NULL,            -- importing | complete | failed
        error TEXT,
        last_frame INTEGER DEFAULT -1,   -- last frame whose instances are committed
        created_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX videos_fingerprint ON videos(fingerprint, detector, stride);
    CREATE TABLE frames (
        video_id INTEGER NOT NULL REFERENCES videos(id),
        frame INTEGER NOT NULL,
        path TEXT,                       -- image file for frame folders; NULL for video files
        PRIMARY KEY (video_id, frame)
    ) WITHOUT ROWID;
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        video_id INTEGER REFERENCES videos(id),   -- NULL for gallery images
        frame INTEGER,
        x REAL, y REAL, w REAL, h REAL,
        score REAL,
        source TEXT NOT NULL,            -- det | gt | hog | motion | gallery
        identity INTEGER,                -- ground truth where known
        camera TEXT
    );
    CREATE INDEX instances_video_frame ON instances(video_id, frame);
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,              -- market
        root TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE dataset_items (
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        instance_id INTEGER NOT NULL REFERENCES instances(id),
        split TEXT NOT NULL,             -- query | gallery | train
        filename TEXT NOT NULL,
        PRIMARY KEY (dataset_id, instance_id)
    ) WITHOUT ROWID;
    CREATE TABLE mining_rounds (
        id INTEGER PRIMARY KEY,
        run_id TEXT,
        checkpoint TEXT NOT NULL,        -- 'init' or a checkpoint path relative to the project
        params TEXT NOT NULL,            -- JSON
        n_pairs INTEGER, precision REAL, recall REAL, largest_component_share REAL,
        stats TEXT,                      -- JSON
        created_at REAL NOT NULL
    );
    CREATE TABLE pairs (
        id INTEGER PRIMARY KEY,
        round_id INTEGER NOT NULL REFERENCES mining_rounds(id),
        a INTEGER NOT NULL REFERENCES instances(id),   -- the earlier frame
        b INTEGER NOT NULL REFERENCES instances(id),
        gap INTEGER NOT NULL,
        similarity REAL NOT NULL,
        reliability REAL NOT NULL,
        component INTEGER
    );
    CREATE INDEX pairs_round ON pairs(round_id);
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        a INTEGER NOT NULL,              -- decisions are about instance pairs, so they
        b INTEGER NOT NULL,              -- survive re-mining; a < b always
        decision TEXT NOT NULL,          -- accept | reject | none (cleared by undo)
        action INTEGER NOT NULL,         -- rows written by one user action share this
        kind TEXT NOT NULL,              -- do | undo | redo
        pair_id INTEGER,
        reviewer TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX reviews_pair ON reviews(a, b);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,            -- running | finished | stopped | cancelled | failed
        config TEXT NOT NULL,
        device TEXT,
        epochs_done INTEGER DEFAULT 0,
        summary TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,              -- last | best
        path TEXT NOT NULL,              -- relative to the project folder
        epoch INTEGER,
        metrics TEXT,
        created_at REAL NOT NULL,
        UNIQUE (run_id, name)
    );
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY,
        checkpoint TEXT NOT NULL,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        metrics TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 1 -> 2: a cross-time split holds a video's later frames out of training and mining.
    """
    ALTER TABLE videos ADD COLUMN holdout_from INTEGER;  -- NULL: every frame trains
    """,
    # 2 -> 3: the model registry: model files from elsewhere, each with its model card.
    """
    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,              -- onnx | torchscript | isr | idstudio
        path TEXT NOT NULL,              -- absolute, or relative to the project folder when inside it
        sha256 TEXT NOT NULL,            -- of the file when registered: a changed file is refused
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,       -- with size: when unchanged the hash is not recomputed
        card TEXT NOT NULL,              -- JSON: input size, resize, normalisation, colour order, dim
        assumed TEXT,                    -- JSON list of card fields taken from defaults
        created_at REAL NOT NULL
    );
    """,
    # 3 -> 4: cross-video links between pseudo-tracklets (core/links.py). A link is named by
    # two representative instances so it survives re-mining; reviews of a link are rows of
    # `reviews` on that instance pair, like any other decision.
    """
    CREATE TABLE link_rounds (
        id INTEGER PRIMARY KEY,
        mining_round_id INTEGER REFERENCES mining_rounds(id),
        run_id TEXT,
        checkpoint TEXT NOT NULL,
        params TEXT NOT NULL,            -- JSON
        n_links INTEGER, precision REAL, recall REAL,
        stats TEXT,                      -- JSON
        created_at REAL NOT NULL
    );
    CREATE TABLE links (
        id INTEGER PRIMARY KEY,
        round_id INTEGER NOT NULL REFERENCES link_rounds(id),
        a INTEGER NOT NULL REFERENCES instances(id),   -- representative of the lower video's tracklet
        b INTEGER NOT NULL REFERENCES instances(id),
        a_members TEXT NOT NULL,         -- JSON instance ids of each tracklet, in time order
        b_members TEXT NOT NULL,
        similarity REAL NOT NULL,
        reliability REAL NOT NULL,
        kept INTEGER NOT NULL            -- 1: within the round's kept share
    );
    CREATE INDEX links_round ON links(round_id);
    """,
    # 4 -> 5: sites and imported tracklets. A site names the place a video (or a camera of a
    # tracklet set) was filmed: links are made only between cameras of one site. An imported
    # tracklet (a folder of crops from a tracker or a video-ReID set) is a run of instances
    # sharing `tracklet` in their video; NULL for instances of ordinary videos.
    """
    ALTER TABLE videos ADD COLUMN site TEXT;
    ALTER TABLE instances ADD COLUMN tracklet INTEGER;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

CROPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS crops (instance_id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);
"""
# Every insert, change and removal of a crop is logged by triggers (no writer can forget it),
# and the store has a random id: the decoded-crop cache (core/crop_cache.py) reads neither a
# slot decoded before its crop's last change nor a cache made from another crops.db.
CROP_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS crop_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS crop_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS crop_inserted AFTER INSERT ON crops
    BEGIN INSERT INTO crop_changes (instance_id) VALUES (NEW.instance_id); END;
CREATE TRIGGER IF NOT EXISTS crop_updated AFTER UPDATE ON crops
    BEGIN INSERT INTO crop_changes (instance_id) VALUES (OLD.instance_id), (NEW.instance_id); END;
CREATE TRIGGER IF NOT EXISTS crop_deleted AFTER DELETE ON crops
    BEGIN INSERT INTO crop_changes (instance_id) VALUES (OLD.instance_id); END;
"""


def _install_crop_log(conn: sqlite3.Connection) -> None:
    """The crop change log and the store's id (a read-only store without them keeps none, and
    its crops are decoded every time, as without a cache)."""
    try:
        conn.executescript(CROP_LOG_SCHEMA)
        if conn.execute("SELECT 1 FROM crop_meta WHERE key = 'store_id'").fetchone() is None:
            conn.execute("INSERT OR IGNORE INTO crop_meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))")
    except sqlite3.OperationalError:
        pass

INSTANCE_COLUMNS = ("id", "video_id", "frame", "x", "y", "w", "h", "score", "source", "identity", "camera", "tracklet")


@dataclass
class InstanceTable:
    """Instances as column arrays (vectorised access; no Python object per row)."""

    id: np.ndarray
    video_id: np.ndarray
    frame: np.ndarray
    boxes: np.ndarray  # (n, 4) x, y, w, h
    identity: np.ndarray  # -1 where unknown
    camera: list[str | None]
    tracklet: np.ndarray | None = None  # imported tracklet within its video, -1 for video detections

    def __post_init__(self) -> None:
        if self.tracklet is None:
            self.tracklet = np.full(len(self.id), -1, np.int64)

    def subset(self, rows: np.ndarray) -> "InstanceTable":
        """The given rows (indices), in that order."""
        return InstanceTable(self.id[rows], self.video_id[rows], self.frame[rows], self.boxes[rows],
                             self.identity[rows], [self.camera[int(r)] for r in rows], self.tracklet[rows])

    def __len__(self) -> int:
        return len(self.id)

    def rows_of(self, ids) -> np.ndarray:
        """The row of each instance id, -1 for ids not in this table (one sort, no dict)."""
        ids = np.asarray(ids, np.int64)
        if not len(self.id):
            return np.full(len(ids), -1, np.int64)
        order = np.argsort(self.id, kind="stable")
        rows = order[np.minimum(np.searchsorted(self.id[order], ids), len(order) - 1)]
        return np.where(self.id[rows] == ids, rows, -1)


# How long a writer waits for another process's write transaction (an import's batch, a
# mining round) before it gives up with one sentence. Batches are short, so writers take turns.
BUSY_TIMEOUT_S = 30.0


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Project:
    """An open project folder. Thread-safe for the GUI's workers: one lock per connection."""

    def __init__(self, root: Path, conn: sqlite3.Connection, crops_conn: sqlite3.Connection):
        self.root = root
        self.conn = conn
        self.crops_conn = crops_conn
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()

    # ---- lifecycle -----------------------------------------------------------------
    @classmethod
    def create(cls, root: Path | str) -> "Project":
        root = Path(root)
        if (root / DB_NAME).exists():
            raise UserError(f"{root} is already an idstudio project; open it instead.")
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} exists and is not a folder; choose another project path.")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"Cannot create project folder {root}: {exc.strerror}.") from None
        return cls.open(root, create=True)

    @classmethod
    def open(cls, root: Path | str, create: bool = False) -> "Project":
        root = Path(root)
        db_path = root / DB_NAME
        if not create and not db_path.exists():
            raise UserError(f"{root} is not an idstudio project (no {DB_NAME}); create one with `idstudio init {root}`.")
        try:
            conn = _connect(db_path)
            crops_conn = _connect(root / CROPS_NAME)
            crops_conn.executescript(CROPS_SCHEMA)
            _install_crop_log(crops_conn)
        except sqlite3.DatabaseError as exc:
            raise user_error(exc, root) or UserError(f"Cannot open the project database in {root}: {exc}.") from None
        project = cls(root, conn, crops_conn)
        project._migrate()
        try:
            (root / "runs").mkdir(exist_ok=True)
        except OSError as exc:
            raise user_error(exc, root) or exc from None
        project._mark_interrupted_runs()
        return project

    def _mark_interrupted_runs(self) -> None:
        """A run marked running whose trainer is gone (a kill, a crash) becomes 'interrupted'."""
        from idstudio.core.runs import mark_interrupted

        try:
            with self.lock:
                mark_interrupted(self.conn, self.runs_dir)
        except (sqlite3.Error, OSError):
            pass  # a read-only or busy project: the status is fixed at the next open

    @classmethod
    def open_or_create(cls, root: Path | str) -> "Project":
        root = Path(root)
        return cls.open(root) if (root / DB_NAME).exists() else cls.create(root)

    def close(self) -> None:
        with self.lock:
            self.conn.close()
            self.crops_conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.lock:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"This project was written by a newer idstudio (schema {version} > {SCHEMA_VERSION}); upgrade idstudio to open it."
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with self.transaction():
                    for statement in _statements(MIGRATIONS[target - 1]):
                        self.conn.execute(statement)
                    self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(target),))

    def schema_version(self) -> int:
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    # ---- transactions ----------------------------------------------------------------
    def transaction(self, conn: sqlite3.Connection | None = None):
        return _Transaction(conn or self.conn, self.lock)

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            cursor = self.conn.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict = ()) -> Any:
        with self.lock:
            row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # ---- paths -------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        path = self.root / "cache"
        path.mkdir(exist_ok=True)
        return path

    # ---- videos and frames ------------------------------------------------------------------
    def add_video(self, **fields: Any) -> int:
        fields.setdefault("created_at", time.time())
        fields.setdefault("status", "importing")
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.transaction():
            cursor = self.conn.execute(f"INSERT INTO videos ({columns}) VALUES ({marks})", tuple(fields.values()))
        return int(cursor.lastrowid)

    def update_video(self, video_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.conn.execute(f"UPDATE videos SET {sets} WHERE id = ?", (*fields.values(), video_id))

    def videos(self) -> list[dict[str, Any]]:
        rows = self.query(
            """SELECT v.*, (SELECT COUNT(*) FROM instances i WHERE i.video_id = v.id) AS n_instances
               FROM videos v ORDER BY v.id"""
        )
        return [dict(r) for r in rows]

    def video(self, video_id: int) -> dict[str, Any]:
        rows = self.query("SELECT * FROM videos WHERE id = ?", (video_id,))
        if not rows:
            raise UserError(f"There is no video with id {video_id} in this project.")
        return dict(rows[0])

    def frame_paths(self, video_id: int) -> dict[int, str | None]:
        return {r[0]: r[1] for r in self.query("SELECT frame, path FROM frames WHERE video_id = ? ORDER BY frame", (video_id,))}

    # ---- instances and crops ------------------------------------------------------------------
    def add_frames_and_instances(
        self,
        video_id: int | None,
        frames: Iterable[tuple[int, str | None]],
        instances: Sequence[dict[str, Any]],
        crops: Sequence[bytes],
        last_frame: int | None = None,
    ) -> list[int]:
        """Write one batch atomically: frame index rows, instances and their crops.

        The crops file is committed first; the metadata commit (which also advances the
        video's ``last_frame``) is what makes the batch visible, so a kill between the two
        leaves at worst unreferenced crop rows, never instances without crops.
        """
        if len(instances) != len(crops):
            raise ValueError("one crop per instance")
        with self.lock, self.transaction():
            # BEGIN IMMEDIATE holds the project's write lock from here to the commit, so the
            # ids below are this writer's alone, in this process and in any other (a second
            # import, the GUI, a second window). Every writer writes crops only while holding
            # it, so a crop row past MAX(id) is an orphan of a killed batch: replaced, never
            # one that belongs to an instance.
            start = (self.conn.execute("SELECT MAX(id) FROM instances").fetchone()[0] or 0) + 1
            ids = list(range(start, start + len(instances)))
            if ids:
                with self.transaction(self.crops_conn):
                    self.crops_conn.execute("DELETE FROM crops WHERE instance_id BETWEEN ? AND ?", (ids[0], ids[-1]))
                    self.crops_conn.executemany("INSERT INTO crops (instance_id, jpeg) VALUES (?, ?)", zip(ids, crops))
            if video_id is not None:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO frames (video_id, frame, path) VALUES (?, ?, ?)",
                    ((video_id, f, p) for f, p in frames),
                )
            self.conn.executemany(
                "INSERT INTO instances (id, video_id, frame, x, y, w, h, score, source, identity, camera, tracklet)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (i, video_id, d.get("frame"), d["x"], d["y"], d["w"], d["h"], d.get("score", 1.0),
                     d["source"], d.get("identity"), d.get("camera"), d.get("tracklet"))
                    for i, d in zip(ids, instances)
                ),
            )
            if video_id is not None and last_frame is not None:
                self.conn.execute("UPDATE videos SET last_frame = ? WHERE id = ?", (last_frame, video_id))
        return ids

    def instance_table(self, video_id: int | None = None, instance_ids: Sequence[int] | None = None,
                       dataset_id: int | None = None) -> InstanceTable:
        """Instances as column arrays, ordered by id (or by the given ids).

        Read in chunks straight into numpy columns (cameras interned): a million instances
        take ~50 MB, never a million Python row objects."""
        cols = "i.id, i.video_id, i.frame, i.x, i.y, i.w, i.h, i.identity, i.camera, i.tracklet"
        if instance_ids is not None:
            ids = [int(i) for i in instance_ids]
            with self.lock:
                self._fill_wanted(ids)
                table = self._table_from(self.conn.execute(
                    f"SELECT {cols} FROM _wanted w JOIN instances i ON i.id = w.id ORDER BY w.pos"))
            if len(table) != len(ids):
                raise UserError(f"{len(ids) - len(table)} of the requested instances do not exist in this project.")
            return table
        if dataset_id is not None:
            sql, params = (f"SELECT {cols} FROM instances i JOIN dataset_items d ON d.instance_id = i.id "
                           "WHERE d.dataset_id = ? ORDER BY i.id", (dataset_id,))
        elif video_id is not None:
            sql, params = f"SELECT {cols} FROM instances i WHERE i.video_id = ? ORDER BY i.id", (video_id,)
        else:
            sql, params = f"SELECT {cols} FROM instances i WHERE i.video_id IS NOT NULL ORDER BY i.id", ()
        with self.lock:
            return self._table_from(self.conn.execute(sql, params))

    @staticmethod
    def _table_from(cursor: sqlite3.Cursor, chunk: int = 65536) -> InstanceTable:
        ints: list[np.ndarray] = []
        boxes: list[np.ndarray] = []
        camera: list[str | None] = []
        names: dict[str | None, str | None] = {}
        while True:
            rows = cursor.fetchmany(chunk)
            if not rows:
                break
            n = len(rows)
            ints.append(np.array([(r[0], -1 if r[1] is None else r[1], -1 if r[2] is None else r[2],
                                   -1 if r[7] is None else r[7], -1 if r[9] is None else r[9]) for r in rows],
                                 dtype=np.int64).reshape(n, 5))
            boxes.append(np.array([(r[3], r[4], r[5], r[6]) for r in rows], dtype=np.float32).reshape(n, 4))
            camera.extend(names.setdefault(r[8], r[8]) for r in rows)
        cols = np.concatenate(ints) if ints else np.zeros((0, 5), np.int64)
        return InstanceTable(id=cols[:, 0].copy(), video_id=cols[:, 1].copy(), frame=cols[:, 2].copy(),
                             boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
                             identity=cols[:, 3].copy(), camera=camera, tracklet=cols[:, 4].copy())

    def _fill_wanted(self, ids: list[int]) -> None:
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS _wanted (pos INTEGER PRIMARY KEY, id INTEGER)")
        self.conn.execute("DELETE FROM _wanted")
        self.conn.executemany("INSERT INTO _wanted (pos, id) VALUES (?, ?)", enumerate(ids))

    def instance(self, instance_id: int) -> dict[str, Any]:
        rows = self.query("SELECT * FROM instances WHERE id = ?", (instance_id,))
        if not rows:
            raise UserError(f"There is no instance with id {instance_id} in this project.")
        return dict(rows[0])

    def count(self, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM {table} {('WHERE ' + where) if where else ''}", params))

    def crop_jpegs(self, instance_ids: Sequence[int]) -> list[bytes]:
        """JPEG bytes of the given instances' crops, in the given order (one query)."""
        ids = [int(i) for i in instance_ids]
        if not ids:
            return []
        with self.lock:
            found: dict[int, bytes] = {}
            for start in range(0, len(ids), 900):  # SQLite's variable limit
                chunk = ids[start:start + 900]
                marks = ",".join("?" * len(chunk))
                found.update(self.crops_conn.execute(
                    f"SELECT instance_id, jpeg FROM crops WHERE instance_id IN ({marks})", chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise UserError(f"The crops of {len(missing)} instances are missing from {CROPS_NAME}; re-import their video.")
        return [found[i] for i in ids]

    def iter_crop_jpegs(self, instance_ids: Sequence[int], batch: int = 512) -> Iterator[tuple[list[int], list[bytes]]]:
        for start in range(0, len(instance_ids), batch):
            chunk = list(instance_ids[start:start + batch])
            yield chunk, self.crop_jpegs(chunk)

    # ---- labelled datasets --------------------------------------------------------------------
    def add_dataset(self, name: str, kind: str, root: str | None) -> int:
        if self.scalar("SELECT id FROM datasets WHERE name = ?", (name,)) is not None:
            raise UserError(f"A dataset named {name!r} already exists in this project; import it under another name.")
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO datasets (name, kind, root, created_at) VALUES (?, ?, ?, ?)", (name, kind, root, time.time())
            )
        return int(cursor.lastrowid)

    def add_dataset_items(self, dataset_id: int, items: Iterable[tuple[int, str, str]]) -> None:
        """items: (instance_id, split, filename)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO dataset_items (dataset_id, instance_id, split, filename) VALUES (?, ?, ?, ?)",
                ((dataset_id, i, s, f) for i, s, f in items),
            )

    def datasets(self) -> list[dict[str, Any]]:
        rows = self.query(
            """SELECT d.*,
                 SUM(CASE WHEN di.split = 'query' THEN 1 ELSE 0 END) AS n_query,
                 SUM(CASE WHEN di.split = 'gallery' THEN 1 ELSE 0 END) AS n_gallery,
                 SUM(CASE WHEN di.split = 'train' THEN 1 ELSE 0 END) AS n_train
               FROM datasets d LEFT JOIN dataset_items di ON di.dataset_id = d.id
               GROUP BY d.id ORDER BY d.id"""
        )
        return [dict(r) for r in rows]

    def dataset(self, name_or_id: str | int | None = None) -> dict[str, Any]:
        """A labelled dataset by name or id; None means the only (or first) one."""
        all_sets = self.datasets()
        if not all_sets:
            raise UserError("This project has no labelled dataset; import one with `idstudio import-market PROJECT DIR`.")
        if name_or_id is None:
            return all_sets[0]
        for d in all_sets:
            if str(d["id"]) == str(name_or_id) or d["name"] == name_or_id:
                return d
        names = ", ".join(d["name"] for d in all_sets)
        raise UserError(f"There is no dataset {name_or_id!r} in this project; it has: {names}.")

    def dataset_split(self, dataset_id: int) -> dict[str, InstanceTable]:
        """The dataset's items by split ('query', 'gallery', 'train'), each ordered by id."""
        cols = "i.id, i.video_id, i.frame, i.x, i.y, i.w, i.h, i.identity, i.camera, i.tracklet"
        out = {}
        for split in ("query", "gallery", "train"):
            with self.lock:
                out[split] = self._table_from(self.conn.execute(
                    f"SELECT {cols} FROM dataset_items d JOIN instances i ON i.id = d.instance_id "
                    "WHERE d.dataset_id = ? AND d.split = ? ORDER BY d.instance_id", (dataset_id, split)))
        return out

    # ---- summary -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "project": str(self.root),
            "schema_version": self.schema_version(),
            "videos": self.count("videos"),
            "videos_incomplete": self.count("videos", "status != 'complete'"),
            "frames": self.count("frames"),
            "instances": self.count("instances", "video_id IS NOT NULL"),
            "datasets": self.count("datasets"),
            "gallery_images": self.count("dataset_items"),
            "mining_rounds": self.count("mining_rounds"),
            "pairs": self.count("pairs"),
            "reviews": self.count("reviews"),
            "runs": self.count("runs"),
        }


def _statements(script: str) -> list[str]:
    """Split a migration into statements (comments dropped) so they run in one transaction."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error) under the project's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock):
        self.conn = conn
        self.lock = lock
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.outer = not self.conn.in_transaction
        if self.outer:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self.lock.release()
                raise _as_user_error(exc, self.conn) from None
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.outer:
                if exc_type:
                    _rollback(self.conn)
                else:
                    try:
                        self.conn.execute("COMMIT")
                    except sqlite3.Error as commit_exc:
                        _rollback(self.conn)
                        raise _as_user_error(commit_exc, self.conn) from None
        finally:
            self.lock.release()
        if exc is not None and isinstance(exc, sqlite3.Error):
            translated = _as_user_error(exc, self.conn, none_if_unknown=True)
            if translated is not None:
                raise translated from None


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # SQLite rolls back itself when the connection closes


def _as_user_error(exc: sqlite3.Error, conn: sqlite3.Connection, none_if_unknown: bool = False):
    try:
        where = Path(conn.execute("PRAGMA database_list").fetchone()[2]).parent
    except (sqlite3.Error, TypeError):
        where = None
    translated = user_error(exc, where)
    if translated is None and not none_if_unknown:
        return exc
    return translated


def to_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o))


class opened:
    """``with opened(project_or_folder) as project:`` — services accept either an open
    Project (used as is) or a folder (opened here and closed after)."""

    def __init__(self, project: "Project | Path | str", create: bool = False):
        self.given = project
        self.create = create
        self.project: Project | None = None

    def __enter__(self) -> Project:
        if isinstance(self.given, Project):
            return self.given
        self.project = Project.open_or_create(self.given) if self.create else Project.open(self.given)
        return self.project

    def __exit__(self, *exc: Any) -> None:
        if self.project is not None:
            self.project.close()

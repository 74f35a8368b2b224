"""The Pairs view: mine pairs (a job) and review them, keyboard first.

Every decision is written through ``services.review`` the moment it is made (its own
committed transaction). Undo and redo go through a ``QUndoStack`` whose commands call
``review.undo`` / ``review.redo``, which append rows: history is kept, nothing deleted.
Crops come from the shared :class:`ThumbnailLoader`, source frames from two
:class:`FrameDecoder` threads (one per side), so a keypress never waits on decoding. The card and
grid are in ``gui/pair_widgets.py``; what the Links tab shares, in ``gui/review_widgets.py``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtGui import QAction, QImage, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from idstudio.gui import shortcuts
from idstudio.gui.imaging import FrameDecoder, ThumbnailLoader
from idstudio.gui.pair_widgets import PairCard, PairDelegate, PairGridModel, PairKeys
from idstudio.gui.review_widgets import ReviewCommand, review_buttons, review_slots
from idstudio.gui.views.data import FrameCanvas
from idstudio.services import review

ORDERS = (("Least reliable first", "reliability"), ("Random (seeded)", "random"), ("By video and frame", "video"))
FILTERS = (("Undecided", "undecided"), ("All", "all"), ("Accepted", "accept"), ("Rejected", "reject"), ("Decided", "decided"))


def mine_config_class():
    """``services.mining.MineConfig`` where it exists (the form is generated from it)."""
    try:
        from idstudio.services import mining
    except ModuleNotFoundError as exc:
        if exc.name in ("idstudio.services.mining",):
            return None
        raise
    return getattr(mining, "MineConfig", None)


def _job_mine(root, config, ctx):
    from idstudio.services import mining

    return mining.mine(root, config, ctx)


# ---- the view --------------------------------------------------------------------------------------------
class PairsView(QWidget):
    title = "Pairs"

    def __init__(self, session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.queue: review.ReviewQueue | None = None
        self.position = 0
        self.relinking = False
        self.relink_candidates: list[int] = []
        self.undo_stack = QUndoStack(self)
        self._videos: dict[int, dict] = {}
        self._boxes: dict[tuple[int, int], list] = {}
        self._stale = False  # the queue is reloaded when the view is next shown
        self._rows_of: PairKeys | None = None  # queue positions by pair key
        self._round_keys: tuple[int | None, PairKeys] | None = None  # (round, key -> pairs)
        self.mine_handle = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.loader = ThumbnailLoader(size=QSize(160, 320), parent=self)
        self.loader.loaded.connect(self._thumbs_loaded)
        self.loader.start()
        self.decoders = (FrameDecoder(cache=32, max_width=960, parent=self), FrameDecoder(cache=32, max_width=960, parent=self))
        for side, dec in enumerate(self.decoders):
            dec.frame_ready.connect(partial(self._frame_ready, side))
            dec.start()

        outer = QHBoxLayout(self)
        outer.setContentsMargins(10, 10, 10, 10)
        self.tabs = QTabWidget(self)
        self.tabs.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer.addWidget(self.tabs)
        split = QSplitter(Qt.Orientation.Horizontal, self.tabs)
        self.tabs.addTab(split, "Pairs within a video")

        # left: mining and the queue's order/filters/counts
        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        mine_box = QGroupBox("Mining", left)
        mv = QVBoxLayout(mine_box)
        self.mine_form = None
        cls = mine_config_class()
        if cls is not None:
            from idstudio.gui.config_form import ConfigForm

            self.mine_form = ConfigForm(cls, mine_box)
            scroll = QScrollArea(mine_box)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(self.mine_form)
            scroll.setMinimumHeight(160)
            mv.addWidget(scroll, 1)
            self.mine_scroll = scroll
            self.checkpoint_box = self._checkpoint_choice()
            from idstudio.gui.form_resolution import FormResolution
            from idstudio.services import recipe

            # the init model's start is training's (services.recipe): shown under its auto fields
            self.mine_form.set_chooser("weights", list(recipe.WEIGHT_CHOICES), check=recipe.check_weights,
                                       file_filter=recipe.WEIGHT_FILES)
            self.mine_resolution = FormResolution(self.session, self.mine_form, recipe.mine_resolve_job, self)
        else:
            note = QLabel("Mining becomes available when the mining service is installed "
                          "(services.mining.MineConfig).", mine_box)
            note.setWordWrap(True)
            note.setObjectName("Muted")
            mv.addWidget(note)
        self.mine_button = QPushButton("Mine pairs", mine_box)
        self.mine_button.setObjectName("Primary")
        self.mine_button.setEnabled(cls is not None)
        self.mine_button.clicked.connect(self.start_mining)
        mv.addWidget(self.mine_button)
        lv.addWidget(mine_box, 1)

        queue_box = QGroupBox("Review queue", left)
        qf = QFormLayout(queue_box)
        self.order_combo = QComboBox(queue_box)
        for label, _ in ORDERS:
            self.order_combo.addItem(label)
        self.filter_combo = QComboBox(queue_box)
        for label, _ in FILTERS:
            self.filter_combo.addItem(label)
        from superqt import QDoubleRangeSlider

        self.reliability_range = QDoubleRangeSlider(Qt.Orientation.Horizontal, queue_box)
        self.reliability_range.setRange(0.0, 1.0)
        self.reliability_range.setValue((0.0, 1.0))
        self.similarity_range = QDoubleRangeSlider(Qt.Orientation.Horizontal, queue_box)
        self.similarity_range.setRange(-1.0, 1.0)
        self.similarity_range.setValue((-1.0, 1.0))
        qf.addRow("Order", self.order_combo)
        qf.addRow("Show", self.filter_combo)
        for text, slider in (("Reliability", self.reliability_range), ("Similarity", self.similarity_range)):
            slider.setSingleStep(0.01)
            value = QLabel("", queue_box)
            value.setObjectName("Muted")
            value.setMinimumWidth(78)
            show = lambda v, label=value: label.setText(f"{v[0]:.2f} – {v[1]:.2f}")
            show(slider.value())
            slider.valueChanged.connect(show)
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(value)
            qf.addRow(text, row)
        self.counts_label = QLabel("", queue_box)
        self.counts_label.setWordWrap(True)
        self.progress = QProgressBar(queue_box)
        self.progress.setFixedHeight(12)
        self.progress.setTextVisible(False)
        qf.addRow(self.counts_label)
        qf.addRow(self.progress)
        lv.addWidget(queue_box)
        for combo in (self.order_combo, self.filter_combo):
            combo.currentIndexChanged.connect(lambda _=0: self.reload())
            combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        for slider in (self.reliability_range, self.similarity_range):
            slider.valueChanged.connect(lambda _v: self._filter_timer.start())
        from PySide6.QtCore import QTimer

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(250)
        self._filter_timer.timeout.connect(self.reload)

        # right: toolbar + card/grid
        right = QWidget(split)
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 0, 0, 0)
        bar = QHBoxLayout()
        from idstudio.gui.main_window import icon

        self.buttons = review_buttons(right, bar, ("accept", "reject", "skip", "undo", "redo", "relink", "grid"))
        bar.addStretch(1)
        self.position_label = QLabel("", right)
        self.position_label.setObjectName("Muted")
        bar.addWidget(self.position_label)
        rv.addLayout(bar)
        self.pages = QStackedWidget(right)
        self.card = PairCard(self.pages)
        self.card.candidate_clicked.connect(self._candidate_clicked)
        self.pages.addWidget(self.card)
        grid_page = QWidget(self.pages)
        gv = QVBoxLayout(grid_page)
        gv.setContentsMargins(0, 0, 0, 0)
        grid_bar = QHBoxLayout()
        self.grid_accept = QPushButton(icon("accept"), "Accept selected", grid_page)
        self.grid_accept.setObjectName("Accept")
        self.grid_reject = QPushButton(icon("reject"), "Reject selected", grid_page)
        self.grid_reject.setObjectName("Reject")
        self.grid_accept.clicked.connect(lambda: self.decide_selected("accept"))
        self.grid_reject.clicked.connect(lambda: self.decide_selected("reject"))
        hint = QLabel("Select many pairs (drag, Shift/Ctrl+click, Ctrl+A), then accept or reject them in one action.", grid_page)
        hint.setObjectName("Muted")
        hint.setWordWrap(True)  # unwrapped, it set the whole right side's minimum width (and squeezed the left)
        grid_bar.addWidget(self.grid_accept)
        grid_bar.addWidget(self.grid_reject)
        grid_bar.addWidget(hint, 1)
        gv.addLayout(grid_bar)
        self.grid = QListView(grid_page)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.grid_model = PairGridModel(self.loader, self)
        self.grid.setModel(self.grid_model)
        self.grid.setItemDelegate(PairDelegate(self.loader, self.grid))
        self.grid.setGridSize(PairDelegate.TILE + QSize(6, 6))
        self.grid.doubleClicked.connect(self._grid_open)
        gv.addWidget(self.grid, 1)
        self.pages.addWidget(grid_page)
        rv.addWidget(self.pages, 1)

        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        # the left side opens as wide as the mining form needs (its fields were clipped under the scroll bar)
        form_width = 0 if self.mine_form is None else (self.mine_form.minimumSizeHint().width()
                                                       + self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent) + 40)
        left_width = max(380, min(form_width, 480))
        split.setSizes([left_width, 1400 - left_width])
        if self.mine_form is not None:  # in a small window the review side gives way, not the form
            self.mine_scroll.setMinimumWidth(min(form_width - 40, 440))

        self.buttons["accept"].clicked.connect(lambda: self.decide_current("accept"))
        self.buttons["reject"].clicked.connect(lambda: self.decide_current("reject"))
        self.buttons["skip"].clicked.connect(self.skip)
        self.buttons["undo"].clicked.connect(self.undo_stack.undo)
        self.buttons["redo"].clicked.connect(self.undo_stack.redo)
        self.buttons["relink"].clicked.connect(self.toggle_relink)
        self.buttons["grid"].clicked.connect(self.toggle_grid)
        self.undo_stack.canUndoChanged.connect(self.buttons["undo"].setEnabled)
        self.undo_stack.canRedoChanged.connect(self.buttons["redo"].setEnabled)
        self.buttons["undo"].setEnabled(False)
        self.buttons["redo"].setEnabled(False)

        from idstudio.gui.views.links import LinksPanel

        self.links = LinksPanel(session, self.loader, self.tabs)
        self.tabs.addTab(self.links, "Links across videos")
        self.tabs.currentChanged.connect(self._tab_changed)
        self._actions: list[QAction] = []
        self._bind_keys()
        shortcuts.notifier.changed.connect(self._bind_keys)
        self._tab_changed(0)
        settings = QSettings()
        self.order_combo.setCurrentIndex(int(settings.value("pairs/order", 0) or 0))
        self.filter_combo.setCurrentIndex(int(settings.value("pairs/filter", 0) or 0))
        session.project_opened.connect(self._project_opened)
        session.project_closed.connect(self._project_opened)
        session.data_changed.connect(self._data_changed)
        self.reload()

    # ---- keys ---------------------------------------------------------------------------------------
    def _bind_keys(self) -> None:
        slots = {**review_slots(self), "review.relink": self.toggle_relink, "review.grid": self.toggle_grid}
        self._actions = shortcuts.bind(self, slots, self._actions)
        if hasattr(self, "tabs"):
            self._enable_tab_keys(self.tabs.currentIndex())
        for name, button in self.buttons.items():
            key = {"accept": "review.accept", "reject": "review.reject", "skip": "review.skip", "undo": "review.undo",
                   "redo": "review.redo", "relink": "review.relink", "grid": "review.grid"}[name]
            button.setToolTip(f"{shortcuts.DEFAULTS[key][1]} ({shortcuts.describe(key)})")
        self._update_hint()

    def _enable_tab_keys(self, index: int) -> None:
        """Both tabs bind the review keys; only the visible tab's are live (else Qt finds them ambiguous)."""
        for action in self._actions:
            action.setEnabled(index == 0)
        self.links.set_keys_enabled(index == 1)

    def _tab_changed(self, index: int) -> None:
        self._enable_tab_keys(index)
        (self if index == 0 else self.links).setFocus()

    def show_links(self) -> None:
        self.tabs.setCurrentIndex(1)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if self.relinking:
            if event.key() == Qt.Key.Key_Escape:
                self.toggle_relink()
                return
            digit = event.key() - Qt.Key.Key_1
            if 0 <= digit < 9 and digit < len(self.relink_candidates):
                self.relink_to(self.relink_candidates[digit])
                return
        super().keyPressEvent(event)

    # ---- loading --------------------------------------------------------------------------------------
    def _project_opened(self, *_: Any) -> None:
        self.refresh_checkpoints()
        self.undo_stack.clear()
        self._videos.clear()
        self._boxes.clear()
        self._round_keys = None
        self.loader.set_root(self.session.root)
        self.reload()

    def _data_changed(self, area: str) -> None:
        if area in ("runs", "models"):
            self.refresh_checkpoints()
        if area in ("pairs", "videos"):
            self._boxes.clear()
            self._round_keys = None
            self.reload()

    def reload(self) -> None:
        """Re-run the queue query with the current order and filters (keeps nothing stale).

        While the view is hidden it only marks the queue stale and loads when shown: opening a
        project (or mining in another view) never waits on a round of millions of pairs."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        self.loader.set_root(self.session.root) if self.loader.root != self.session.root else None
        project = self.session.project
        self.relinking = False
        if project is None:
            self.queue = None
        else:
            order = ORDERS[self.order_combo.currentIndex()][1]
            decision = FILTERS[self.filter_combo.currentIndex()][1]
            self.queue = review.review_queue(project, order=order, decision=decision,
                                             reliability=tuple(self.reliability_range.value()),
                                             similarity=tuple(self.similarity_range.value()), seed=0)
        self.position = 0
        self._rows_of = None
        self.grid_model.set_queue(self.queue)
        self.show_current()
        if self.queue is not None and self.queue.round_id is not None:
            self._round_key_counts()  # here, not on the first keypress

    def _update_counts(self) -> None:
        if self.queue is None or not self.queue.counts:
            self.counts_label.setText("No project open." if self.session.project is None else "")
            self.progress.setValue(0)
            return
        c = self.queue.counts
        decided = c["accept"] + c["reject"]
        self.counts_label.setText(
            f"<b>{c['total']:,}</b> pairs in round {self.queue.round_id}<br>"
            f"<span style='color:#2e9d57'>{c['accept']:,} accepted</span> · "
            f"<span style='color:#d1453b'>{c['reject']:,} rejected</span> · {c['undecided']:,} to review"
            if self.queue.round_id is not None else "No mining round yet: set the parameters and press Mine pairs."
        )
        self.progress.setRange(0, max(c["total"], 1))
        self.progress.setValue(decided)

    # ---- the card ------------------------------------------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        if self.queue is None or not (0 <= self.position < len(self.queue)):
            return None
        return self.queue.row(self.position)

    def _video(self, video_id: int) -> dict:
        if video_id not in self._videos:
            project = self.session.project
            video = project.video(video_id)
            video["frame_paths"] = project.frame_paths(video_id)
            self._videos[video_id] = video
        return self._videos[video_id]

    def _frame_boxes(self, video_id: int, frame: int) -> list:
        key = (video_id, frame)
        if key not in self._boxes:
            self._boxes[key] = [(r["id"], r["x"], r["y"], r["w"], r["h"], r["identity"] if r["identity"] is not None else -1)
                                for r in review.frame_instances(self.session.project, video_id, frame)]
        return self._boxes[key]

    def show_current(self) -> None:
        self._update_counts()
        row = self.current()
        n = len(self.queue) if self.queue is not None else 0
        self.position_label.setText(f"{min(self.position + 1, n)} / {n}" if n else "")
        for name in ("accept", "reject", "skip", "relink"):
            self.buttons[name].setEnabled(row is not None)
        card = self.card
        if row is None:
            card.title.setText("Nothing to review" if n == 0 else "End of the queue")
            card.figures.setText("Mine pairs, or change the filters on the left." if n == 0 else
                                 "Every pair in this list has been seen; change the filters to see more.")
            card.crop_a.set_image(None)
            card.crop_b.set_image(None)
            card.frame_a.set_frame(None, QSize(1, 1), [])
            card.frame_b.set_frame(None, QSize(1, 1), [])
            card.caption_a.setText("")
            card.caption_b.setText("")
            card.set_decision("none")
            return
        card.title.setText(f"Pair {row['pair_id']}: instance {row['a']} ↔ {row['b']}")
        card.figures.setText(f"similarity {row['similarity']:.3f}   ·   reliability {row['reliability']:.3f}   ·   "
                             f"gap {row['gap']} frames   ·   video {row['video_id']}")
        card.set_decision(row["decision"])
        for label, iid in ((card.crop_a, row["a"]), (card.crop_b, row["b"])):
            image = self.loader.cache.get(iid)
            label.set_image(image)
            if image is None:
                self.loader.request(iid)
        video = self._video(row["video_id"])
        card.caption_a.setText(f"frame {row['frame_a']}")
        card.caption_b.setText(f"frame {row['frame_b']}" + ("  —  relink: click the right person or press its number"
                                                              if self.relinking else ""))
        for side, (frame, iid) in enumerate(((row["frame_a"], row["a"]), (row["frame_b"], row["b"]))):
            self.decoders[side].request(video, frame)
        # prefetch the next pairs' crops
        if self.queue is not None:
            for k in range(self.position + 1, min(self.position + 4, len(self.queue))):
                for iid in (int(self.queue.a[k]), int(self.queue.b[k])):
                    if self.loader.cache.get(iid) is None:
                        self.loader.request(iid)

    def _thumbs_loaded(self, items) -> None:
        row = self.current()
        if row is None:
            return
        for iid, image in items:
            if iid == row["a"]:
                self.card.crop_a.set_image(image)
            elif iid == row["b"]:
                self.card.crop_b.set_image(image)

    def _frame_ready(self, side: int, video_id: int, frame: int, image: QImage) -> None:
        row = self.current()
        if row is None or video_id != row["video_id"] or frame != (row["frame_a"], row["frame_b"])[side]:
            return
        video = self._video(video_id)
        size = QSize(int(video["width"] or image.width()), int(video["height"] or image.height()))
        boxes = self._frame_boxes(video_id, frame)
        canvas = (self.card.frame_a, self.card.frame_b)[side]
        highlight = {row["a"] if side == 0 else row["b"]}
        if side == 1 and self.relinking:
            # number the candidates 1..9 by drawing their number as the "identity" label
            numbered = [(iid, x, y, w, h, -1) for iid, x, y, w, h, _ in boxes]
            canvas.set_frame(image, size, numbered, highlight)
            self._draw_numbers(canvas)
        else:
            canvas.set_frame(image, size, boxes, highlight)

    def _draw_numbers(self, canvas: FrameCanvas) -> None:
        canvas.boxes = [(iid, x, y, w, h, k + 1) for k, (iid, x, y, w, h, _) in enumerate(canvas.boxes)]
        canvas.update()

    def _update_hint(self) -> None:
        """The key hint under the card; built when the shortcuts are (re)bound, not per pair."""
        d = shortcuts.describe
        self.card.hint.setText(
            f"{d('review.accept')} accept · {d('review.reject')} reject · {d('review.skip')} skip · "
            f"{d('review.back')} back · {d('review.undo')} undo · {d('review.redo')} redo · "
            f"{d('review.relink')} relink · {d('review.grid')} grid")
        self.card.hint.setToolTip("Change the keys in Help ▸ Keyboard shortcuts.")

    # ---- decisions ---------------------------------------------------------------------------------------------
    def decide_current(self, decision: str) -> None:
        row = self.current()
        if row is None or self.session.project is None:
            return
        if self.relinking:
            self.toggle_relink()
        key = (min(row["a"], row["b"]), max(row["a"], row["b"]))
        fn = lambda project, r=row: review.decide(project, [(r["a"], r["b"])], decision, pair_ids=[r["pair_id"]])
        self.undo_stack.push(ReviewCommand(self, f"{decision} pair {row['pair_id']}", fn, [key], self.position))
        self.position += 1
        self.show_current()

    def decide_selected(self, decision: str) -> int:
        """Grid mode: one action for every selected pair."""
        if self.queue is None:
            return 0
        rows = sorted({i.row() for i in self.grid.selectionModel().selectedIndexes()})
        if not rows:
            return 0
        pairs = [(int(self.queue.a[r]), int(self.queue.b[r])) for r in rows]
        keys = [(min(a, b), max(a, b)) for a, b in pairs]
        ids = [int(self.queue.pair_id[r]) for r in rows]
        fn = lambda project: review.decide(project, pairs, decision, pair_ids=ids)
        self.undo_stack.push(ReviewCommand(self, f"{decision} {len(rows)} pairs", fn, keys, self.position))
        return len(rows)

    def relink_to(self, right_b: int) -> None:
        row = self.current()
        if row is None or right_b == row["b"]:
            self.toggle_relink()
            return
        a, wrong = row["a"], row["b"]
        keys = [(min(a, wrong), max(a, wrong)), (min(a, right_b), max(a, right_b))]
        fn = lambda project: review.relink(project, a, wrong, right_b)
        self.relinking = False
        self.undo_stack.push(ReviewCommand(self, f"relink {a} to {right_b}", fn, keys, self.position))
        self.position += 1
        self.show_current()

    def decisions_written(self, keys: list[tuple[int, int]], goto: int | None) -> None:
        """After a command wrote rows: refresh the touched pairs' decisions and the counts.

        Incremental: two indexed lookups per touched pair (its decision now, and before the
        action that just wrote it) instead of rebuilding the whole queue; the round's counts
        move by the pair's multiplicity in the round.
        """
        if self.queue is None:
            return
        project = self.session.project
        rows_of = self._queue_rows()
        in_round = self._round_key_counts()
        counts = dict(self.queue.counts)
        bucket = {"accept": "accept", "reject": "reject", "none": "undecided"}
        for key in dict.fromkeys(keys):
            new, old = self._decision_change(project, key)
            for i in rows_of.get(key, ()):
                self.queue.decision[i] = new
            m = in_round.get(key, 0)
            if m and counts and new != old:
                counts[bucket[old]] -= m
                counts[bucket[new]] += m
        self.queue.counts = counts
        if goto is not None:
            self.position = goto  # undo: back to the undone pair; redo: the pair after it
        if self.pages.currentIndex() == 1:
            self.grid_model.refresh()
        self.show_current()
        self.session.notify("reviews")

    @staticmethod
    def _decision_change(project, key: tuple[int, int]) -> tuple[str, str]:
        """(decision now, decision before the latest action that touched ``key``)."""
        a, b = key
        latest = project.query(
            "SELECT decision, action FROM reviews WHERE a = ? AND b = ? ORDER BY id DESC LIMIT 1", (a, b))
        if not latest:
            return "none", "none"
        new, action = latest[0][0], latest[0][1]
        before = project.scalar(
            "SELECT decision FROM reviews WHERE a = ? AND b = ? AND action < ? ORDER BY id DESC LIMIT 1", (a, b, action))
        return new, before or "none"

    def _queue_rows(self) -> "PairKeys":
        """Queue positions by pair key (built once per queue)."""
        if self._rows_of is None:
            a = self.queue.a if self.queue is not None else np.zeros(0, np.int64)
            b = self.queue.b if self.queue is not None else np.zeros(0, np.int64)
            self._rows_of = PairKeys(a, b)
        return self._rows_of

    def _round_key_counts(self) -> "PairKeys":
        """How many pairs of the queue's round each key has (the counts are over the whole round)."""
        round_id = self.queue.round_id if self.queue is not None else None
        if self._round_keys is None or self._round_keys[0] != round_id:
            a, b = (review.round_pair_columns(self.session.project, round_id) if round_id is not None
                    else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
            self._round_keys = (round_id, PairKeys(a, b, counts=True))
        return self._round_keys[1]

    def skip(self) -> None:
        if self.queue is not None and self.position < len(self.queue):
            self.position += 1
            self.show_current()

    def back(self) -> None:
        if self.position > 0:
            self.position -= 1
            self.show_current()

    def toggle_relink(self) -> None:
        row = self.current()
        if row is None:
            self.relinking = False
            return
        self.relinking = not self.relinking
        boxes = self._frame_boxes(row["video_id"], row["frame_b"])
        self.relink_candidates = [b[0] for b in boxes][:9]
        self.buttons["relink"].setText("Cancel relink" if self.relinking else "Relink…")
        self.show_current()

    def _candidate_clicked(self, instance_id: int) -> None:
        if self.relinking:
            self.relink_to(instance_id)

    def toggle_grid(self) -> None:
        grid = self.pages.currentIndex() == 0
        self.pages.setCurrentIndex(1 if grid else 0)
        self.buttons["grid"].setText("Card" if grid else "Grid")
        if grid:
            self.grid_model.refresh()  # decisions made in card mode
        else:
            self.show_current()

    def _grid_open(self, index) -> None:
        self.position = index.row()
        self.toggle_grid()

    # ---- mining ------------------------------------------------------------------------------------------------
    def _checkpoint_choice(self) -> QComboBox | None:
        """The form's free-text checkpoint field becomes a choice of the latest run, each run,
        each registered model (``idstudio model add``) and the random init; the hidden text
        field stays what the config is built from."""
        edit = self.mine_form.widgets.get("checkpoint") if self.mine_form is not None else None
        if edit is None:
            return None
        box = QComboBox(self.mine_form)
        box.setObjectName("mine_checkpoint")
        box.setToolTip(edit.toolTip() + "\nRegistered models from elsewhere (ONNX, TorchScript, the ISR release) "
                       "mine as teachers.")
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(12)
        edit.parentWidget().layout().replaceWidget(edit, box)
        edit.hide()
        box.currentIndexChanged.connect(lambda _i: edit.setText(box.currentData() or ""))
        edit.textChanged.connect(self._checkpoint_text_changed)
        self.checkpoint_box = box
        self.refresh_checkpoints()
        return box

    def _checkpoint_text_changed(self, text: str) -> None:
        box = getattr(self, "checkpoint_box", None)
        if box is None or (box.currentData() or "") == text:
            return
        i = box.findData(text)
        if i < 0:  # a value from a preset or a file: keep it choosable
            box.addItem(text, text)
            i = box.count() - 1
        box.blockSignals(True)
        box.setCurrentIndex(i)
        box.blockSignals(False)

    def refresh_checkpoints(self) -> None:
        box = getattr(self, "checkpoint_box", None)
        if box is None:
            return
        keep = self.mine_form.widgets["checkpoint"].text()
        box.blockSignals(True)
        box.clear()
        box.addItem("latest run's best (else init)", "")
        project = self.session.project
        if project is not None:
            from idstudio.services import model_registry

            for run in project.query("SELECT id, status FROM runs WHERE kind = 'train' ORDER BY created_at DESC"):
                if any((project.runs_dir / run["id"] / n).is_file() for n in ("best.pt", "last.pt")):
                    box.addItem(f"run {run['id']} ({run['status']})", run["id"])
            for m in model_registry.list_models(project):
                box.addItem(f"{m['name']} ({m['kind']}, {m['card']['height']}x{m['card']['width']})", m["ref"])
        box.addItem("init (random, or ImageNet when cached)", "init")
        box.blockSignals(False)
        self._checkpoint_text_changed(keep)
        if box.findData(keep) >= 0:
            box.setCurrentIndex(box.findData(keep))

    def start_mining(self):
        if self.session.project is None or self.mine_form is None:
            return None
        config = self.mine_form.config()
        self.mine_button.setEnabled(False)
        handle = self.session.start_job("Mine pairs", _job_mine, self.session.root, config, changes=("pairs",))
        runner = self.session.runner

        def ended(job_id, *_):
            if job_id == handle.job_id:
                self.mine_button.setEnabled(True)
        for sig in (runner.finished, runner.failed, runner.cancelled):
            sig.connect(ended)
        self.mine_handle = handle
        return handle

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self.reload()
        (self if self.tabs.currentIndex() == 0 else self.links).setFocus()

    def save_settings(self) -> None:
        settings = QSettings()
        settings.setValue("pairs/order", self.order_combo.currentIndex())
        settings.setValue("pairs/filter", self.filter_combo.currentIndex())

    def shutdown(self) -> None:
        self.loader.stop()
        for dec in self.decoders:
            dec.stop()

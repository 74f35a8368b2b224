"""Review cross-video links (the Pairs view's "Links across videos" tab), keyboard first.

A link is shown as two strips of crops, a few members of each tracklet spread over its
time span, with both videos and frame spans. Accept, reject, skip, back, undo and redo use
the same keys as pairs; X starts a split: the strips get numbers, 1-8 picks the crop where
a *second* person begins in the active strip (Tab switches strips), Esc cancels. Every
decision goes through ``services.review`` (accept/reject of the link's representative
pair) or ``services.links.split_tracklet`` (rejects the mined pairs across the cut), each
one append-only action that undo reverts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QImage, QUndoStack
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from idstudio.gui import shortcuts
from idstudio.gui.review_widgets import CropLabel, ReviewCommand, card_header, review_buttons, review_slots, show_decision
from idstudio.services import links as link_service
from idstudio.services import review
from idstudio.services.instances import linkable_sites

STRIP = 8  # crops shown per tracklet
LINK_ORDERS = (("Least reliable first", "reliability"), ("Most similar first", "similarity"))
# (label, decision, only the links training uses): by default the links that teach the model, least sure first
LINK_FILTERS = (("Undecided, used in training", "none", True), ("Undecided", "none", False), ("All", "all", False),
                ("Accepted", "accept", False), ("Rejected", "reject", False))


def _job_link(root, config, ctx):
    return link_service.link(root, config, ctx)


def strip_positions(n_members: int, k: int = STRIP) -> list[int]:
    """Which members a strip shows: ``k`` spread evenly over the tracklet (all when fewer)."""
    if n_members <= k:
        return list(range(n_members))
    return sorted(set(np.linspace(0, n_members - 1, k).round().astype(int).tolist()))


class LinkStrip(QWidget):
    """One tracklet: a caption and a row of crops, numbered while splitting."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.caption = QLabel("", self)
        self.caption.setObjectName("Muted")
        layout.addWidget(self.caption)
        row = QHBoxLayout()
        self.crops: list[CropLabel] = []
        self.numbers: list[QLabel] = []
        for _ in range(STRIP):
            cell = QVBoxLayout()
            crop = CropLabel(self)
            crop.setMinimumSize(64, 128)
            number = QLabel("", self)
            number.setAlignment(Qt.AlignmentFlag.AlignCenter)
            number.setObjectName("Muted")
            cell.addWidget(crop, 1)
            cell.addWidget(number)
            row.addLayout(cell, 1)
            self.crops.append(crop)
            self.numbers.append(number)
        layout.addLayout(row, 1)
        self.members: list[int] = []  # instance ids shown, in order
        self.positions: list[int] = []  # their positions in the tracklet

    def show_members(self, members: list[int], caption: str, cache) -> list[int]:
        """Show a spread of ``members``; returns the ids whose crops are not cached yet."""
        self.positions = strip_positions(len(members))
        self.members = [members[p] for p in self.positions]
        self.caption.setText(caption)
        missing = []
        for k, crop in enumerate(self.crops):
            iid = self.members[k] if k < len(self.members) else None
            image = cache.get(iid) if iid is not None else None
            crop.set_image(image)
            crop.setVisible(iid is not None)
            self.numbers[k].setVisible(iid is not None)
            if iid is not None and image is None:
                missing.append(iid)
        self.set_numbered(False)
        return missing

    def set_image(self, iid: int, image: QImage) -> None:
        for k, member in enumerate(self.members):
            if member == iid:
                self.crops[k].set_image(image)

    def set_numbered(self, on: bool, active: bool = False) -> None:
        for k, number in enumerate(self.numbers):
            number.setText(str(k + 1) if on and k > 0 else "")
        self.caption.setStyleSheet("font-weight: 600; color: #1f6feb;" if on and active else "")


class LinksPanel(QWidget):
    """The link review queue and card."""

    def __init__(self, session, loader, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.loader = loader
        self.rows: list[dict[str, Any]] = []
        self.position = 0
        self.splitting = False
        self.split_side = 0
        self.undo_stack = QUndoStack(self)
        self.link_handle = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        loader.loaded.connect(self._thumbs_loaded)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        bar = QHBoxLayout()
        self.buttons = review_buttons(self, bar, ("accept", "reject", "skip", "undo", "redo", "split"))
        bar.addSpacing(16)
        self.order_combo, self.filter_combo = QComboBox(self), QComboBox(self)
        for combo, items in ((self.order_combo, LINK_ORDERS), (self.filter_combo, LINK_FILTERS)):
            for label, *_ in items:
                combo.addItem(label)
            combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            combo.currentIndexChanged.connect(lambda _=0: self.reload())
            bar.addWidget(combo)
        bar.addStretch(1)
        self.position_label = QLabel("", self)
        self.position_label.setObjectName("Muted")
        bar.addWidget(self.position_label)
        self.link_button = QPushButton("Link videos", self)
        self.link_button.setObjectName("Primary")
        self.link_button.setToolTip("Run a link round: the latest model links the latest mining round's tracklets "
                                    "across videos (idstudio link).")
        self.link_button.clicked.connect(self.start_linking)
        bar.addWidget(self.link_button)
        layout.addLayout(bar)

        card = QWidget(self)
        card.setObjectName("Card")
        card.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        cv = QVBoxLayout(card)
        cv.setContentsMargins(14, 12, 14, 12)
        self.title, self.badge, self.figures = card_header(card, cv, "No links yet")
        self.strips = (LinkStrip(card), LinkStrip(card))
        for strip in self.strips:
            cv.addWidget(strip, 1)
        self.hint = QLabel("", card)
        self.hint.setObjectName("Muted")
        self.hint.setWordWrap(True)
        cv.addWidget(self.hint)
        layout.addWidget(card, 1)

        self.buttons["accept"].clicked.connect(lambda: self.decide_current("accept"))
        self.buttons["reject"].clicked.connect(lambda: self.decide_current("reject"))
        self.buttons["skip"].clicked.connect(self.skip)
        self.buttons["undo"].clicked.connect(self.undo_stack.undo)
        self.buttons["redo"].clicked.connect(self.undo_stack.redo)
        self.buttons["split"].clicked.connect(self.toggle_split)
        self.undo_stack.canUndoChanged.connect(self.buttons["undo"].setEnabled)
        self.undo_stack.canRedoChanged.connect(self.buttons["redo"].setEnabled)
        self.buttons["undo"].setEnabled(False)
        self.buttons["redo"].setEnabled(False)
        self.actions_: list[QAction] = []
        self.keys_live = True
        self.bind_keys()
        shortcuts.notifier.changed.connect(self.bind_keys)
        session.project_opened.connect(self._project_changed)
        session.project_closed.connect(self._project_changed)
        session.data_changed.connect(self._data_changed)
        self.reload()

    # ---- keys -------------------------------------------------------------------------------------------
    def bind_keys(self) -> None:
        self.actions_ = shortcuts.bind(self, {**review_slots(self), "review.split": self.toggle_split}, self.actions_)
        self.set_keys_enabled(self.keys_live)
        d = shortcuts.describe
        self.hint.setText(f"{d('review.accept')} accept (same person) · {d('review.reject')} reject · "
                          f"{d('review.skip')} skip · {d('review.back')} back · {d('review.undo')} undo · "
                          f"{d('review.redo')} redo · {d('review.split')} split a strip that shows two people")
        for name, key in (("accept", "review.accept"), ("reject", "review.reject"), ("skip", "review.skip"),
                          ("undo", "review.undo"), ("redo", "review.redo"), ("split", "review.split")):
            self.buttons[name].setToolTip(f"{shortcuts.DEFAULTS[key][1]} ({shortcuts.describe(key)})")

    def set_keys_enabled(self, on: bool) -> None:
        """The Pairs tab binds the same keys: only the visible tab's keys may be live."""
        self.keys_live = on
        for action in self.actions_:
            action.setEnabled(on)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if self.splitting:
            if event.key() == Qt.Key.Key_Escape:
                self.toggle_split()
                return
            if event.key() == Qt.Key.Key_Tab:
                self.split_side = 1 - self.split_side
                self._number_strips()
                return
            digit = event.key() - Qt.Key.Key_1
            if 1 <= digit < len(self.strips[self.split_side].members):
                self.split_at(self.split_side, digit)
                return
        super().keyPressEvent(event)

    def focusNextPrevChild(self, next_: bool) -> bool:  # noqa: N802 - Tab switches strips while splitting
        if self.splitting:
            self.split_side = 1 - self.split_side
            self._number_strips()
            return True
        return super().focusNextPrevChild(next_)

    # ---- loading ----------------------------------------------------------------------------------------
    def _project_changed(self, *_: Any) -> None:
        self.undo_stack.clear()
        self.reload()

    def _data_changed(self, area: str) -> None:
        if area in ("links", "pairs", "videos"):
            self.reload()

    def reload(self) -> None:
        project = self.session.project
        self.splitting = False
        self.rows = []
        self.round_info: dict[str, Any] | None = None
        if self.loader.root != self.session.root:  # this tab may reload before the Pairs tab sets it
            self.loader.set_root(self.session.root)
        if project is not None:
            order = LINK_ORDERS[self.order_combo.currentIndex()][1]
            _, wanted, kept_only = LINK_FILTERS[self.filter_combo.currentIndex()]
            rows = link_service.link_rows(project, order=order)
            self.rows = [r for r in rows if (wanted == "all" or r["decision"] == wanted) and (r["kept"] or not kept_only)]
            rid = link_service.latest_link_round(project)
            if rid is not None:
                self.round_info = dict(project.query("SELECT id, n_links, precision, recall FROM link_rounds WHERE id = ?", (rid,))[0])
                self.round_info["total"] = len(rows)
                self.round_info["decided"] = sum(r["decision"] != "none" for r in rows)
        self.position = 0
        self.show_current()

    def current(self) -> dict[str, Any] | None:
        return self.rows[self.position] if 0 <= self.position < len(self.rows) else None

    def show_current(self) -> None:
        row = self.current()
        n = len(self.rows)
        self.position_label.setText(f"{min(self.position + 1, n)} / {n}" if n else "")
        for name in ("accept", "reject", "skip", "split"):
            self.buttons[name].setEnabled(row is not None)
        self.buttons["split"].setText("Cancel split" if self.splitting else "Split…")
        info = self.round_info
        if row is None:
            has_videos = self.session.project is not None and int(self.session.project.scalar(
                "SELECT COUNT(DISTINCT video_id) FROM instances WHERE video_id IS NOT NULL") or 0) >= 2
            self.title.setText("No links yet" if info is None else ("Nothing to review" if n == 0 else "End of the queue"))
            one_site = has_videos and bool(linkable_sites(self.session.project))
            self.figures.setText(
                "Linking needs people from two or more videos; import another video first." if not has_videos else
                "Links join cameras of one site, and no site holds two videos yet: set the Site column in the Data "
                "view." if info is None and not one_site else
                "Mine pairs (Pairs tab), then press Link videos: the latest model links tracklets across videos."
                if info is None else
                f"Link round {info['id']}: {info['decided']} of {info['total']} links decided. "
                "Change the filter to see more.")
            for strip in self.strips:
                strip.show_members([], "", self.loader.cache)
            self.badge.setText("")
            return
        quality = "" if info is None or info["precision"] is None else (
            f"   ·   round {info['id']} precision {info['precision']:.2f}, recall {info['recall']:.2f} (from gt)")
        self.title.setText(f"Link {row['id']}: {row['video_a']} ↔ {row['video_b']}")
        self.figures.setText(f"similarity {row['similarity']:.3f}   ·   reliability {row['reliability']:.3f}   ·   "
                             f"{'kept for training' if row['kept'] else 'below the kept share'}{quality}")
        show_decision(self.badge, row["decision"])
        missing = []
        for strip, side in zip(self.strips, ("a", "b")):
            members, (f0, f1) = row[f"{side}_members"], row[f"frames_{side}"]
            caption = f"{row['video_' + side]}   ·   frames {f0}–{f1}   ·   {len(members)} crops"
            missing += strip.show_members(members, caption, self.loader.cache)
        for iid in missing:
            self.loader.request(iid)
        if self.splitting:
            self._number_strips()

    def _thumbs_loaded(self, items) -> None:
        if self.current() is None:
            return
        for iid, image in items:
            for strip in self.strips:
                strip.set_image(iid, image)

    def _number_strips(self) -> None:
        for side, strip in enumerate(self.strips):
            strip.set_numbered(self.splitting and side == self.split_side, active=True)

    # ---- decisions --------------------------------------------------------------------------------------
    def decide_current(self, decision: str) -> None:
        row = self.current()
        if row is None or self.session.project is None:
            return
        self.splitting = False
        key = (min(row["a"], row["b"]), max(row["a"], row["b"]))
        fn = lambda project, r=row: review.decide(project, [(r["a"], r["b"])], decision)
        self.undo_stack.push(ReviewCommand(self, f"{decision} link {row['id']}", fn, [key], self.position))
        self.position += 1
        self.show_current()

    def toggle_split(self) -> None:
        if self.current() is None:
            self.splitting = False
            return
        self.splitting = not self.splitting
        self.split_side = 0
        self._number_strips()
        self.buttons["split"].setText("Cancel split" if self.splitting else "Split…")
        if self.splitting:
            self.hint.setText("Split: press the number of the first crop that shows a second person "
                              "(Tab: the other strip, Esc: cancel).")
        else:
            self.bind_keys()

    def split_at(self, side: int, shown: int) -> None:
        """Split the tracklet of ``side`` before the ``shown``-th crop of its strip."""
        row = self.current()
        strip = self.strips[side]
        if row is None or not 0 < shown < len(strip.positions):
            return
        members = row["a_members" if side == 0 else "b_members"]
        cut = strip.positions[shown]
        pairs = link_service.split_pairs(self.session.project, members, cut)
        keys = [(min(a, b), max(a, b)) for a, b in pairs]
        fn = lambda project: link_service.split_tracklet(project, members, cut)
        self.splitting = False
        self.bind_keys()
        if not pairs:
            self.hint.setText("No mined pair joins the two halves there: the tracklet is already split.")
            return
        self.undo_stack.push(ReviewCommand(self, f"split link {row['id']}", fn, keys, self.position))
        self.show_current()

    def decisions_written(self, keys: list[tuple[int, int]], goto: int | None) -> None:
        """After a command wrote rows (ReviewCommand's callback): re-read the decisions."""
        project = self.session.project
        if project is None:
            return
        current = review.current_decisions(project)
        for row in self.rows:
            row["decision"] = current.get((min(row["a"], row["b"]), max(row["a"], row["b"])), "none")
        if self.round_info is not None:
            self.round_info["decided"] = sum(r["decision"] != "none" for r in self.rows)
        if goto is not None:
            self.position = goto
        self.show_current()
        self.session.notify("reviews")

    def skip(self) -> None:
        if self.position < len(self.rows):
            self.position += 1
            self.show_current()

    def back(self) -> None:
        if self.position > 0:
            self.position -= 1
            self.show_current()

    # ---- the link job ---------------------------------------------------------------------------------
    def start_linking(self):
        if self.session.project is None:
            return None
        self.link_button.setEnabled(False)
        handle = self.session.start_job("Link videos", _job_link, self.session.root, link_service.LinkConfig(),
                                        changes=("links",))
        runner = self.session.runner

        def ended(job_id, *_):
            if job_id == handle.job_id:
                self.link_button.setEnabled(True)
        for sig in (runner.finished, runner.failed, runner.cancelled):
            sig.connect(ended)
        self.link_handle = handle
        return handle

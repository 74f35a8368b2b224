"""Review widgets shared by the Pairs and Links review cards.

``ReviewCommand`` (an undo command whose redo/undo call ``services.review``, which append
rows), ``CropLabel`` (a crop shown large), the card's heading/badge/figures line
(``card_header``, ``show_decision``), the toolbar's buttons (``review_buttons``) and the keys
both share (``review_slots``). Both ``views/pairs.py`` and ``views/links.py`` import them from
here, so neither imports the other's module for them (an import-linter contract keeps it so).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap, QUndoCommand
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from idstudio.services import review


# ---- undo commands: each calls the service, which appends rows ---------------------------------------
class ReviewCommand(QUndoCommand):
    """One review action on ``view`` (a Pairs view or the Links panel: it has ``session`` and
    ``decisions_written(keys, goto)``)."""

    def __init__(self, view, text: str, apply_fn, keys: list[tuple[int, int]], position: int):
        super().__init__(text)
        self.view, self.apply_fn, self.keys, self.position = view, apply_fn, keys, position
        self.action_id: int | None = None

    def redo(self) -> None:
        project = self.view.session.project
        if self.action_id is None:
            self.action_id = self.apply_fn(project)  # the first time: the decision itself
            self.view.decisions_written(self.keys, None)
        else:
            review.redo(project, self.action_id)
            self.view.decisions_written(self.keys, self.position + 1)

    def undo(self) -> None:
        review.undo(self.view.session.project, self.action_id)
        self.view.decisions_written(self.keys, self.position)


# ---- the pair card -----------------------------------------------------------------------------------
class CropLabel(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(120, 240)
        self.setStyleSheet("background: #eef2f6; border-radius: 8px;")
        self._image: QImage | None = None

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._image is None or self._image.isNull():
            self.setPixmap(QPixmap())
            return
        size = self.size() - QSize(12, 12)
        # at most 2x the crop's own pixels: more only shows blur
        size = size.boundedTo(QSize(self._image.width() * 2, self._image.height() * 2))
        self.setPixmap(QPixmap.fromImage(self._image).scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                             Qt.TransformationMode.SmoothTransformation))


def card_header(card: QWidget, layout: QVBoxLayout, title: str) -> tuple[QLabel, QLabel, QLabel]:
    """A review card's heading, decision badge and figures line (pairs and links)."""
    top = QHBoxLayout()
    heading = QLabel(title, card)
    heading.setObjectName("Heading")
    badge = QLabel("undecided", card)
    badge.setObjectName("Badge")
    top.addWidget(heading)
    top.addStretch(1)
    top.addWidget(badge)
    layout.addLayout(top)
    figures = QLabel("", card)
    figures.setObjectName("Muted")
    figures.setWordWrap(True)
    layout.addWidget(figures)
    return heading, badge, figures


def show_decision(badge: QLabel, decision: str) -> None:
    badge.setText({"none": "undecided", "accept": "accepted", "reject": "rejected"}[decision])
    badge.setProperty("decision", decision)
    badge.style().unpolish(badge)
    badge.style().polish(badge)


def review_buttons(parent: QWidget, bar: QHBoxLayout, names: tuple[str, ...]) -> dict[str, QPushButton]:
    """The review toolbar's buttons (a gap after Skip), keyboard-free: the keys are actions."""
    from idstudio.gui.main_window import icon

    specs = {"accept": ("Accept", "accept", "Accept"), "reject": ("Reject", "reject", "Reject"), "skip": ("Skip", "skip", None),
             "undo": ("Undo", "undo", None), "redo": ("Redo", "redo", None), "relink": ("Relink…", "relink", None),
             "grid": ("Grid", "grid", None), "split": ("Split…", "relink", None)}
    buttons: dict[str, QPushButton] = {}
    for name in names:
        text, icon_name, obj = specs[name]
        b = QPushButton(icon(icon_name), text, parent)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        if obj:
            b.setObjectName(obj)
        buttons[name] = b
        bar.addWidget(b)
        if name == "skip":
            bar.addSpacing(16)
    return buttons


def review_slots(view) -> dict:
    """The keys pairs and links share: decide, move, undo and redo (``shortcuts`` names)."""
    return {"review.accept": lambda: view.decide_current("accept"), "review.reject": lambda: view.decide_current("reject"),
            "review.skip": view.skip, "review.back": view.back, "review.undo": view.undo_stack.undo,
            "review.redo": view.undo_stack.redo}

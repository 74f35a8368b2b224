"""Sites in the Data view: the sources list's Site column is edited here (the Site… button on
the selected videos, or a double-click on a video's Site cell), and a line says which sites
links can join. Writing goes through ``services.ingest.set_site``; a bad name is its one
sentence and changes nothing."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QHBoxLayout, QInputDialog, QLabel, QMessageBox, QPushButton, QWidget

from idstudio.core.errors import UserError
from idstudio.services import ingest


def links_text(linkable: dict[str, int]) -> str:
    """One short line: the sites where links can join cameras."""
    if not linkable:
        return "Links: no site holds two cameras; put the cameras filmed at one place at one site."
    if len(linkable) == 1:
        ((site, n),) = linkable.items()
        return f"Links: site '{site}' holds {n} cameras."
    return "Links: sites " + ", ".join(f"'{site}' ({n} cameras)" for site, n in sorted(linkable.items())) + "."


class SitesBar(QWidget):
    """The Site… button and the links line, below the sources list."""

    def __init__(self, session, selected_videos: Callable[[], list[int]], parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.selected_videos = selected_videos
        self.last_error: str | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.button = QPushButton("Site…", self)
        self.button.setToolTip("Put the selected videos at a site (the place they were filmed): links join the "
                               "cameras of one site only. Double-click a Site cell to change one video.")
        self.button.clicked.connect(lambda: self.edit())
        self.label = QLabel("", self)
        self.label.setObjectName("Muted")
        self.label.setWordWrap(True)
        row.addWidget(self.button)
        row.addWidget(self.label, 1)

    def refresh(self) -> None:
        project = self.session.project
        self.button.setEnabled(project is not None and bool(project.videos()))
        if project is None:
            self.label.setText("")
            return
        try:
            self.label.setText(links_text(ingest.sites(project)["linkable"]))
        except Exception as exc:  # noqa: BLE001 - a summary line never breaks the view
            self.label.setText(f"Links: {exc}")

    def edit(self, video_ids: list[int] | None = None, site: str | None = None) -> bool:
        """Put ``video_ids`` (default: the selected videos) at ``site``; without ``site``, ask for it."""
        project = self.session.project
        ids = list(video_ids) if video_ids is not None else self.selected_videos()
        if project is None or not ids:
            self._error("Select one or more videos in the sources list first.")
            return False
        if site is None:
            rows = [v for v in project.videos() if v["id"] in set(ids)]
            current = {v.get("site") for v in rows}
            names = rows[0]["name"] if len(rows) == 1 else f"{len(rows)} videos"
            text, ok = QInputDialog.getText(self, "Site", f"Site of {names} (empty or 'none': at no site):",
                                            text=(current.pop() or "") if len(current) == 1 else "")
            if not ok:
                return False
            site = text
        try:
            ingest.set_site(project, ids, site)
        except UserError as exc:
            self._error(str(exc))
            return False
        self.last_error = None
        self.session.notify("videos")
        return True

    def _error(self, message: str) -> None:
        self.last_error = message
        window = self.window()
        if hasattr(window, "show_error"):
            window.show_error("Site", message)
        else:
            QMessageBox.warning(self, "Site", message)

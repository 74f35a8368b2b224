"""The session: open/close, recent projects, job-end notifications."""

from __future__ import annotations

import pytest

from idstudio.core.errors import UserError

pytestmark = pytest.mark.gui


def test_session_open_announces_and_records_recent(qtbot, tmp_path):
    from idstudio.core.store import Project
    from idstudio.gui.session import Session

    Project.create(tmp_path / "p").close()
    session = Session()
    with qtbot.waitSignal(session.project_opened, timeout=1000):
        session.open(tmp_path / "p")
    assert session.project is not None and session.root == (tmp_path / "p").resolve()
    assert Session.recent()[0] == str((tmp_path / "p").resolve())
    with pytest.raises(UserError):
        session.open(tmp_path / "nope")
    assert session.root == (tmp_path / "p").resolve()  # a failed open keeps the current project

    changed = []
    session.data_changed.connect(changed.append)
    with qtbot.waitSignal(session.data_changed, timeout=5000):
        session.start_job("noop", lambda ctx: 1, changes=("videos",))
    assert changed == ["videos"]
    session.close()

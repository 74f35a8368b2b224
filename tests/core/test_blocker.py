import os

import pytest


@pytest.mark.skipif(os.environ.get("IDSTUDIO_BLOCK_QT") != "1", reason="only meaningful with the Qt blocker on")
def test_qt_import_fails_under_blocker():
    with pytest.raises(ImportError):
        import PySide6  # noqa: F401

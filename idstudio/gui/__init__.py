"""The PySide6 desktop application. Talks only to idstudio.services."""

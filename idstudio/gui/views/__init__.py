"""The four views of the main window."""

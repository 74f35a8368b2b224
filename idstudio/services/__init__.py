"""Use cases and jobs shared by the GUI and the CLI. Never imports Qt."""

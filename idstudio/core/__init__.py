"""Pure computation and storage. Never imports Qt."""

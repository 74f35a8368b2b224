"""idstudio: train and inspect person re-identification models learned from unlabeled video."""

__version__ = "0.1.0"

"""The instances the miner and the trainer may use: ``training_instances(project)``."""

from __future__ import annotations

import numpy as np

from idstudio.core.errors import UserError
from idstudio.core.store import InstanceTable, Project
from idstudio.services.splits import training_mask


def training_instances(project: Project) -> InstanceTable:
    """The instances training and mining may use: every video's, less the frames that a
    cross-time split holds out."""
    table = project.instance_table()
    keep = training_mask(project, table)
    if not keep.all():
        table = table.subset(np.flatnonzero(keep))
    if len(table) == 0:
        raise UserError("This project has no instances from videos to mine; import a video first (`idstudio import-video` or `import-mot`).")
    return table

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


def row_sites(project: Project, table: InstanceTable) -> np.ndarray:
    """Each row's site as a number (-1: its video is at no site): links join only rows of one site."""
    names = {int(r[0]): r[1] for r in project.query("SELECT id, site FROM videos")}
    codes = {name: k for k, name in enumerate(sorted({n for n in names.values() if n}))}
    by_video = {v: codes.get(names.get(v), -1) for v in np.unique(table.video_id).tolist()}
    return np.array([by_video[v] for v in table.video_id.tolist()], np.int64)


def linkable_sites(project: Project) -> dict[str, int]:
    """The sites holding two or more videos (cameras) with people: where link rounds can join cameras."""
    rows = project.query("""SELECT v.site, COUNT(DISTINCT v.id) FROM videos v
                            WHERE v.site IS NOT NULL AND EXISTS (SELECT 1 FROM instances i WHERE i.video_id = v.id)
                            GROUP BY v.site""")
    return {r[0]: int(r[1]) for r in rows if int(r[1]) >= 2}

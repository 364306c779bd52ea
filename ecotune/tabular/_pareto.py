"""The replay's reference: the front of a recorded table (hypervolume and reference point
from :mod:`ecotune.pareto` and :func:`ecotune.report.history.reference_point`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecotune.objectives import OBJECTIVES
from ecotune.pareto import hypervolume
from ecotune.report.history import reference_point
from ecotune.tabular._table import OBJECTIVE_COLUMNS, RecordedTable

__all__ = ["table_reference"]


def table_reference(table: RecordedTable, objectives: Sequence[str],
                    ) -> tuple[list[float], float, list[bool]]:
    """The reference of a replay: the reference point and hypervolume of the front of every
    complete recorded configuration (the best front any search of the table can find), and
    per objective whether it is maximised.

    Example:
        >>> import tempfile, pathlib
        >>> from ecotune.tabular._table import read_table, write_rows
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> rows = [{"lr": lr, "epoch": 1, "state": "COMPLETE", "accuracy": acc,
        ...          "final_energy_j": e, "epochs_run": 1}
        ...         for lr, acc, e in [(0.1, 0.5, 1.0), (0.2, 0.9, 4.0)]]
        >>> write_rows(path, ["lr"], rows)
        >>> reference, volume, maximize = table_reference(read_table(path),
        ...                                               ["accuracy", "energy_j"])
        >>> reference, round(volume, 6), maximize  # energy: worst + 10 % of the range
        ([0.0, 4.3], 1.77, [True, False])
    """
    maximize = [OBJECTIVES[name].direction == "maximize" for name in objectives]
    points = np.array([[float(r.finals[OBJECTIVE_COLUMNS[name]]) for name in objectives]
                       for r in table.configs.values() if not r.failed], dtype=float)
    if len(points) == 0:
        raise ValueError("the table holds no complete configuration")
    reference = reference_point(points, list(objectives), maximize)
    return reference, hypervolume(points, reference, maximize), maximize

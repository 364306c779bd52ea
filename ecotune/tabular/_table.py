"""The recorded table: one CSV row per trial and epoch, with header lines saying how it was
recorded. Pure data: nothing here trains, nor touches Optuna.

Layout (``ecotune compare STUDY.toml --record TABLE.csv`` writes it)::

    # ecotune recorded table: format 1
    # study: fashion_mnist_cnn
    # command: ecotune compare studies/fashion_mnist_cnn.toml --record ...
    # machine: Linux-6.1 x86_64, 2 CPUs (Intel Xeon ...), Python 3.11.2, torch 2.14.1
    # meter: codecarbon (estimate)
    # spec: {"study": {...}, "data": {...}, ..., "search_space": {...}}
    width,lr,...,epoch,val_accuracy,energy_j,elapsed_s,state,accuracy,final_energy_j,...
    0.25,0.001,...,1,0.61,1.93,0.14,COMPLETE,0.81,9.1,...

Every line starting with ``#`` is a note (a resumed recording adds ``# resumed: ...`` and
``# session: ...`` lines where it continues). Per row: the knob values, then the epoch's
``val_accuracy``, cumulative training ``energy_j`` and ``elapsed_s``; then the trial's own
figures, repeated on each of its rows: ``state`` (``COMPLETE`` or ``FAIL``; a failed trial
has one row, epoch 0), the objectives ``accuracy``, ``final_energy_j`` (the whole
measurement window, so a little more than the last epoch's ``energy_j``), ``duration_s``
and ``co2_g``, then ``test_accuracy``, ``inference_energy_pj`` (ASIC model),
``epochs_run``, ``meter``, ``energy_is_estimate``, ``trial_wall_s`` and
``evaluation_energy_j`` (the test-split evaluation's own window, not in
``final_energy_j``; a recording evaluates every trial) and ``prefix_of`` (empty for a
trained run; for a row read from a longer run's prefix, that run's epochs: see
:mod:`ecotune.tabular._record`). Floats are written with ``repr``,
so reading a table back gives the recorded values exactly. A table recorded before
``evaluation_energy_j`` existed reads it as 0, with a note: its ``final_energy_j``
includes the test evaluation; one recorded before ``prefix_of`` existed has every row
trained as is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_LINE", "OBJECTIVE_COLUMNS", "EPOCH_COLUMNS", "TRIAL_COLUMNS",
           "NO_EVALUATION_NOTE", "ConfigRecord",
           "RecordedTable", "TableError", "cell", "config_key", "read_table", "write_rows",
           "header_text", "rewrite_without", "table_columns"]

FORMAT_LINE = "# ecotune recorded table: format 1"
EPOCH_COLUMNS = ("epoch", "val_accuracy", "energy_j", "elapsed_s")
TRIAL_COLUMNS = ("state", "accuracy", "final_energy_j", "duration_s", "co2_g", "test_accuracy",
                 "inference_energy_pj", "epochs_run", "meter", "energy_is_estimate",
                 "trial_wall_s", "evaluation_energy_j", "prefix_of")
#: The note a table without the ``evaluation_energy_j`` column is read with.
NO_EVALUATION_NOTE = ("no evaluation_energy_j column: recorded before the test evaluation "
                      "was measured apart, so final_energy_j includes it (read as 0)")

#: The objectives a table answers, and the column holding each trial's value.
OBJECTIVE_COLUMNS = {"accuracy": "accuracy", "energy_j": "final_energy_j",
                     "duration_s": "duration_s", "inference_energy": "inference_energy_pj"}


class TableError(ValueError):
    """A recorded table cannot be read, or does not fit the study it is used with."""


def cell(value: Any) -> str:
    """A knob value or figure as the table writes it (floats round-trip exactly).

    Example:
        >>> cell(0.1), cell(3), cell(True), cell(None), cell("adam")
        ('0.1', '3', 'true', '', 'adam')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_key(knobs: Mapping[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """The key of a configuration: its knob values as table cells, in ``names`` order."""
    return tuple(cell(knobs[name]) for name in names)


@dataclass(frozen=True)
class ConfigRecord:
    """One recorded trial: a configuration's learning curve and final figures.

    The curve's arrays are per epoch (``epochs[i]`` is 1-based); ``energy_j`` and
    ``elapsed_s`` are cumulative since training began.
    """

    knobs: dict[str, str]  # knob name -> cell, as in the table
    state: str
    epochs: np.ndarray
    val_accuracy: np.ndarray
    energy_j: np.ndarray
    elapsed_s: np.ndarray
    finals: dict[str, Any] = field(default_factory=dict)  # TRIAL_COLUMNS but state

    @property
    def failed(self) -> bool:
        return self.state != "COMPLETE"

    @property
    def final_energy_j(self) -> float:
        return float(self.finals["final_energy_j"])

    @property
    def evaluation_energy_j(self) -> float:
        """Energy of the test-split evaluation's own window (0: none, or an old table)."""
        return float(self.finals.get("evaluation_energy_j") or 0.0)

    @property
    def tail_energy_j(self) -> float:
        """Energy of the training window after the last epoch (in a table without
        ``evaluation_energy_j``: the test evaluation too): spent whether training ran to
        the end or stopped early."""
        if self.failed or len(self.energy_j) == 0:
            return 0.0
        return max(0.0, self.final_energy_j - float(self.energy_j[-1]))


@dataclass
class RecordedTable:
    """A table read back: header fields, the knob columns, and every complete record.

    ``incomplete`` lists the keys of trials whose rows stop short (an interrupted write);
    they are not in ``configs``.
    """

    header: dict[str, str]
    notes: list[str]
    knobs: list[str]
    configs: dict[tuple[str, ...], ConfigRecord]
    incomplete: list[tuple[str, ...]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # as in the file (older: fewer)

    @property
    def spec(self) -> dict[str, Any]:
        """The study spec the table was recorded from (the ``spec`` header line)."""
        try:
            return json.loads(self.header["spec"])
        except (KeyError, json.JSONDecodeError) as err:
            raise TableError(f"the table has no readable '# spec:' header line ({err})") from None

    def total_energy_j(self) -> float:
        """Search energy of running every recorded trial once, test evaluation included:
        what grid search spends."""
        return float(sum(r.final_energy_j + r.evaluation_energy_j
                         for r in self.configs.values()))

    def meters(self) -> list[str]:
        return sorted({str(r.finals.get("meter")) for r in self.configs.values()})

    def wall_time_s(self) -> float:
        """Sum of the recorded trials' wall times."""
        return float(sum(float(r.finals.get("trial_wall_s") or 0.0)
                         for r in self.configs.values()))


def header_text(fields: Mapping[str, str]) -> str:
    """The header lines for ``fields`` (one ``# key: value`` line each, after the format)."""
    lines = [FORMAT_LINE] + [f"# {k}: {' '.join(str(v).split())}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def _float(text: str) -> float:
    return math.nan if text == "" else float(text)


def read_table(path: str | os.PathLike) -> RecordedTable:
    """Read a recorded table. A torn last line (no newline) is ignored.

    Raises:
        TableError: not a recorded table, a missing column, or a value that is not a number.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "t.csv"
        >>> rows = [{"lr": 0.1, "epoch": e, "val_accuracy": 0.5 + e / 10, "energy_j": 2.0 * e,
        ...          "elapsed_s": 0.1 * e, "state": "COMPLETE", "accuracy": 0.7,
        ...          "final_energy_j": 4.5, "epochs_run": 2} for e in (1, 2)]
        >>> write_rows(path, ["lr"], rows, header={"study": "demo"})
        >>> table = read_table(path)
        >>> record = table.configs[("0.1",)]
        >>> record.energy_j.tolist(), record.tail_energy_j, table.header["study"]
        ([2.0, 4.0], 0.5, 'demo')
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TableError(f"{path}: cannot read the table ({err.strerror})") from None
    except UnicodeDecodeError:
        raise TableError(f"{path}: the table is not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # torn last line: written in part when the recording stopped
    if not lines or lines[0] != FORMAT_LINE:
        raise TableError(f"{path}: not an ecotune recorded table (its first line is not "
                         f"{FORMAT_LINE!r})")
    header: dict[str, str] = {}
    notes: list[str] = []
    body: list[str] = []
    for line in lines[1:]:
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(": ")
            if sep and not body and key not in header:
                header[key] = value
            else:
                notes.append(line[1:].strip())
        elif line:
            body.append(line)
    if not body:
        return RecordedTable(header, notes, [], {})
    reader = csv.reader(io.StringIO("\n".join(body)))
    columns = next(reader)
    fixed = set(EPOCH_COLUMNS) | set(TRIAL_COLUMNS)
    missing = [c for c in (*EPOCH_COLUMNS, "state", "accuracy", "final_energy_j", "epochs_run")
               if c not in columns]
    if missing:
        raise TableError(f"{path}: column {missing[0]!r} is missing")
    knobs = [c for c in columns if c not in fixed]
    if "evaluation_energy_j" not in columns:
        notes.append(NO_EVALUATION_NOTE)
    index = {c: i for i, c in enumerate(columns)}
    grouped: dict[tuple[str, ...], list[list[str]]] = {}
    for n, row in enumerate(reader, start=2):
        if len(row) != len(columns):
            raise TableError(f"{path}: data row {n} has {len(row)} cells, expected "
                             f"{len(columns)}")
        grouped.setdefault(tuple(row[index[k]] for k in knobs), []).append(row)
    configs: dict[tuple[str, ...], ConfigRecord] = {}
    incomplete = []
    for key, rows in grouped.items():
        try:
            record = _record(key, knobs, rows, index)
        except ValueError as err:
            raise TableError(f"{path}: configuration {dict(zip(knobs, key))}: {err}") from None
        if record is None:
            incomplete.append(key)
        else:
            configs[key] = record
    return RecordedTable(header, notes, knobs, configs, incomplete, columns)


def _record(key: tuple[str, ...], knobs: Sequence[str], rows: list[list[str]],
            index: Mapping[str, int]) -> ConfigRecord | None:
    def col(name: str, row: list[str]) -> str:
        return row[index[name]] if name in index else ""

    last = rows[-1]
    state = col("state", last)
    epochs_run = int(col("epochs_run", last) or 0)
    curve_rows = [r for r in rows if int(col("epoch", r)) > 0]
    epochs = np.array([int(col("epoch", r)) for r in curve_rows], dtype=int)
    if state == "COMPLETE" and len(rows) > epochs_run and len(rows) % max(epochs_run, 1) == 0:
        # Recorded twice (two recorders crossed on it): the first recording counts.
        rows = rows[:epochs_run]
        curve_rows = [r for r in rows if int(col("epoch", r)) > 0]
        epochs = np.array([int(col("epoch", r)) for r in curve_rows], dtype=int)
    if state == "COMPLETE" and (len(rows) > epochs_run
                                or epochs.tolist() != list(range(1, len(rows) + 1))):
        raise ValueError(f"its rows are not epochs 1..{epochs_run} once each "
                         f"(got {epochs.tolist()})")
    if state == "COMPLETE" and len(rows) < epochs_run:
        return None
    finals: dict[str, Any] = {}
    for name in TRIAL_COLUMNS[1:]:
        text = col(name, last)
        if name in ("meter",):
            finals[name] = text or None
        elif name == "energy_is_estimate":
            finals[name] = {"true": True, "false": False}.get(text)
        elif name == "epochs_run":
            finals[name] = epochs_run
        elif name == "prefix_of":
            finals[name] = int(text) if text else None
        elif name == "evaluation_energy_j":
            finals[name] = float(text) if text else 0.0
        else:
            finals[name] = _float(text)
    return ConfigRecord(
        knobs=dict(zip(knobs, key)), state=state, epochs=epochs,
        val_accuracy=np.array([_float(col("val_accuracy", r)) for r in curve_rows]),
        energy_j=np.array([_float(col("energy_j", r)) for r in curve_rows]),
        elapsed_s=np.array([_float(col("elapsed_s", r)) for r in curve_rows]),
        finals=finals)


def write_rows(path: str | os.PathLike, knobs: Sequence[str],
               rows: Iterable[Mapping[str, Any]], header: Mapping[str, str] | None = None,
               notes: Sequence[str] = ()) -> None:
    """Append ``rows`` (dicts of knob and column values) to the table at ``path``, in one
    write, flushed to disk; a new file gets the header lines and the column row first.

    ``notes`` are written as ``# ...`` lines before the rows.
    """
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    buffer = io.StringIO()
    if new:
        buffer.write(header_text(header or {}))
    for note in notes:
        buffer.write(f"# {' '.join(note.split())}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    columns = table_columns(knobs)
    if new:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())  # a recorded trial is not lost to a crash that follows


def table_columns(knobs: Sequence[str]) -> list[str]:
    """The column row a table over ``knobs`` is written with today."""
    return [*knobs, *EPOCH_COLUMNS, *TRIAL_COLUMNS]


def rewrite_without(path: str | os.PathLike, drop: Sequence[tuple[str, ...]],
                    knobs: Sequence[str]) -> None:
    """Rewrite the table without the rows of the configurations ``drop`` and without a
    torn last line, atomically (a temporary file renamed over it)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines[-1] != "":
        lines = lines[:-1]
    drop_set = set(drop)
    kept, columns = [], None
    for line in lines:
        if line.startswith("#") or not line:
            kept.append(line)
            continue
        row = next(csv.reader([line]))
        if columns is None:
            columns = row
            kept.append(line)
            continue
        key = tuple(row[columns.index(k)] for k in knobs)
        if key not in drop_set:
            kept.append(line)
    body = "\n".join(line for line in kept if line) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)

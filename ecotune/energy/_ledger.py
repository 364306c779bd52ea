"""A whole-device energy counter shared by the processes of one machine: a ledger file per
counter (a GPU; a RAPL domain as CodeCarbon reads it).

NVML's counter covers the whole GPU, whichever process queued the work, and a RAPL counter
the whole CPU package. When worker processes on one machine share such a counter
(``--workers 4 --gpus 0,1``), each worker's meter reads it; booked whole, every worker
would be charged every other's draw. The ledger splits it: each participant (one meter of
one process) records how many windows it has open on the counter, and whoever reads the
counter first settles the advance since the last settlement among the participants, as
they were over that interval: by their open windows (a GPU: its draw does not follow any
one process's CPU time), or, for a CPU counter (``weigh_by_cpu``), by the CPU seconds each
participant's process used over the interval (read from ``/proc/<pid>/stat``; by windows
where a process's time cannot be read or none was used), the rule the in-process split
uses for CPU energy. A participant's figure is its account, so the accounts of every
process add up to the counter's advance while any window was open, none counted twice
(energy while no window is open is nobody's).

The ledger is a small JSON file per counter (a GPU's UUID, a RAPL file's path), under
:func:`ledger_dir`, changed only under an exclusive ``flock``. A participant whose process
is gone is dropped at the next settlement (a pid reused by another process is told apart
by its start time). Processes that do not share a file system path for it (separate
containers with their own ``/tmp``) cannot share a ledger: set ``ECOTUNE_GPU_LEDGER_DIR``
to a shared directory, or each is charged the whole counter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no ledger there
    fcntl = None  # type: ignore[assignment]

__all__ = ["CounterLedger", "GpuLedger", "Settlement", "ledger_dir", "LEDGER_DIR_ENV"]

#: The environment variable naming the ledger directory (default: per user, under /tmp).
LEDGER_DIR_ENV = "ECOTUNE_GPU_LEDGER_DIR"


def ledger_dir() -> Path:
    """Where the counter ledgers live (GPUs', and RAPL's as CodeCarbon reads it; the
    variable's name is older than the RAPL ledgers): ``$ECOTUNE_GPU_LEDGER_DIR``, else a
    per-user directory in the system's temporary directory."""
    configured = os.environ.get(LEDGER_DIR_ENV)
    if configured:
        return Path(configured)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"ecotune-{uid}" / "gpu-ledger"


class Settlement(NamedTuple):
    """A participant's account after a settlement: joules since it joined, and whether
    another participant had windows open on the counter at some point since it joined."""

    account_j: float
    shared: bool


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the first is the state,
    field 3 of proc(5)); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return file.read().rpartition(")")[2].split()
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks after boot), so that a reused pid
    is not taken for the participant that died; None where it cannot be read."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _cpu_s(pid: int) -> float | None:
    """Process ``pid``'s CPU seconds (user + system, every thread); None where unreadable."""
    fields = _stat_fields(pid)
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # type: ignore[index]
    except (TypeError, IndexError, ValueError):
        return None


try:
    _TICKS_PER_S = float(os.sysconf("SC_CLK_TCK"))
except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
    _TICKS_PER_S = 100.0


def _alive(participant: dict) -> bool:
    pid = participant["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        pass
    started = participant.get("started")
    return started is None or _started(pid) in (None, started)


class CounterLedger:
    """One participant's handle on the ledger of the counter named ``uuid`` (a GPU's UUID,
    ``rapl:`` and a RAPL file's path).

    Raises:
        OSError: the ledger directory cannot be created or its file locked (callers then
            book the counter whole, saying so).
    """

    def __init__(self, uuid: str, folder: Path | None = None) -> None:
        if fcntl is None:  # pragma: no cover
            raise OSError("no flock on this platform: counter ledgers need it")
        default = folder is None and not os.environ.get(LEDGER_DIR_ENV)
        folder = Path(folder) if folder is not None else ledger_dir()
        if default:  # the per-user directory in the shared /tmp: this user's alone
            folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if hasattr(os, "getuid") and folder.parent.stat().st_uid != os.getuid():
                raise OSError(f"{folder.parent} belongs to another user")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / (re.sub(r"[^0-9A-Za-z_.-]", "_", uuid) + ".json")
        self.name = uuid
        self.participant = f"{os.getpid()}-{id(self):x}"
        #: Steps the ledger took for resets while this participant was on it (settle()).
        self.resets = 0
        self.path.touch(exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        with open(self.path, "r+", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                text = file.read()
                try:
                    state = json.loads(text) if text.strip() else {}
                except ValueError:
                    state = {}  # a torn file from a killed process: start over
                state.setdefault("participants", {})
                yield state
                file.seek(0)
                file.truncate()
                file.write(json.dumps(state))
                file.flush()
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def leave(self) -> None:
        """Leave without a settlement (the counter could not be read): the advance since
        the last settlement goes to the others at the next one."""
        with self._locked() as state:
            state["participants"].pop(self.participant, None)

    def settle(self, read_j: Callable[[], float], windows: int, wrap_j: float | None = None,
               weigh_by_cpu: bool = False, max_power_w: float | None = None) -> Settlement:
        """Split the counter's advance since the last settlement among the participants
        (by their open windows; ``weigh_by_cpu``: by their processes' CPU seconds over the
        interval), then set this participant's open windows to ``windows`` (0: it leaves).
        ``read_j`` reads the counter (joules); it is called under the lock, so that no
        other process settles between the read and this settlement. ``wrap_j``: where the
        counter wraps to 0 (RAPL); a counter without one that went back was reset.
        ``max_power_w``: the most the device can draw; a larger step since the last
        settlement (``time.monotonic``, one clock for every process) is no energy but a
        reset or a glitch, and counts nothing."""
        with self._locked() as state:
            counter_j = read_j()
            now_s = time.monotonic()
            participants: dict[str, dict] = state["participants"]
            for key in [k for k, p in participants.items() if not _alive(p)]:
                del participants[key]
            last_j, last_s = state.get("last_j"), state.get("last_s")
            reset = False
            if last_j is None:
                delta_j = 0.0
            elif counter_j >= last_j:
                delta_j = counter_j - last_j
            else:  # one wrap; without a wrap point a reset (a driver reload): nobody's
                delta_j = counter_j + wrap_j - last_j if wrap_j else 0.0
                reset = not wrap_j
            if (max_power_w is not None and last_s is not None
                    and delta_j > max_power_w * max(now_s - last_s, 0.0)):
                delta_j, reset = 0.0, True
            if reset:
                for p in participants.values():  # they are told: their figures are low
                    if p["windows"] > 0:
                        p["resets"] = p.get("resets", 0) + 1
            weights = _weights(participants, weigh_by_cpu)
            total = sum(weights.values())
            if total > 0 and delta_j > 0:
                for key, p in participants.items():
                    p["j"] += delta_j * weights[key] / total
            state["last_s"] = now_s
            state["last_j"] = counter_j

            def mark_shared() -> None:
                active = [p for p in participants.values() if p["windows"] > 0]
                if len(active) > 1:
                    for p in active:
                        p["shared"] = True

            mark_shared()  # over the interval just settled
            me = participants.setdefault(self.participant, {
                "pid": os.getpid(), "started": _started(os.getpid()), "windows": 0, "j": 0.0,
                "shared": False, "cpu_s": _cpu_s(os.getpid()) if weigh_by_cpu else None})
            me["windows"] = windows
            mark_shared()  # from now on
            settlement = Settlement(me["j"], me["shared"])
            self.resets = me.get("resets", 0)
            if windows <= 0:
                del participants[self.participant]
        return settlement


#: The name the GPU meter knows the ledger by.
GpuLedger = CounterLedger


def _weights(participants: dict[str, dict], by_cpu: bool) -> dict[str, float]:
    """Each participant's weight over the interval since the last settlement: its open
    windows; ``by_cpu``: its process's CPU seconds since then (shared by the participants
    of one process by their windows), or the windows where any is unreadable or none was
    used. Updates each participant's CPU-time mark."""
    windows = {key: float(p["windows"]) for key, p in participants.items()}
    if not by_cpu:
        return windows
    used: dict[str, float | None] = {}
    for key, p in participants.items():
        now_s = _cpu_s(p["pid"])
        before_s = p.get("cpu_s")
        used[key] = (None if now_s is None or before_s is None
                     else max(now_s - before_s, 0.0))
        p["cpu_s"] = now_s
    active = [key for key, w in windows.items() if w > 0]
    if any(used[key] is None for key in active):
        return windows
    per_pid: dict[int, float] = {}
    for key in active:
        pid = participants[key]["pid"]
        per_pid[pid] = per_pid.get(pid, 0.0) + windows[key]
    weights = {key: (used[key] * windows[key] / per_pid[participants[key]["pid"]]  # type: ignore[operator]
                     if key in active else 0.0) for key in participants}
    return weights if sum(weights.values()) > 0 else windows

"""A GPU's energy counter shared by the processes of one machine: a ledger file per GPU.

NVML's counter covers the whole GPU, whichever process queued the work. When worker
processes on one machine share a GPU (``--workers 4 --gpus 0,1``), each worker's meter
reads the same counter; booked whole, every worker would be charged every other's draw.
The ledger splits it: each participant (one meter of one process) records how many windows
it has open on the GPU, and whoever reads the counter first settles the advance since the
last settlement among the participants by those counts, as they were over that interval.
A participant's figure is its account, so the accounts of every process add up to the
counter's advance while any window was open, none counted twice (energy while no window
is open is nobody's).

The ledger is a small JSON file per GPU UUID, under :func:`ledger_dir`, changed only under
an exclusive ``flock``. A participant whose process is gone is dropped at the next
settlement (a pid reused by another process is told apart by its start time). Processes
that do not share a file system path for it (separate containers
with their own ``/tmp``) cannot share a ledger: set ``ECOTUNE_GPU_LEDGER_DIR`` to a shared
directory, or each is charged the whole GPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no ledger there
    fcntl = None  # type: ignore[assignment]

__all__ = ["GpuLedger", "Settlement", "ledger_dir", "LEDGER_DIR_ENV"]

#: The environment variable naming the ledger directory (default: per user, under /tmp).
LEDGER_DIR_ENV = "ECOTUNE_GPU_LEDGER_DIR"


def ledger_dir() -> Path:
    """Where the GPU ledgers live: ``$ECOTUNE_GPU_LEDGER_DIR``, else a per-user directory
    in the system's temporary directory."""
    configured = os.environ.get(LEDGER_DIR_ENV)
    if configured:
        return Path(configured)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"ecotune-{uid}" / "gpu-ledger"


class Settlement(NamedTuple):
    """A participant's account after a settlement: joules since it joined, and whether
    another participant had windows open on the GPU at some point since it joined."""

    account_j: float
    shared: bool


def _started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks after boot), so that a reused pid
    is not taken for the participant that died; None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return file.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


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


class GpuLedger:
    """One participant's handle on the ledger of the GPU with UUID ``uuid``.

    Raises:
        OSError: the ledger directory cannot be created or its file locked (callers then
            book the GPU whole, saying so).
    """

    def __init__(self, uuid: str, folder: Path | None = None) -> None:
        if fcntl is None:  # pragma: no cover
            raise OSError("no flock on this platform: GPU ledgers need it")
        default = folder is None and not os.environ.get(LEDGER_DIR_ENV)
        folder = Path(folder) if folder is not None else ledger_dir()
        if default:  # the per-user directory in the shared /tmp: this user's alone
            folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if hasattr(os, "getuid") and folder.parent.stat().st_uid != os.getuid():
                raise OSError(f"{folder.parent} belongs to another user")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / (re.sub(r"[^0-9A-Za-z_.-]", "_", uuid) + ".json")
        self.participant = f"{os.getpid()}-{id(self):x}"
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

    def settle(self, read_j: Callable[[], float], windows: int) -> Settlement:
        """Split the counter's advance since the last settlement among the participants by
        their open windows, then set this participant's open windows to ``windows`` (0: it
        leaves). ``read_j`` reads the GPU's counter (joules); it is called under the lock,
        so that no other process settles between the read and this settlement."""
        with self._locked() as state:
            counter_j = read_j()
            participants: dict[str, dict] = state["participants"]
            for key in [k for k, p in participants.items() if not _alive(p)]:
                del participants[key]
            last_j = state.get("last_j")
            # A counter that went back (a driver reload) restarts the ledger's reference.
            delta_j = max(counter_j - last_j, 0.0) if last_j is not None else 0.0
            total = sum(p["windows"] for p in participants.values())
            if total > 0 and delta_j > 0:
                for p in participants.values():
                    p["j"] += delta_j * p["windows"] / total
            state["last_j"] = counter_j

            def mark_shared() -> None:
                active = [p for p in participants.values() if p["windows"] > 0]
                if len(active) > 1:
                    for p in active:
                        p["shared"] = True

            mark_shared()  # over the interval just settled
            me = participants.setdefault(self.participant, {
                "pid": os.getpid(), "started": _started(os.getpid()), "windows": 0, "j": 0.0,
                "shared": False})
            me["windows"] = windows
            mark_shared()  # from now on
            settlement = Settlement(me["j"], me["shared"])
            if windows <= 0:
                del participants[self.participant]
        return settlement

"""A process's descendants from its own ``/proc/PID/task/TID/children`` files (Linux).

CodeCarbon's process models (CPU load, RAM) look up the tracked process's children at
every task start and stop with ``psutil.Process.children(recursive=True)``, which reads
the ``stat`` file of every process on the machine: about 10 ms of a window's 15 here,
more on a machine with more processes. The ``children`` files list only this process's
own children (per thread), so the cost follows this process's threads and children, not
the machine's. Where the kernel has no such files (built without CONFIG_PROC_CHILDREN,
or no /proc), :func:`descendants` answers None and CodeCarbon's own lookup stays.
"""

from __future__ import annotations

import functools
import os

import psutil

__all__ = ["descendants", "children_files_available", "ChildrenFromProc"]


@functools.cache
def children_files_available() -> bool:
    """Whether this kernel has the ``/proc/PID/task/TID/children`` files."""
    return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # the process ended
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError:  # the thread ended
            continue
    return pids


def descendants(pid: int) -> list[psutil.Process] | None:
    """Every descendant of ``pid`` (children, theirs, ...) as psutil processes, as
    ``psutil.Process(pid).children(recursive=True)`` finds them; None where this kernel
    cannot tell this way.

    Example:
        >>> import subprocess, sys
        >>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        >>> found = descendants(os.getpid())
        >>> found is None or child.pid in [p.pid for p in found]
        True
        >>> child.kill(); _ = child.wait()
    """
    if not children_files_available():
        return None
    found: list[psutil.Process] = []
    stack, seen = [pid], {pid}
    while stack:
        for child in _child_pids(stack.pop()):
            if child in seen:
                continue
            seen.add(child)
            try:
                found.append(psutil.Process(child))
            except psutil.NoSuchProcess:
                continue
            stack.append(child)
    return found


class ChildrenFromProc(psutil.Process):
    """psutil's process whose recursive ``children()`` is :func:`descendants` where this
    kernel can tell that way (psutil's own lookup otherwise)."""

    def children(self, recursive: bool = False) -> list[psutil.Process]:
        if recursive:
            found = descendants(self.pid)
            if found is not None:
                return found
        return super().children(recursive)

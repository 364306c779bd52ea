"""RAPL energy counters (CPU package and DRAM) through Linux powercap sysfs.

Each RAPL domain is a directory ``<root>/intel-rapl:N`` (package N) or
``<root>/intel-rapl:N:M`` (a subdomain: ``dram``, ``core``, ``uncore``) holding ``name``,
``energy_uj`` (a free-running counter, microjoules) and ``max_energy_range_uj`` (where the
counter wraps to 0). The meter reads the ``package-N`` domains as CPU and the ``dram``
domains as RAM; ``core``/``uncore`` are parts of the package and ``psys`` covers the whole
platform, so they are skipped to avoid counting energy twice. AMD CPUs expose the same
``intel-rapl`` zones (package only, no DRAM).

The counters cover the whole machine (every process). By default the figures are
attributed to this process by its share of the machine's busy CPU time over the window
(:mod:`ecotune.energy._share`); ``attribute=False`` keeps them whole-machine, labelled so.

A counter wraps after ``max_energy_range_uj`` (about 262 kJ, an hour or so of a busy
package): one wrap between two reads is corrected; a background thread reads every
``poll_interval_s`` while a window is open so that long windows never see two.

Counter faults: a step between two reads larger than the domain could draw in the time
between them (``max_power_w(domain)`` x elapsed: twice its largest powercap constraint, at
least :data:`PHYSICAL_MAX_W`) is no wrap but a reset (a driver reload, a firmware
reset) or a glitch. It is never counted as energy: after a reset the counter restarted
from 0, so its new value is counted where that is possible in the elapsed time, and
nothing otherwise; either way the window carries a warning that part of it was lost.

Since Linux 5.10 ``energy_uj`` is readable by root only; the probe then says how to grant
read access.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ecotune import names
from ecotune.energy._base import Availability, Measurement, Meter, MeterError
from ecotune.energy._share import CpuShareClock, CpuTimes, cpu_share

__all__ = ["RaplMeter", "rapl_status", "RAPL_ROOT", "grant_access_hint", "PHYSICAL_MAX_W",
           "counter_step_uj"]

RAPL_ROOT = "/sys/class/powercap"
#: A generous bound on what one RAPL domain can draw (W): the largest server packages
#: draw about 500 W. A counter step above it times the elapsed time is a reset.
PHYSICAL_MAX_W = 1000.0


def _now() -> float:
    """The clock between counter reads (tests replace it)."""
    return time.perf_counter()
_ZONE = re.compile(r"intel-rapl:\d+(:\d+)?$")  # not intel-rapl-mmio: a copy of the package


class RaplDomain(NamedTuple):
    """One counter: ``device`` is ``"cpu"`` (a package) or ``"ram"`` (DRAM)."""

    label: str
    device: str
    energy_path: Path
    max_range_uj: int
    #: The largest ``constraint_*_max_power_uw`` of the zone, in W (None: none readable).
    constraint_max_w: float | None = None

    @property
    def max_power_w(self) -> float:
        """What this domain can draw at most, generously: twice its largest constraint
        (short bursts run above the long-term limit), and never below PHYSICAL_MAX_W."""
        return max(PHYSICAL_MAX_W, 2.0 * (self.constraint_max_w or 0.0))


def grant_access_hint(root: str | Path = RAPL_ROOT) -> str:
    """How to let a non-root user read the counters (they are root-only since Linux 5.10)."""
    return (f"grant read access with `sudo chmod a+r {root}/intel-rapl:*/energy_uj "
            f"{root}/intel-rapl:*/intel-rapl:*/energy_uj` (until reboot), or for good with a "
            "udev rule such as `SUBSYSTEM==\"powercap\", ACTION==\"add\", "
            "RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"` in /etc/udev/rules.d/")


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii") as file:
        return file.read().strip()


def find_domains(root: str | Path = RAPL_ROOT) -> list[RaplDomain]:
    """The package and DRAM domains under ``root``, each counter read once.

    Raises:
        OSError: a counter cannot be read (``PermissionError`` where access is denied).
    """
    root = Path(root)
    domains: list[RaplDomain] = []
    seen: set[Path] = set()
    # Subzones appear both nested and as top-level links: resolve to count each once.
    for zone in sorted(list(root.glob("intel-rapl:*")) + list(root.glob("intel-rapl:*/*"))):
        if not _ZONE.match(zone.name) or zone.resolve() in seen:
            continue
        seen.add(zone.resolve())
        try:
            name = _read_text(zone / "name")
        except FileNotFoundError:
            continue
        if name.startswith("package"):
            device = "cpu"
        elif name == "dram":
            device = "ram"
        else:
            continue
        energy_path = zone / "energy_uj"
        int(_read_text(energy_path))  # raises PermissionError where not readable
        max_range_uj = int(_read_text(zone / "max_energy_range_uj"))
        domains.append(RaplDomain(f"{zone.name}:{name}", device, energy_path, max_range_uj,
                                  _constraint_max_w(zone)))
    return domains


def _constraint_max_w(zone: Path) -> float | None:
    """The largest readable, positive ``constraint_*_max_power_uw`` of ``zone``, in W."""
    values = []
    for path in zone.glob("constraint_*_max_power_uw"):
        try:
            values.append(int(_read_text(path)) * 1e-6)
        except (OSError, ValueError):
            continue
    return max((v for v in values if v > 0), default=None)


@functools.cache
def rapl_status(root: str | Path = RAPL_ROOT) -> Availability:
    """Whether RAPL counters can be read under ``root``. Cached; never raises.

    Example:
        >>> rapl_status("/nonexistent").available
        False
    """
    try:
        if not Path(root).is_dir():
            return Availability(False, f"no powercap interface ({root} does not exist)")
        domains = find_domains(root)
    except PermissionError as err:
        return Availability(False, f"RAPL counters exist but are not readable by this user "
                                   f"({err.filename}: permission denied); "
                                   f"{grant_access_hint(root)}")
    except (OSError, ValueError) as err:
        return Availability(False, f"RAPL counters under {root} could not be read: {err}")
    except Exception as err:  # a probe never raises
        return Availability(False, f"RAPL probe failed: {err!r}")
    if not any(d.device == "cpu" for d in domains):
        return Availability(False, f"no RAPL package domain under {root}")
    return Availability(True, ", ".join(d.label for d in domains))


def counter_delta_uj(before_uj: int, now_uj: int, max_range_uj: int) -> int:
    """Energy between two reads of a counter that wraps to 0 after ``max_range_uj``.

    Example:
        >>> counter_delta_uj(100, 250, 1000), counter_delta_uj(900, 50, 1000)
        (150, 150)
    """
    if now_uj >= before_uj:
        return now_uj - before_uj
    return now_uj + max_range_uj - before_uj


def counter_step_uj(before_uj: int, now_uj: int, max_range_uj: int,
                    bound_uj: float) -> tuple[int, bool]:
    """The energy between two reads, and whether the counter was reset between them.

    A step (one wrap corrected) of at most ``bound_uj`` (what the domain could draw in the
    time between the reads) is energy. A larger one is a reset, not a wrap: the counter
    restarted from 0, so ``now_uj`` is counted where it is within the bound, else nothing.

    Example:
        >>> counter_step_uj(900, 50, 1000, bound_uj=500)  # a wrap: +150
        (150, False)
        >>> counter_step_uj(900, 50, 10**9, bound_uj=500)  # no wrap that fast: a reset
        (50, True)
        >>> counter_step_uj(100, 9_000, 10**9, bound_uj=500)  # an impossible jump
        (0, True)
    """
    step_uj = counter_delta_uj(before_uj, now_uj, max_range_uj)
    if step_uj <= bound_uj:
        return step_uj, False
    return (now_uj if 0 <= now_uj <= bound_uj else 0), True


class RaplMeter(Meter):
    """CPU package and DRAM energy from RAPL counters (hardware figures, not estimates).

    Args:
        root: the powercap sysfs directory (tests point it at a temporary directory).
        attribute: attribute the machine's energy to this process by its share of busy
            CPU time (scope ``"process"``); False keeps whole-machine figures.
        poll_interval_s: read the counters this often while a window is open, so that a
            counter never wraps twice unseen; 0 disables the thread.
        share_clock: source of CPU times (tests pass a fake).
        clock: seconds clock between counter reads, for the physical bound on a step
            (None: ``perf_counter``; tests pass a fake).

    Raises:
        MeterError: the counters cannot be read here (the message says why).
    """

    name = "rapl"

    def __init__(self, root: str | Path = RAPL_ROOT, attribute: bool = True,
                 poll_interval_s: float = 60.0,
                 share_clock: CpuShareClock | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        # Settings only: the counters are first read when a window opens (or `domains`
        # is asked for), so that making a meter costs nothing and never touches sysfs.
        self.root = str(root)
        self.attribute = attribute
        self.poll_interval_s = poll_interval_s
        self.share_clock = share_clock or CpuShareClock()
        self._clock = clock
        self._lock = threading.Lock()
        self._last_uj: list[int] = []
        self._last_t_s = 0.0
        self._faults: list[str] = []
        self._total_uj: list[int] = []
        self._t0_s = 0.0
        self._times0 = CpuTimes(0.0, None)
        # Attribution per reading: the counters' energy since the last reading times this
        # process's CPU share over that interval, so that readings add up.
        self._seen_uj: list[int] = []
        self._times_read = CpuTimes(0.0, None)
        self._attributed_j: dict[str, float] = {}
        self._unattributed = False
        self._stop_event = threading.Event()
        self._poller: threading.Thread | None = None

    @functools.cached_property
    def domains(self) -> list[RaplDomain]:
        """The RAPL domains under ``root``, found at first use.

        Raises:
            MeterError: RAPL is not readable here (with the reason and a hint).
        """
        status = rapl_status(self.root)
        if not status.available:
            raise MeterError(f"the rapl meter is not available here: {status.reason}")
        try:
            return find_domains(self.root)
        except (OSError, ValueError) as err:
            raise MeterError(f"rapl meter: could not read the counters: {err}") from err

    @property
    def devices(self) -> tuple[str, ...]:  # type: ignore[override]
        """Devices this machine's RAPL domains cover (``cpu``, ``ram``)."""
        return tuple(sorted({d.device for d in self.domains}))

    def _read_uj(self, domain: RaplDomain) -> int:
        try:
            return int(_read_text(domain.energy_path))
        except (OSError, ValueError) as err:
            raise MeterError(f"rapl meter: could not read {domain.energy_path}: {err}") from err

    def poll(self) -> None:
        """Add what each counter advanced since the last read (one wrap corrected; a step
        the domain could not have drawn in the time since is a reset, with a warning)."""
        with self._lock:
            now_s = self._now()
            elapsed_s = max(now_s - self._last_t_s, 0.0)
            for i, domain in enumerate(self.domains):
                now_uj = self._read_uj(domain)
                bound_uj = domain.max_power_w * elapsed_s * 1e6
                step_uj, reset = counter_step_uj(self._last_uj[i], now_uj,
                                                 domain.max_range_uj, bound_uj)
                if reset:
                    self._faults.append(
                        f"rapl: {domain.label} counter jumped from {self._last_uj[i]} to "
                        f"{now_uj} uJ in {elapsed_s:.3g} s, more than it can draw "
                        f"({domain.max_power_w:.0f} W): treated as a reset, not a wrap; "
                        f"{step_uj} uJ counted for that interval, the energy before the "
                        "reset is lost (the figure is low)")
                self._total_uj[i] += step_uj
                self._last_uj[i] = now_uj
            self._last_t_s = now_s

    def _now(self) -> float:
        return self._clock() if self._clock is not None else _now()

    def _poll_loop(self) -> None:
        while not self._stop_event.wait(self.poll_interval_s):
            try:
                self.poll()
            except MeterError:
                pass  # the read at stop() reports the problem

    def _start(self) -> None:
        with self._lock:
            self._last_uj = [self._read_uj(d) for d in self.domains]
            self._last_t_s = self._now()
            self._total_uj = [0] * len(self.domains)
            self._faults = []
        self._times0 = self._times_read = self.share_clock.read()
        self._seen_uj = [0] * len(self.domains)
        self._attributed_j = {}
        self._unattributed = False
        self._t0_s = time.perf_counter()
        if self.poll_interval_s > 0:
            self._stop_event.clear()
            self._poller = threading.Thread(target=self._poll_loop, daemon=True,
                                             name="ecotune-rapl-poll")
            self._poller.start()

    def _read(self) -> Measurement:
        self.poll()
        duration_s = time.perf_counter() - self._t0_s
        times = self.share_clock.read() if self.attribute else None
        # The share over the interval since the last reading prices that interval's energy.
        share = cpu_share(self._times_read, times) if times is not None else None
        if share is None:
            self._unattributed = True
        for i, domain in enumerate(self.domains):
            new_j = (self._total_uj[i] - self._seen_uj[i]) * 1e-6
            self._seen_uj[i] = self._total_uj[i]
            self._attributed_j[domain.device] = (self._attributed_j.get(domain.device, 0.0)
                                                 + new_j * (1.0 if share is None else share))
        if times is not None:
            self._times_read = times
        window_share = cpu_share(self._times0, times) if times is not None else None
        parts = dict(self._attributed_j)
        warnings: tuple[str, ...] = ()
        scope = "process"
        if self._unattributed:
            scope = "machine"
            window_share = None
            warnings = ("rapl: whole-machine figure: it includes every process running "
                        "on this machine over the window" +
                        ("" if not self.attribute else " (the machine's CPU time could not "
                         "be read to attribute it)"),)
        with self._lock:
            warnings += tuple(dict.fromkeys(self._faults))
        energy_j = sum(parts.values())
        return Measurement(
            duration_s=duration_s, energy_j=energy_j, cpu_j=parts.get("cpu"), gpu_j=None,
            ram_j=parts.get("ram"), co2_g=None,
            meter=self.name, is_estimate=False, scope=scope,
            sources={device: self.name for device in parts}, cpu_share=window_share,
            warnings=warnings,
            # Attributed by CPU-time share, workers' figures add up to the machine's;
            # whole-machine figures do not.
            attribution=(names.ATTRIBUTION_UNSPLIT if scope == "machine"
                         else names.ATTRIBUTION_EXCLUSIVE))

    def _stop(self) -> Measurement:
        if self._poller is not None:
            self._stop_event.set()
            self._poller.join()
            self._poller = None
        return self._read()

    def _lap(self, exact: bool = False) -> Measurement:
        """The open window so far: a plain read of the counters; the window stays open."""
        return self._read()

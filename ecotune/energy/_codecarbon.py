"""CodeCarbon's offline tracker as a meter.

One tracker per process and set of GPUs (its first start probes the hardware for about 1.3 s; later
windows cost a few ms), shared by every :class:`CodeCarbonMeter` of the process and used
through its ``start_task``/``stop_task`` per-window API. The offline tracker takes a
country code and makes no network calls (the online one probes the network: never used).

Where CodeCarbon reads no hardware counter (no RAPL, no NVML, as on machines without a
GPU or powercap access) its CPU figure is a model (TDP x CPU load) and its RAM figure a
power by memory size: the measurement is then labelled an estimate.

Scope (:func:`codecarbon_scope`): the tracker runs with ``tracking_mode="process"``, but
only CodeCarbon's models honour it. Its CPU-load model (mode ``cpu_load``) then charges
TDP x this process's CPU time: this process's share. Its RAM model sizes this process's
memory, but never below two DIMMs (10 W on x86): a model per process, so k workers book at
least k x 10 W; it is labelled ``process``, and not split (it is no reading to split).
Every counter it reads covers the whole device, whatever the mode: RAPL (``intel_rapl``),
Intel Power Gadget, Windows EMI, Apple's powermetrics, and NVML for GPUs; so does its
``constant`` CPU mode (half the TDP, however busy this process) and a user-forced RAM
power. A window with any such part is scope ``machine``, with a warning naming the parts;
``process`` only where every figure is this process's share.

Across processes: CodeCarbon reads those counters itself, in each process, so concurrent
workers on one machine would each book the others' draw. Where it reads RAPL or GPUs'
NVML counters, ecotune reads the same counters through a ledger per counter and reports
this process's account instead (:mod:`ecotune.energy._codecarbon_ledgers`: each counter's
advance split among the windows open on it in every process, RAPL by each process's CPU
seconds, a GPU by open windows): the workers' figures add up to one reading of the
machine's counters, ``attribution`` ``"shared"`` where another process's window was open.
What it still reads whole in every process (a GPU read by power, the other counter modes,
the ``constant`` CPU mode, a forced RAM power) is ``"unsplit"``, with a warning. Trials in
threads of one process split the tracker's readings among them as every meter does.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time

from ecotune import names
from ecotune.energy._base import Availability, Measurement, Meter, MeterError
from ecotune.energy._codecarbon_ledgers import SharedCounters, gpu_counters, rapl_counters
from ecotune.energy.carbon import J_PER_KWH

__all__ = ["CodeCarbonMeter", "codecarbon_available", "codecarbon_status", "codecarbon_scope"]

# CodeCarbon CPU modes that read a hardware counter rather than model one.
#: The parts of a window the ledgers can split: what _machine_wide_parts calls them.
_SPLIT_PARTS = {"cpu": "cpu (intel_rapl)", "gpu": "gpu (NVML: the whole GPU)"}
_MEASURED_CPU_MODES = frozenset({"intel_rapl", "intel_power_gadget", "windows_emi",
                                 "apple_powermetrics"})


@functools.cache
def _task_lock(*tracker_key: object) -> threading.Lock:
    """One task at a time on each shared tracker."""
    return threading.Lock()


@functools.cache
def codecarbon_available() -> bool:
    """Whether CodeCarbon can be imported here. Cached; never raises."""
    try:
        import codecarbon  # noqa: F401
    except Exception:
        return False
    return True


def codecarbon_status() -> Availability:
    """:func:`codecarbon_available` with a reason. Cached; never raises."""
    if codecarbon_available():
        return Availability(True, "offline tracker (RAPL/NVML where readable, "
                                  "else a TDP x load model for the CPU and a constant for RAM)")
    return Availability(False, "codecarbon is not installed: pip install codecarbon")


@functools.cache
def _shared_tracker(measure_power_secs: float, gpu_ids: tuple[str, ...] | None = None):
    """The process's tracker (for these GPUs); created once (the slow hardware probe).
    ``gpu_ids``: ``CUDA_VISIBLE_DEVICES`` entries to read (None: CodeCarbon's default, the
    visible GPUs). Its country only feeds CodeCarbon's own emissions figure, which ecotune
    does not use (emissions come from the window's energy)."""
    # Its INFO/WARNING lines at start-up say nothing a user of ecotune needs.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    from codecarbon import OfflineEmissionsTracker

    return OfflineEmissionsTracker(
        country_iso_code="USA",
        log_level="error",
        output_methods=[],  # ecotune stores the figures itself: no emissions.csv
        measure_power_secs=measure_power_secs,
        # "process": the CPU load of this process, not of the whole machine.
        tracking_mode="process",
        allow_multiple_runs=True,
        **({"gpu_ids": list(gpu_ids)} if gpu_ids else {}),
    )


def _find_children_cheaply(tracker) -> bool:
    """Point the process models of ``tracker``'s CPU and RAM at this process's own
    ``/proc`` children files (:mod:`ecotune.energy._children`) instead of psutil's scan of
    every process on the machine: the same processes, found at a few percent of the
    cost. Hardware without those models, or a CodeCarbon whose models look different,
    is left as it is. Whether the tracker's hardware was there to look at."""
    import psutil

    from ecotune.energy._children import ChildrenFromProc, children_files_available

    hardware_list = getattr(tracker, "_hardware", None) or []
    if not children_files_available():
        return True  # nothing to do, ever
    for hardware in hardware_list:
        pid = getattr(hardware, "_pid", None)
        if not isinstance(pid, int):
            continue
        if isinstance(getattr(hardware, "_process", None), psutil.Process):  # CPU
            hardware._process = ChildrenFromProc(pid)
        if callable(getattr(hardware, "_get_children_memories", None)):  # RAM
            hardware._get_children_memories = functools.partial(_children_rss, pid)
    return bool(hardware_list)


def _children_rss(pid: int) -> list[int]:
    """What CodeCarbon's RAM model's ``_get_children_memories`` returns: the resident
    memory of each descendant (one that ended meanwhile is left out)."""
    import psutil

    from ecotune.energy._children import ChildrenFromProc

    rss = []
    for child in ChildrenFromProc(pid).children(recursive=True):
        try:
            rss.append(child.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return rss


class CodeCarbonMeter(Meter):
    """Energy from CodeCarbon's offline tracker (``start_task``/``stop_task``).

    ``gpu_ids`` are the ``CUDA_VISIBLE_DEVICES`` entries of the GPUs to read (None: every
    visible GPU; empty: none, so work on the CPU is not charged an idle GPU's draw).
    ``share_across_processes``: split the counters CodeCarbon reads (RAPL, NVML) with the
    meters of other processes (False: each books them whole, ``"unsplit"``).

    Example:
        >>> meter = CodeCarbonMeter()
        >>> with meter.window() as w:
        ...     _ = sum(i * i for i in range(100_000))
        >>> w.measurement.meter, w.measurement.energy_j > 0
        ('codecarbon', True)
    """

    name = "codecarbon"
    devices = ("cpu", "gpu", "ram")

    def __init__(self, measure_power_secs: float = 1.0,
                 gpu_ids: tuple[str, ...] | None = None,
                 share_across_processes: bool = True) -> None:
        super().__init__()
        if not codecarbon_available():
            raise MeterError("the codecarbon meter needs the codecarbon package: "
                             "pip install codecarbon")
        self.measure_power_secs = measure_power_secs
        self.gpu_ids = None if gpu_ids is None else tuple(gpu_ids)
        self._last_lap: Measurement | None = None  # the last real reading
        self._reported: Measurement | None = None  # the last figure lap() returned
        self._last_lap_t_s = 0.0
        self.share_across_processes = share_across_processes
        # This meter's accounts on the counters' ledgers while the backend window is open
        # (None: CodeCarbon reads no counter, or it is booked whole: ``_unsplit`` says why,
        # per part).
        self._counters: SharedCounters | None = None
        self._unsplit: dict[str, str] = {}
        self._joined = False  # on the ledgers (from the first window's start to the end)
        self._restarting = False  # a lap: the task stops and restarts, windows stay open
        self._warming = False

    def _key(self) -> tuple:
        return (self.measure_power_secs, self.gpu_ids or None)

    def _tracker(self):
        return _shared_tracker(*self._key())

    def warm_up(self) -> None:
        """Create the process's tracker and run one empty task now: CodeCarbon probes the
        hardware (about 1.3 s) when the tracker is made and again at its first task."""
        with self._share_lock:
            if self._open:
                return
            self._warming = True  # no window: not on the ledgers
            try:
                self._start()
                self._stop()
            finally:
                self._warming = False

    def _begin(self) -> None:
        self._last_lap = self._reported = None

    def _lap(self, exact: bool = False) -> Measurement:
        """The window so far. A real reading (stop and restart the task, about 8 ms) at
        most once per ``measure_power_secs``; in between, the last reading extended by the
        time since it was taken, at that reading's mean power: CodeCarbon samples no more
        finely anyway, and per-epoch readings of short epochs would otherwise cost 5-10 %
        of the work.

        Both parts of an extrapolation use one clock each: the reading's own duration,
        and ``perf_counter`` since the reading. (Extrapolating from the window's start
        instead counted the first window's 1.3 s hardware probe, which CodeCarbon's task
        duration leaves out, as energy at full power: trial 0's curve jumped 15-fold.)
        A reading lower than the extrapolation before it is reported at the earlier
        value, so the cumulative curve never decreases. ``exact`` always reads.
        """
        now_s = time.perf_counter()
        last = self._last_lap
        if (not exact and self._open and last is not None and last.duration_s > 0
                and now_s - self._last_lap_t_s < self.measure_power_secs):
            since_s = now_s - self._last_lap_t_s
            self._reported = _scaled(last, (last.duration_s + since_s) / last.duration_s)
        else:
            self._restarting = True
            try:
                self._last_lap = super()._lap()
            finally:
                self._restarting = False
            self._last_lap_t_s = time.perf_counter()
            self._reported = _at_least(self._last_lap, self._reported)
        return self._reported

    def _final(self, reading: Measurement) -> Measurement:
        # The stop is a real reading and may come in below the last lap's extrapolation:
        # reported at that lap's figure, as a lap is, so that the stop is never below it.
        return _at_least(reading, self._reported)

    def _start(self) -> None:
        _task_lock(*self._key()).acquire()  # one task at a time on the shared tracker
        try:
            tracker = self._tracker()
            tracker.start_task()
            if not getattr(tracker, "_ecotune_children", False):
                # Its hardware exists once its first task started.
                tracker._ecotune_children = _find_children_cheaply(tracker)
        except Exception as err:
            _task_lock(*self._key()).release()
            raise MeterError(f"codecarbon meter: could not start: {err}") from err
        if not self._joined and not self._warming:
            self._join_ledgers()

    # -- the ledgers: the counters CodeCarbon reads, split among processes -------------

    def _join_ledgers(self) -> None:
        """Join the ledger of each counter CodeCarbon reads (its hardware is known once
        its first task started), with the one window now opening."""
        self._joined, self._counters, self._unsplit = True, None, {}
        if not self.share_across_processes:
            self._unsplit = dict.fromkeys(_SPLIT_PARTS, "share_across_processes=False")
            return
        tracker = self._tracker()
        try:
            counters = rapl_counters(tracker)
            if self.gpu_ids != ():  # work on the CPU: its GPUs' figure is left out
                gpus, why = gpu_counters(tracker)
                counters += gpus
                if why is not None:
                    self._unsplit["gpu"] = why
        except (OSError, ValueError, AttributeError, TypeError) as err:
            # AttributeError, TypeError: CodeCarbon's readers are not as of 3.3.
            self._unsplit = dict.fromkeys(_SPLIT_PARTS, f"its ledgers could not be used ({err})")
            return
        if not counters:
            return
        self._counters = SharedCounters(counters)
        self._settle_ledgers(1)
        if self._counters is not None:
            self._counters.take_j()  # the accounts start here

    def _settle_ledgers(self, n_windows: int) -> None:
        if self._counters is None:
            return
        try:
            self._counters.settle(n_windows)
        except OSError as err:
            self._counters.leave()
            self._counters = None
            self._unsplit = dict.fromkeys(_SPLIT_PARTS, f"its ledgers could not be read ({err})")

    def _windows_changed(self, n_windows: int) -> None:
        self._settle_ledgers(n_windows)

    def _stop(self) -> Measurement:
        try:
            tracker = self._tracker()
            data = tracker.stop_task()
        except Exception as err:
            if self._joined and not self._restarting:
                self._end_ledgers()
            raise MeterError(f"codecarbon meter: could not stop: {err}") from err
        finally:
            _task_lock(*self._key()).release()
        counters = self._counters if self._joined else None
        if counters is not None:
            # Each counter's part of the task: this meter's account on its ledger.
            self._settle_ledgers(len(self._windows) if self._restarting else 0)
            counters = self._counters
        split_j = counters.take_j() if counters is not None else {}
        shared = counters is not None and counters.shared
        resets = counters.resets if counters is not None else []
        unsplit_why = dict(self._unsplit) if self._joined else {}
        if self._joined and not self._restarting:
            self._end_ledgers(left=counters is not None)
        if data is None:
            raise MeterError("codecarbon meter: the tracker returned no data for the window")
        cpu_j = data.cpu_energy * J_PER_KWH
        ram_j = data.ram_energy * J_PER_KWH
        gpus = [h for h in tracker._hardware if type(h).__name__ == "GPU"]
        gpu_j = data.gpu_energy * J_PER_KWH if gpus else None
        energy_j = data.energy_consumed * J_PER_KWH
        if self.gpu_ids == () and gpu_j is not None:
            # No GPU of this work's: leave out the GPUs' (idle) draw CodeCarbon read.
            energy_j, gpu_j = energy_j - gpu_j, None
        # CodeCarbon's whole-device deltas, replaced by this meter's accounts.
        if "cpu" in split_j:
            energy_j, cpu_j = energy_j - cpu_j + split_j["cpu"], split_j["cpu"]
        if "gpu" in split_j and gpu_j is not None:
            energy_j, gpu_j = energy_j - gpu_j + split_j["gpu"], split_j["gpu"]
        split = frozenset(split_j)
        parts = {"cpu": cpu_j, "gpu": gpu_j, "ram": ram_j}
        scope, warnings = codecarbon_scope(tracker, gpu=gpu_j is not None, split=split)
        unsplit = _unsplit_parts(tracker, gpu=gpu_j is not None, split=split)
        if resets:
            warnings += (f"codecarbon: {', '.join(resets)} stepped more than the device can "
                         "draw in the time: treated as a reset, that interval's energy is "
                         "lost (the figure is low)",)
        for part, why in unsplit_why.items():
            if _SPLIT_PARTS[part] in unsplit:
                warnings += (f"codecarbon: {_SPLIT_PARTS[part]} is booked whole, not split "
                             f"with other processes: {why}",)
        return Measurement(
            duration_s=float(data.duration),
            energy_j=energy_j,
            cpu_j=cpu_j,
            gpu_j=gpu_j,
            ram_j=ram_j,
            co2_g=None,  # the window's: from energy_j, with the study's country and PUE
            meter=self.name,
            is_estimate=_is_estimate(tracker),
            scope=scope,
            sources={device: self.name for device, j in parts.items() if j is not None},
            warnings=warnings,
            # A whole-device part read in every process and not split: "unsplit".
            attribution=(names.ATTRIBUTION_UNSPLIT if unsplit
                         else names.ATTRIBUTION_SHARED if shared
                         else names.ATTRIBUTION_EXCLUSIVE),
        )

    def _end_ledgers(self, left: bool = False) -> None:
        """The backend window ended: off the ledgers (``left``: its last settlement, with
        no window, left them already)."""
        if self._counters is not None and not left:
            self._counters.leave()
        self._counters, self._joined = None, False


def _scaled(m: Measurement, factor: float) -> Measurement:
    """``m`` with its duration and every energy figure multiplied by ``factor``.

    Built field by field rather than with ``dataclasses.replace`` (which walks the
    fields each call): it runs at every report between real readings, between an epoch's
    batches, where its cold cost was ~35 us an epoch. A test checks that it keeps every
    field."""
    cpu_j, gpu_j, ram_j, co2_g = m.cpu_j, m.gpu_j, m.ram_j, m.co2_g
    return Measurement(
        m.duration_s * factor, m.energy_j * factor,
        None if cpu_j is None else cpu_j * factor, None if gpu_j is None else gpu_j * factor,
        None if ram_j is None else ram_j * factor, None if co2_g is None else co2_g * factor,
        m.meter, m.is_estimate, m.scope, m.alternatives, m.sources, m.cpu_share, m.warnings,
        m.attribution)


def _at_least(m: Measurement, floor: Measurement | None) -> Measurement:
    """``m``, or ``floor``'s figures at ``m``'s duration where ``floor`` reported more."""
    if floor is None or m.energy_j >= floor.energy_j:
        return m
    return dataclasses.replace(floor, duration_s=m.duration_s)


def _is_estimate(tracker) -> bool:
    """True unless every device CodeCarbon covers is read from a hardware counter.

    CodeCarbon models RAM power from the memory size, so a window that includes RAM is
    always (partly) an estimate; the CPU is measured only in the counter modes above.
    """
    for hardware in tracker._hardware:
        kind = type(hardware).__name__
        if kind == "CPU" and getattr(hardware, "_mode", None) not in _MEASURED_CPU_MODES:
            return True
        if kind == "RAM":
            return True
    return False


def _machine_wide_parts(tracker, gpu: bool) -> list[str]:
    """The parts of a window CodeCarbon measured for the whole device (every process)."""
    parts: list[str] = []
    for hardware in tracker._hardware:
        kind = type(hardware).__name__
        tracking = getattr(hardware, "_tracking_mode", "machine")
        if kind == "CPU":
            mode = getattr(hardware, "_mode", None)
            if mode != "cpu_load":
                parts.append(f"cpu ({mode})")
            elif tracking != "process":
                parts.append("cpu (cpu_load of the whole machine)")
        elif kind == "RAM":
            if getattr(hardware, "_force_ram_power", None) is not None:
                parts.append("ram (a forced constant power)")
            elif tracking != "process":
                parts.append("ram (the machine's memory size)")
        elif kind == "GPU":
            if gpu:
                parts.append(_SPLIT_PARTS["gpu"])
        else:  # AppleSiliconChip (powermetrics), Raspberry, anything newer: not a share
            parts.append(f"{getattr(hardware, 'chip_part', kind).lower()} ({kind})")
    return parts


def _unsplit_parts(tracker, gpu: bool, split: frozenset[str] = frozenset()) -> list[str]:
    """The whole-device parts of a window not split with other processes: every part of
    :func:`_machine_wide_parts` but those (``cpu``, ``gpu``) the ledgers split."""
    done = {_SPLIT_PARTS[part] for part in split}
    return [part for part in _machine_wide_parts(tracker, gpu) if part not in done]


def codecarbon_scope(tracker, gpu: bool = True,
                     split: frozenset[str] = frozenset()) -> tuple[str, tuple[str, ...]]:
    """The scope of a window read by ``tracker``, and the warnings that go with it.

    ``"process"`` only where every part is this process's share (the CPU-load model under
    process tracking, the RAM model of the process's memory, no GPU figure); otherwise
    ``"machine"``. ``gpu``: whether the window's figure includes a GPU part; ``split``:
    its parts (``cpu``, ``gpu``) split with other processes through the ledgers.

    Example:
        >>> import types
        >>> CPU = type("CPU", (), {"_mode": "intel_rapl", "_tracking_mode": "process"})
        >>> codecarbon_scope(types.SimpleNamespace(_hardware=[CPU()]))[0]
        'machine'
    """
    parts = _machine_wide_parts(tracker, gpu)
    if not parts:
        return "process", ()
    unsplit = _unsplit_parts(tracker, gpu, split)
    warnings: tuple[str, ...] = ()
    if unsplit:
        warnings += ("codecarbon: whole-machine figure: " + ", ".join(unsplit) + " cover"
                     + ("s" if len(unsplit) == 1 else "") + " every process on the device, "
                     "not only this one's share",)
    if "cpu" in split:
        warnings += ("codecarbon: cpu (RAPL) split with ecotune's windows in other processes "
                     "through a ledger per counter, by each process's CPU time; it includes "
                     "the draw of any other work on the machine",)
    if "gpu" in split:
        warnings += ("codecarbon: gpu (NVML) split with ecotune's windows in other processes "
                     "through a ledger per GPU, by open windows; it includes the draw of any "
                     "other work on the GPU",)
    return "machine", warnings

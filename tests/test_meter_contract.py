"""The contract every meter keeps, checked once for every backend.

One class of checks (the shape of Optuna's ``StorageTestCase`` or scikit-learn's
``parametrize_with_checks``), parametrised over the backends: the CPU-time estimate,
CodeCarbon's real tracker, RAPL on a fake powercap tree, NVML on a fake ``pynvml`` (by
counter and by sampled power), and the combined ``auto`` meter (on the fakes, and as it
is on this machine). Each case says how to do one unit of work and, for the exact fakes,
how many joules that unit is, so "cumulative" is checked by number, not only by order.

To rerun against another version of the meters, run this file: nothing in it depends on
a backend's internals beyond the fakes' hooks (``break_start``, ``break_probe``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import ecotune.energy as energy
from ecotune.energy import (
    SCOPES,
    Availability,
    CodeCarbonMeter,
    CombinedMeter,
    CpuTimeMeter,
    Measurement,
    Meter,
    MeterError,
    NvmlMeter,
    RaplMeter,
    _codecarbon,
    _cputime,
    _nvml,
    _rapl,
    get_meter,
    meter_status,
)
from ecotune.energy._nvml import nvml_status
from ecotune.energy._rapl import rapl_status
from tests import fake_nvml
from tests.fake_nvml import FakeNvml, FakeNVMLError, TimedFakeNvml
from tests.test_meters import FakeRapl

DEVICES = ("cpu", "gpu", "ram")


def _busy(n: int) -> int:
    return sum(i * i for i in range(n))


def _raise(*args, **kwargs):
    raise FakeNVMLError("Unknown Error (test)")


@dataclasses.dataclass
class Case:
    """One backend under the contract.

    ``work(k)`` does k units of work; where ``unit_j`` is set (an exact fake) a unit is
    exactly that many joules and ``unit_s`` that many seconds of the meter's clock.
    ``measured`` are the devices whose figure is a number (the others must be None).
    ``break_start(mp)`` makes the backend's next reads fail (undone with ``mp``);
    ``probes`` are its availability probes and ``break_probe(mp)`` breaks what they read.
    """

    meter: Meter
    work: Callable[[int], None]
    measured: set[str]
    estimate: bool | None  # None: depends on the machine, only a bool
    scope: str | None  # None: depends on the machine, only one of SCOPES
    break_start: Callable[[pytest.MonkeyPatch], None]
    probes: list[Callable[[], Availability]]
    break_probe: Callable[[pytest.MonkeyPatch], None]
    unit_j: float | None = None
    #: The meters' threads running before the checks (other tests' leftovers).
    threads: set[threading.Thread] = dataclasses.field(default_factory=set)


def _clear_probes() -> None:
    for cached in (nvml_status, rapl_status, get_meter, _codecarbon.codecarbon_available):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_probes():
    _clear_probes()
    yield
    _clear_probes()


def _cputime_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    def break_start(m: pytest.MonkeyPatch) -> None:
        m.setattr(_cputime, "time", types.SimpleNamespace(process_time=_raise,
                                                          perf_counter=_raise))

    def break_probe(m: pytest.MonkeyPatch) -> None:
        m.setattr(energy, "cputime_status", _raise)

    # Work of decreasing size: a meter whose second lap held only the second part would
    # read less than its first lap.
    return Case(CpuTimeMeter(watts_per_core=10.0), lambda k: _busy(60_000 * k),
                {"cpu"}, True, "process", break_start,
                [lambda: meter_status("cputime")], break_probe)


def _codecarbon_break_probe(m: pytest.MonkeyPatch) -> None:
    import sys

    m.setitem(sys.modules, "codecarbon", None)  # import codecarbon raises ImportError
    _codecarbon.codecarbon_available.cache_clear()


def _codecarbon_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    meter = CodeCarbonMeter()
    tracker = meter._tracker()
    gpu = any(type(h).__name__ == "GPU" for h in tracker._hardware)

    def break_start(m: pytest.MonkeyPatch) -> None:
        m.setattr(tracker, "start_task", _raise)

    return Case(meter, lambda k: _busy(60_000 * k), {"cpu", "ram"} | ({"gpu"} if gpu else set()),
                True, None, break_start, [lambda: meter_status("codecarbon")],
                _codecarbon_break_probe)


def _rapl_fixture(mp: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeRapl, Callable]:
    """A fake powercap tree; ``work(k)`` adds k x (0.3 J package + 0.1 J DRAM) in k s."""
    rapl = FakeRapl(tmp_path / "powercap", max_uj=10**12)
    rapl.set(0, 0)
    counters = {"package": 0, "dram": 0}

    def work(k: int) -> None:
        counters["package"] += 300_000 * k
        counters["dram"] += 100_000 * k
        rapl.set(counters["package"], counters["dram"], dt_s=float(k))

    return rapl, work


def _rapl_break_start(rapl: FakeRapl) -> Callable[[pytest.MonkeyPatch], None]:
    def break_start(m: pytest.MonkeyPatch) -> None:
        real = _rapl._read_text

        def unreadable(path: Path) -> str:
            if path.name == "energy_uj":
                raise OSError(5, "Input/output error (test)", str(path))
            return real(path)

        m.setattr(_rapl, "_read_text", unreadable)

    return break_start


def _rapl_break_probe(m: pytest.MonkeyPatch) -> None:
    m.setattr(_rapl, "find_domains", lambda root: 1 / 0)
    m.setattr(energy, "rapl_status", _raise)  # and meter_status's own guard
    rapl_status.cache_clear()


def _rapl_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    rapl, work = _rapl_fixture(mp, tmp_path)
    mp.setattr(energy, "RAPL_ROOT", str(rapl.root))
    # The poller runs (so a failed start must not leave it behind); it polls rarely.
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, attribute=False, poll_interval_s=30)
    assert meter.devices == ("cpu", "ram")  # domains found before any fault is injected
    return Case(meter, work, {"cpu", "ram"}, False, "machine", _rapl_break_start(rapl),
                [lambda: rapl_status(str(rapl.root)), lambda: meter_status("rapl")],
                _rapl_break_probe, unit_j=0.4)


def _nvml_break_probe(m: pytest.MonkeyPatch) -> None:
    m.setattr(_nvml.pynvml, "nvmlInit", _raise)
    nvml_status.cache_clear()


def _nvml_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    """GPU 0 by its energy counter (and its power polled by the sampling thread)."""
    fake = fake_nvml.install(mp, FakeNvml(energy_mj=[1_000], power_mw=[50_000]))
    meter = NvmlMeter(sample_interval_s=0.01)

    def work(k: int) -> None:
        fake.energy_mj[0] += 2_000 * k

    def break_start(m: pytest.MonkeyPatch) -> None:
        m.setattr(fake, "nvmlDeviceGetTotalEnergyConsumption", _raise)

    return Case(meter, work, {"gpu"}, False, "machine", break_start,
                [nvml_status, lambda: meter_status("nvml")], _nvml_break_probe, unit_j=2.0)


def _nvml_power_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    """A GPU without a counter, read by sampled power on a fake clock: 120 W."""
    fake = fake_nvml.install(mp, TimedFakeNvml([120.0], counters=False))
    meter = NvmlMeter(sample_interval_s=0, clock=fake.clock)

    def work(k: int) -> None:
        for _ in range(k):
            fake.advance(0.5)
            if meter._open:
                meter.sample()
            fake.advance(0.5)

    def break_start(m: pytest.MonkeyPatch) -> None:
        m.setattr(fake, "nvmlDeviceGetPowerUsage", _raise)

    return Case(meter, work, {"gpu"}, False, "machine", break_start,
                [nvml_status, lambda: meter_status("nvml")], _nvml_break_probe, unit_j=120.0)


def _auto_fakes_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    """``auto`` on a machine with RAPL and an NVIDIA GPU (both fakes): RAPL for CPU and
    RAM, NVML for the GPU, the CPU-time estimate alongside."""
    rapl, rapl_work = _rapl_fixture(mp, tmp_path)
    mp.setattr(energy, "RAPL_ROOT", str(rapl.root))
    mp.setattr(_rapl, "_now", rapl.clock)
    mp.setattr(energy, "codecarbon_status",
               lambda: Availability(False, "not installed (test)"))
    fake = fake_nvml.install(mp, FakeNvml(energy_mj=[0], power_mw=[None]))
    meter = get_meter("auto")
    assert isinstance(meter, CombinedMeter) and meter.name == "rapl+nvml"
    meter.meters[0].attribute = False  # whole-machine figures: exact
    assert [m.name for m in meter.meters] == ["rapl", "nvml", "cputime"]

    def work(k: int) -> None:
        rapl_work(k)
        fake.energy_mj[0] += 1_000 * k

    def break_start(m: pytest.MonkeyPatch) -> None:
        # The second backend fails: the first one, already started, must be closed.
        m.setattr(fake, "nvmlDeviceGetTotalEnergyConsumption", _raise)

    def break_probe(m: pytest.MonkeyPatch) -> None:
        _rapl_break_probe(m)
        _nvml_break_probe(m)
        m.setattr(energy, "cputime_status", _raise)

    return Case(meter, work, {"cpu", "ram", "gpu"}, False, "machine", break_start,
                [functools.partial(meter_status, n) for n in ("rapl", "nvml", "cputime")],
                break_probe, unit_j=1.4)


def _auto_here_case(mp: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    """``auto`` as this machine makes it, without counters: CodeCarbon, the CPU-time
    estimate alongside (a combined meter of real backends)."""
    mp.setattr(_nvml, "pynvml", None)
    mp.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    meter = get_meter("auto")
    assert isinstance(meter, CombinedMeter)
    assert [m.name for m in meter.meters] == ["codecarbon", "cputime"]
    tracker = meter.meters[0]._tracker()
    gpu = any(type(h).__name__ == "GPU" for h in tracker._hardware)

    def break_start(m: pytest.MonkeyPatch) -> None:
        # The second backend fails after CodeCarbon's task started.
        m.setattr(_cputime, "time", types.SimpleNamespace(process_time=_raise,
                                                          perf_counter=_raise))

    def break_probe(m: pytest.MonkeyPatch) -> None:
        _codecarbon_break_probe(m)
        m.setattr(energy, "cputime_status", _raise)

    return Case(meter, lambda k: _busy(60_000 * k), {"cpu", "ram"} | ({"gpu"} if gpu else set()),
                True, None, break_start,
                [functools.partial(meter_status, n) for n in ("codecarbon", "cputime")],
                break_probe)


CASES = {"cputime": _cputime_case, "codecarbon": _codecarbon_case, "rapl-fake": _rapl_case,
         "nvml-fake": _nvml_case, "nvml-power-fake": _nvml_power_case,
         "auto-fakes": _auto_fakes_case, "auto-here": _auto_here_case}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> Case:
    threads = _threads()
    made = CASES[request.param](monkeypatch, tmp_path)
    made.threads = threads
    yield made
    if made.meter._open:  # a failed check leaves no thread or task behind
        made.meter.stop()


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ecotune-")}


def _assert_well_formed(m: Measurement, case: Case) -> None:
    """None is never 0: a device the backend measures is a number (0.0 when nothing was
    drawn), one it does not is None, and energy_j is the sum of the numbers."""
    assert isinstance(m, Measurement)
    for device in DEVICES:
        value = getattr(m, f"{device}_j")
        if device in case.measured:
            assert isinstance(value, float) and value >= 0 and math.isfinite(value), device
        else:
            assert value is None, (device, value)
    parts = [getattr(m, f"{d}_j") for d in DEVICES if getattr(m, f"{d}_j") is not None]
    assert m.energy_j == pytest.approx(sum(parts), rel=1e-6, abs=1e-12)
    assert m.energy_j >= 0 and m.duration_s >= 0
    assert m.co2_g is None or m.co2_g >= 0
    attrs = m.as_attrs()
    for device in set(DEVICES) - case.measured:
        assert f"{device}_energy_j" not in attrs  # not stored as 0 either
    assert set(m.sources) == case.measured
    # The estimate flag and the scope are set.
    assert isinstance(m.is_estimate, bool) and m.scope in SCOPES
    if case.estimate is not None:
        assert m.is_estimate is case.estimate
    if case.scope is not None:
        assert m.scope == case.scope
    assert attrs["energy_is_estimate"] is m.is_estimate and attrs["energy_scope"] == m.scope


class TestMeterContract:
    def test_laps_are_cumulative_and_the_stop_is_the_last_lap(self, case: Case) -> None:
        meter = case.meter
        meter.start()
        case.work(3)
        first = meter.lap()
        case.work(1)  # less work than before the first lap
        second = meter.lap()
        last = meter.lap()  # no work since the second
        stop = meter.stop()
        for m in (first, second, last, stop):
            _assert_well_formed(m, case)
        assert second.duration_s >= first.duration_s and stop.duration_s >= last.duration_s
        if case.unit_j is not None:  # exact: the laps count from the window's start
            assert first.energy_j == pytest.approx(3 * case.unit_j)
            assert second.energy_j == pytest.approx(4 * case.unit_j)
            assert last.energy_j == pytest.approx(second.energy_j)
            assert stop.energy_j == pytest.approx(last.energy_j)
            for device in case.measured:
                assert getattr(stop, f"{device}_j") == pytest.approx(
                    getattr(last, f"{device}_j"))
        else:
            # A meter whose laps restarted would read the smaller second part below the
            # first lap.
            assert first.energy_j > 0
            assert first.energy_j <= second.energy_j <= last.energy_j <= stop.energy_j

    def test_a_window_cannot_be_stopped_twice(self, case: Case) -> None:
        meter = case.meter
        with pytest.raises(MeterError, match="no open window"):
            meter.stop()
        with pytest.raises(MeterError, match="no open window"):
            meter.lap()
        meter.start()
        with pytest.raises(MeterError, match="already open"):
            meter.start()  # and the open window is not disturbed by it
        case.work(2)
        first = meter.stop()
        with pytest.raises(MeterError, match="no open window"):
            meter.stop()
        with pytest.raises(MeterError, match="no open window"):
            meter.lap()
        if case.unit_j is not None:
            assert first.energy_j == pytest.approx(2 * case.unit_j)
        # The meter is usable again, and a new window starts from zero.
        with meter.window() as w:
            case.work(1)
        _assert_well_formed(w.measurement, case)
        if case.unit_j is not None:
            assert w.measurement.energy_j == pytest.approx(case.unit_j)
        assert _threads() <= case.threads

    def test_a_window_closes_when_the_work_fails(self, case: Case) -> None:
        with pytest.raises(ZeroDivisionError):
            with case.meter.window() as w:
                case.work(1)
                raise ZeroDivisionError
        _assert_well_formed(w.measurement, case)
        assert not case.meter._open and _threads() <= case.threads

    def test_the_probe_never_raises(self, case: Case) -> None:
        for probe in case.probes:
            status = probe()
            assert isinstance(status, Availability) and status.available, status
        with pytest.MonkeyPatch.context() as m:
            case.break_probe(m)
            for probe in case.probes:
                status = probe()  # never raises, whatever the backend does
                assert isinstance(status, Availability)
                assert not status.available and status.reason
        _clear_probes()

    def test_warm_up_is_idempotent(self, case: Case) -> None:
        meter = case.meter
        meter.warm_up()
        meter.warm_up()
        assert not meter._open
        meter.start()
        case.work(1)
        meter.warm_up()  # inside a window: changes nothing
        case.work(1)
        m = meter.stop()
        _assert_well_formed(m, case)
        if case.unit_j is not None:
            assert m.energy_j == pytest.approx(2 * case.unit_j)
        meter.warm_up()
        with meter.window() as w:
            case.work(1)
        _assert_well_formed(w.measurement, case)

    def test_a_failed_start_releases_everything(self, case: Case) -> None:
        meter = case.meter
        before = _threads()
        with pytest.MonkeyPatch.context() as m:
            case.break_start(m)
            with pytest.raises(Exception):  # noqa: B017 - the backend's own error
                meter.start()
            assert not meter._open
            for part in getattr(meter, "meters", ()):
                assert not part._open, part.name  # the parts that had started are closed
            assert _threads() == before  # no poller or sampler left running
            for part in [meter, *getattr(meter, "meters", ())]:
                if isinstance(part, CodeCarbonMeter):  # its task lock is released
                    assert not _codecarbon._task_lock(*part._key()).locked()
        with pytest.raises(MeterError, match="no open window"):
            meter.stop()
        # The next start works and measures from its own start.
        meter.start()
        case.work(1)
        m = meter.stop()
        _assert_well_formed(m, case)
        if case.unit_j is not None:
            assert m.energy_j == pytest.approx(case.unit_j)
        assert _threads() <= case.threads


class _Steps(Meter):
    """A backend without a free-running counter: each backend window reads the joules
    added since its own start, so the base class's lap stops, adds up and restarts it
    (CodeCarbon's real readings go through that lap; ``cputime`` reads its clock)."""

    name = "steps"
    devices = ("cpu",)

    def __init__(self) -> None:
        super().__init__()
        self.joules = 0.0
        self._at = 0.0

    def _start(self) -> None:
        self._at = self.joules

    def _stop(self) -> Measurement:
        spent_j = self.joules - self._at
        return Measurement(1.0, spent_j, spent_j, None, None, None, self.name, True)


def test_the_default_lap_adds_up_the_backend_windows_it_restarts() -> None:
    meter = _Steps()
    window = meter.open()
    meter.joules += 3
    first = window.lap()
    meter.joules += 1
    second = window.lap()
    third = window.lap()
    meter.joules += 2
    stop = window.close()
    # Every lap counts from the window's start, however many restarts lie behind it.
    assert [m.energy_j for m in (first, second, third, stop)] == [3.0, 4.0, 4.0, 6.0]
    assert [m.duration_s for m in (first, second, third, stop)] == [1.0, 2.0, 3.0, 4.0]

"""Meters measure windows; trials carry labelled, positive energy attributes."""

from __future__ import annotations

import math
import time

import optuna
import pytest

import ecotune
from ecotune.energy import (
    CodeCarbonMeter,
    CpuTimeMeter,
    MeterError,
    carbon_intensity_g_per_kwh,
    co2_g_for,
    codecarbon_scope,
    get_meter,
    meter_status,
)
from ecotune.energy.carbon import J_PER_KWH
from tests.conftest import auto_meter_name, has_energy_counters

ENERGY_KEYS = {"energy_j", "cpu_energy_j", "ram_energy_j", "duration_s",
               "co2_g", "energy_meter", "energy_is_estimate"}


def _busy(n: int = 300_000) -> int:
    return sum(i * i for i in range(n))


@pytest.fixture
def pinned_intensity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grid intensities pinned by hand (g CO2-eq / kWh), not CodeCarbon's data: every
    CO2 figure below is checked against a number worked out here."""
    from ecotune.energy import carbon

    monkeypatch.setattr(carbon, "_energy_mix", lambda: {
        "DEU": {"carbon_intensity": 360.0}, "FRA": {"carbon_intensity": 36.0},
        "USA": {"carbon_intensity": 720.0}})


def test_codecarbon_window_is_labelled_and_consistent(pinned_intensity: None) -> None:
    meter = CodeCarbonMeter()
    with ecotune.measure(meter=meter, country="DEU") as window:
        _busy()
    m = window.measurement
    assert m.meter == "codecarbon"
    # CodeCarbon always models RAM power, so its figure is (at least partly) an estimate.
    assert m.is_estimate is True
    assert m.energy_j > 0 and m.cpu_j > 0 and m.ram_j > 0
    if not meter_status("nvml").available:
        assert m.gpu_j is None  # no GPU: not measured, not 0
    assert math.isclose(m.energy_j, m.cpu_j + m.ram_j + (m.gpu_j or 0.0), rel_tol=1e-6)
    assert math.isclose(m.co2_g, m.energy_j * 1e-4, rel_tol=1e-9)  # 360 g per 3.6 MJ
    # Process scope only where CodeCarbon models this process's share (no counter read).
    assert m.scope == codecarbon_scope(meter._tracker(), gpu=m.gpu_j is not None)[0]
    if not has_energy_counters():
        assert (m.scope, m.warnings) == ("process", ())


class _CountingTracker:
    """A stand-in for CodeCarbon's tracker: counts how often one is made, and reports
    ``kwh[k]`` (CPU, RAM) for its k-th task."""

    made = 0

    def __init__(self, **kwargs) -> None:
        type(self).made += 1
        self._hardware: list = []
        self.tasks = 0
        self.kwh = [(1e-6, 2e-6), (3e-6, 1e-6), (5e-6, 0.0), (2e-6, 2e-6)]

    def start_task(self) -> None:
        pass

    def stop_task(self):
        import types

        cpu, ram = self.kwh[self.tasks % len(self.kwh)]
        self.tasks += 1
        return types.SimpleNamespace(cpu_energy=cpu, ram_energy=ram, gpu_energy=0.0,
                                     energy_consumed=cpu + ram, duration=1.0)


def test_codecarbon_windows_share_one_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    import codecarbon

    from ecotune.energy._codecarbon import _shared_tracker

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", _CountingTracker)
    monkeypatch.setattr(_CountingTracker, "made", 0)
    _shared_tracker.cache_clear()  # the tracker is made here
    try:
        a, b = (CodeCarbonMeter(measure_power_secs=123.0) for _ in range(2))
        for meter in (a, b, a):
            with meter.window():
                pass
        assert _CountingTracker.made == 1  # one tracker (one hardware probe) for all
        assert a._tracker() is b._tracker() and a._tracker().tasks == 3
    finally:
        _shared_tracker.cache_clear()


def test_codecarbon_laps_add_up_to_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each real lap closes one task and opens the next: the laps are the running sums of
    the tasks' figures, and the stop is the sum of all of them."""
    from ecotune.energy import _codecarbon

    tracker = _CountingTracker()
    monkeypatch.setattr(_codecarbon, "_shared_tracker", lambda *key: tracker)
    meter = CodeCarbonMeter()
    meter.start()
    laps = [meter.lap(exact=True) for _ in range(3)]
    total = meter.stop()
    kwh = [sum(tracker.kwh[k]) for k in range(4)]
    assert [lap.energy_j for lap in laps] == pytest.approx(
        [J_PER_KWH * sum(kwh[:n]) for n in (1, 2, 3)])  # 10.8, 25.2, 43.2 J
    assert total.energy_j == pytest.approx(J_PER_KWH * sum(kwh))  # 57.6 J
    assert total.cpu_j == pytest.approx(J_PER_KWH * 11e-6)
    assert total.ram_j == pytest.approx(J_PER_KWH * 5e-6)
    assert total.duration_s == pytest.approx(4.0)


def test_cputime_meter_counts_cpu_seconds(pinned_intensity: None) -> None:
    meter = CpuTimeMeter(watts_per_core=10.0)
    cpu0_s = time.process_time()
    with ecotune.measure(meter=meter, country="FRA") as window:
        _busy()
    cpu_s = time.process_time() - cpu0_s
    m = window.measurement
    assert (m.meter, m.is_estimate, m.ram_j, m.gpu_j) == ("cputime", True, None, None)
    # The process's CPU seconds (not wall time: a busy machine gives it less) x 10 W.
    assert m.energy_j == pytest.approx(cpu_s * 10, rel=0.2, abs=0.02)
    assert m.co2_g == pytest.approx(m.energy_j * 1e-5)  # 36 g per 3.6 MJ


def test_get_meter_choices_and_errors() -> None:
    # Without counters auto is CodeCarbon; with RAPL or NVML it combines them.
    assert (get_meter("auto").name == "codecarbon") is not has_energy_counters()
    assert get_meter("auto") is get_meter("auto")  # one per process
    with pytest.raises(MeterError, match="unknown meter 'rapl2'"):
        get_meter("rapl2")
    with pytest.raises(ValueError, match="unknown country code 'ZZZ'"):
        with ecotune.measure(meter="cputime", country="ZZZ"):
            pass


def test_carbon_intensity_orders_countries() -> None:
    assert carbon_intensity_g_per_kwh("FRA") < carbon_intensity_g_per_kwh("POL")


def test_co2_is_energy_times_intensity_times_pue(pinned_intensity: None) -> None:
    assert co2_g_for(J_PER_KWH, "USA") == pytest.approx(720.0)
    assert co2_g_for(1800.0, "USA", pue=1.5) == pytest.approx(0.54)  # 0.5 Wh x 720 x 1.5
    with pytest.raises(ValueError, match="pue must be >= 1.0"):
        co2_g_for(1.0, "USA", pue=0.9)


def test_measure_records_positive_labelled_attributes_on_the_trial() -> None:
    study = ecotune.create_study("m", storage=None, sampler="random", seed=0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_int("n", 1, 3)
        with ecotune.measure(trial) as m:
            _busy()
        return 0.5, m.energy_j

    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        attrs = trial.user_attrs
        assert ENERGY_KEYS <= set(attrs)
        assert attrs["energy_j"] > 0 and attrs["duration_s"] > 0 and attrs["co2_g"] > 0
        assert attrs["energy_meter"] == auto_meter_name()
        if not has_energy_counters():  # a software model: an estimate, and no GPU figure
            assert attrs["energy_is_estimate"] is True and "gpu_energy_j" not in attrs
        assert trial.values[1] == attrs["energy_j"]


def test_measure_records_a_failed_window_too() -> None:
    study = ecotune.create_study("f", storage=None, sampler="random")
    trial = study.ask()
    with pytest.raises(RuntimeError):
        with ecotune.measure(trial, meter="cputime"):
            _busy(10_000)
            raise RuntimeError("boom")
    assert trial.user_attrs["energy_meter"] == "cputime"
    assert trial.user_attrs["energy_j"] >= 0


def test_reading_figures_inside_the_window_is_an_error() -> None:
    with ecotune.measure(meter="cputime") as m:
        with pytest.raises(RuntimeError, match="still open"):
            _ = m.energy_j


def test_codecarbon_laps_between_readings_extrapolate_at_the_last_mean_power() -> None:
    meter = CodeCarbonMeter(measure_power_secs=60.0)
    meter.start()
    _busy(200_000)
    real = meter.lap()  # the first lap is a real reading
    _busy(200_000)
    scaled = meter.lap()  # within measure_power_secs: scaled, not read
    total = meter.stop()
    assert scaled.duration_s > real.duration_s
    # The same mean power as the real reading.
    assert math.isclose(scaled.energy_j / scaled.duration_s, real.energy_j / real.duration_s,
                        rel_tol=1e-9)
    assert total.energy_j > real.energy_j

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


def test_codecarbon_window_is_labelled_and_consistent() -> None:
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
    assert math.isclose(m.co2_g, co2_g_for(m.energy_j, "DEU"), rel_tol=1e-3)
    # Process scope only where CodeCarbon models this process's share (no counter read).
    assert m.scope == codecarbon_scope(meter._tracker(), gpu=m.gpu_j is not None)[0]
    if not has_energy_counters():
        assert (m.scope, m.warnings) == ("process", ())


def test_codecarbon_windows_share_one_tracker() -> None:
    from ecotune.energy._codecarbon import _shared_tracker

    a, b = CodeCarbonMeter(), CodeCarbonMeter()
    for meter in (a, b):
        with meter.window():
            _busy(1000)
    assert _shared_tracker.cache_info().currsize >= 1
    assert a._tracker() is b._tracker()


def test_cputime_meter_counts_cpu_seconds() -> None:
    meter = CpuTimeMeter(watts_per_core=10.0)
    cpu0_s = time.process_time()
    with ecotune.measure(meter=meter, country="FRA") as window:
        _busy()
    cpu_s = time.process_time() - cpu0_s
    m = window.measurement
    assert (m.meter, m.is_estimate, m.ram_j, m.gpu_j) == ("cputime", True, None, None)
    # The process's CPU seconds (not wall time: a busy machine gives it less) x 10 W.
    assert m.energy_j == pytest.approx(cpu_s * 10, rel=0.2, abs=0.02)
    assert m.co2_g == pytest.approx(m.energy_j / J_PER_KWH * carbon_intensity_g_per_kwh("FRA"))


def test_window_misuse_is_an_error() -> None:
    meter = CpuTimeMeter()
    with pytest.raises(MeterError, match="no open window"):
        meter.stop()
    meter.start()
    with pytest.raises(MeterError, match="already open"):
        meter.start()
    meter.stop()


def test_window_closes_when_the_work_fails() -> None:
    meter = CpuTimeMeter()
    with pytest.raises(ZeroDivisionError):
        with meter.window():
            raise ZeroDivisionError
    meter.start()  # not still open
    meter.stop()


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
    assert co2_g_for(J_PER_KWH, "USA") == pytest.approx(carbon_intensity_g_per_kwh("USA"))
    assert co2_g_for(J_PER_KWH, "USA", pue=1.5) == pytest.approx(
        1.5 * carbon_intensity_g_per_kwh("USA"))


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


def test_laps_are_cumulative_and_add_up_to_the_window() -> None:
    meter = CpuTimeMeter(watts_per_core=10.0)
    meter.start()
    _busy(100_000)
    first = meter.lap()
    _busy(100_000)
    second = meter.lap()
    total = meter.stop()
    assert 0 < first.energy_j < second.energy_j <= total.energy_j
    assert first.duration_s < second.duration_s <= total.duration_s
    assert total.meter == "cputime" and total.ram_j is None
    with pytest.raises(MeterError, match="no open window"):
        meter.lap()


def test_codecarbon_laps_add_up() -> None:
    meter = CodeCarbonMeter()
    meter.start()
    _busy(100_000)
    lap = meter.lap()
    _busy(100_000)
    total = meter.stop()
    assert 0 < lap.energy_j < total.energy_j
    # The parts present add up to the total (CodeCarbon adds a GPU part where it sees one).
    parts = [j for j in (total.cpu_j, total.gpu_j, total.ram_j) if j is not None]
    assert math.isclose(total.energy_j, sum(parts), rel_tol=1e-6)


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

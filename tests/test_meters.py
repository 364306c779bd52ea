"""RAPL, NVML and auto meters against patched vendor interfaces: exact joules, no hardware.

RAPL reads a fake powercap tree in a temporary directory; NVML is a fake ``pynvml`` put in
place of the real one in ``ecotune.energy._nvml``. Counters are set by the test before each
read, so every figure is exact.
"""

from __future__ import annotations

import time
import types
from pathlib import Path

import optuna
import pytest

import ecotune
import ecotune.energy as energy
from ecotune.energy import (
    CombinedMeter,
    CpuShareClock,
    CpuTimeMeter,
    CpuTimes,
    MeterError,
    NvmlMeter,
    RaplMeter,
    _nvml,
    _rapl,
    cpu_share,
    get_meter,
    meter_status,
)
from ecotune.energy._nvml import nvml_status
from ecotune.energy._rapl import rapl_status
from tests import fake_nvml
from tests.fake_nvml import FakeNvml, TimedFakeNvml


@pytest.fixture(autouse=True)
def _fresh_probes():
    for cached in (nvml_status, rapl_status, get_meter):
        cached.cache_clear()
    yield
    for cached in (nvml_status, rapl_status, get_meter):
        cached.cache_clear()


# --- RAPL -----------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class FakeRapl:
    """A powercap tree: package 0 with DRAM and core subzones, plus an mmio copy.

    Time is modelled: ``clock`` is the meter's clock (``RaplMeter(clock=rapl.clock)``), and
    each :meth:`set` first advances it by ``dt_s`` (1 s unless told), so a step can be
    checked against what the package could draw in that time. ``max_power_uw`` writes a
    powercap constraint; :meth:`reset` puts a counter back to 0 (a driver reload).
    """

    def __init__(self, root: Path, dram: bool = True, max_uj: int = 1_000_000,
                 max_power_uw: int | None = None) -> None:
        self.root = root
        self.clock = FakeClock()
        self.package = self._zone(root / "intel-rapl:0", "package-0", max_uj)
        if max_power_uw is not None:
            (self.package / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
            (self.package / "constraint_1_max_power_uw").write_text("0\n")  # unset: ignored
        self._zone(self.package / "intel-rapl:0:1", "core", max_uj)  # part of the package
        self._zone(root / "intel-rapl-mmio:0", "package-0", max_uj)  # a copy: skipped
        self.dram = None
        if dram:
            self.dram = self._zone(self.package / "intel-rapl:0:0", "dram", max_uj)
            (root / "intel-rapl:0:0").symlink_to(self.dram)  # sysfs lists subzones twice

    @staticmethod
    def _zone(path: Path, name: str, max_uj: int) -> Path:
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
        (path / "energy_uj").write_text("0\n")
        return path

    def set(self, package_uj: int, dram_uj: int | None = None, dt_s: float = 1.0) -> None:
        self.clock.now_s += dt_s
        (self.package / "energy_uj").write_text(f"{package_uj}\n")
        if dram_uj is not None:
            (self.dram / "energy_uj").write_text(f"{dram_uj}\n")


class FakeShareClock:
    """CPU times from a fixed sequence (process seconds, machine busy seconds)."""

    def __init__(self, *times: tuple[float, float | None]) -> None:
        self.times = [CpuTimes(*t) for t in times]

    def read(self) -> CpuTimes:
        return self.times.pop(0)


@pytest.fixture
def rapl(tmp_path: Path) -> FakeRapl:
    return FakeRapl(tmp_path / "powercap")


@pytest.fixture
def pinned_intensity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grid intensities pinned by hand (g CO2-eq / kWh), not read from CodeCarbon's data:
    FRA 40, USA 400."""
    from ecotune.energy import carbon

    monkeypatch.setattr(carbon, "_energy_mix", lambda: {"FRA": {"carbon_intensity": 40.0},
                                                        "USA": {"carbon_intensity": 400.0}})


def test_rapl_reads_package_and_dram_exactly(rapl: FakeRapl) -> None:
    rapl.set(100_000, 50_000)
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, attribute=False, poll_interval_s=0)
    assert [d.label for d in meter.domains] == ["intel-rapl:0:package-0", "intel-rapl:0:0:dram"]
    meter.start()
    rapl.set(2_600_000 - 1_000_000, 800_000)  # package +1.5 J, DRAM +0.75 J
    m = meter.stop()
    assert (m.cpu_j, m.ram_j, m.gpu_j) == (pytest.approx(1.5), pytest.approx(0.75), None)
    assert m.energy_j == pytest.approx(2.25)
    assert (m.meter, m.is_estimate, m.scope) == ("rapl", False, "machine")
    assert m.co2_g is None  # meters measure energy; the trial's window adds emissions
    assert "whole-machine" in m.warnings[0]


def test_rapl_counter_wraparound(rapl: FakeRapl) -> None:
    rapl.set(900_000, 10)
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, attribute=False, poll_interval_s=0)
    meter.start()
    rapl.set(100_000, 20)  # wrapped at 1_000_000: +200_000 uJ
    assert meter.lap().cpu_j == pytest.approx(0.2)  # a lap is a plain cumulative read
    rapl.set(800_000, 30)  # +700_000 uJ, no wrap
    m = meter.stop()
    assert m.cpu_j == pytest.approx(0.9) and m.ram_j == pytest.approx(20e-6)


def test_rapl_polling_catches_a_wrap_between_reads(rapl: FakeRapl) -> None:
    rapl.set(0, 0)
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, attribute=False, poll_interval_s=0)
    meter.start()
    rapl.set(600_000, 0)
    meter.poll()
    rapl.set(200_000, 0)  # wrapped once since the poll: +600_000
    meter.poll()
    rapl.set(700_000, 0)
    assert meter.stop().cpu_j == pytest.approx(1.7)


def test_rapl_attributes_by_cpu_time_share(rapl: FakeRapl) -> None:
    rapl.set(0, 0)
    clock = FakeShareClock((1.0, 10.0), (2.0, 14.0))  # this process: 1 of 4 busy seconds
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, poll_interval_s=0, share_clock=clock)
    meter.start()
    rapl.set(400_000, 200_000)
    m = meter.stop()
    assert (m.scope, m.cpu_share, m.warnings) == ("process", 0.25, ())
    assert (m.cpu_j, m.ram_j) == (pytest.approx(0.1), pytest.approx(0.05))


def test_rapl_without_machine_cpu_time_stays_machine_wide_with_a_warning(
        rapl: FakeRapl) -> None:
    rapl.set(0, 0)
    meter = RaplMeter(root=rapl.root, clock=rapl.clock, poll_interval_s=0,
                      share_clock=FakeShareClock((1.0, None), (2.0, None)))
    meter.start()
    rapl.set(400_000, 0)
    m = meter.stop()
    assert (m.scope, m.cpu_share, m.cpu_j) == ("machine", None, pytest.approx(0.4))
    assert "could not be read to attribute it" in m.warnings[0]


def test_rapl_jump_beyond_what_the_package_can_draw_is_a_reset_not_a_wrap(
        tmp_path: Path) -> None:
    """The bound is twice the package's largest constraint (800 W here), at least 1 kW:
    1,600 J per second. A fall from 900 mJ to 50 mJ in 1 s with a 10 kJ range would be a
    wrap of 9,999.15 J: impossible, so a reset (50 mJ counted, a warning); a rise of
    1,998 J in 0.5 s is impossible too: nothing counted, a warning."""
    fake = FakeRapl(tmp_path / "pc", dram=False, max_uj=10_000_000_000, max_power_uw=800_000_000)
    assert fake.package.name == "intel-rapl:0"
    meter = RaplMeter(root=fake.root, clock=fake.clock, attribute=False, poll_interval_s=0)
    assert meter.domains[0].max_power_w == 1600.0  # twice the 800 W constraint, > 1 kW
    fake.set(900_000)
    meter.start()
    fake.set(50_000, dt_s=1.0)  # a wrap would be 9,999.15 J in 1 s: impossible
    first = meter.lap()
    assert first.cpu_j == pytest.approx(0.05) and first.energy_j >= 0
    (warning,) = [w for w in first.warnings if "reset" in w]
    assert "jumped from 900000 to 50000 uJ in 1 s" in warning and "50000 uJ counted" in warning
    fake.set(1_650_000, dt_s=1.0)  # +1.6 J in 1 s: fine
    assert meter.lap().cpu_j == pytest.approx(1.65)
    fake.set(2_000_000_000, dt_s=0.5)  # +1,998 J in 0.5 s (> 800 J): a glitch, not energy
    m = meter.stop()
    assert m.cpu_j == pytest.approx(1.65)
    assert sum("reset" in w for w in m.warnings) == 2


def test_rapl_steps_at_their_edges() -> None:
    """Exact counter arithmetic: a wrap adds the range; a step of exactly what the domain
    could draw is energy, one microjoule more is a reset."""
    from ecotune.energy._rapl import counter_delta_uj, counter_step_uj

    assert counter_delta_uj(999_990, 10, 1_000_000) == 20  # 10 to the wrap, 10 after it
    assert counter_delta_uj(5, 5, 1_000_000) == 0
    assert counter_step_uj(999_990, 10, 1_000_000, bound_uj=20) == (20, False)  # at it
    assert counter_step_uj(999_990, 11, 1_000_000, bound_uj=20) == (11, True)   # past it


def test_rapl_a_real_wrap_within_the_physical_bound_is_still_a_wrap(tmp_path: Path) -> None:
    fake = FakeRapl(tmp_path / "pc", dram=False, max_uj=262_143_328_850)  # a real range
    meter = RaplMeter(root=fake.root, clock=fake.clock, attribute=False, poll_interval_s=0)
    assert meter.domains[0].max_power_w == 1000.0  # no constraint: PHYSICAL_MAX_W
    fake.set(262_143_000_000)
    meter.start()
    fake.set(170_000_000, dt_s=1.0)  # wrapped: 0.32885 + 170 J in 1 s (< 1 kW)
    m = meter.stop()
    assert m.cpu_j == pytest.approx(170.32885)
    assert not any("reset" in w for w in m.warnings)


def test_rapl_package_only(tmp_path: Path) -> None:
    fake = FakeRapl(tmp_path / "pc", dram=False)
    meter = RaplMeter(root=fake.root, clock=fake.clock, attribute=False, poll_interval_s=0)
    meter.start()
    fake.set(3_000)
    m = meter.stop()
    assert (m.cpu_j, m.ram_j, meter.devices) == (pytest.approx(0.003), None, ("cpu",))


def test_rapl_permission_denied_is_unavailable_with_a_hint(
        rapl: FakeRapl, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _rapl._read_text

    def denied(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(_rapl, "_read_text", denied)
    status = rapl_status(str(rapl.root))
    assert not status.available
    assert "permission denied" in status.reason and "chmod a+r" in status.reason
    meter = RaplMeter(root=rapl.root)  # settings only: nothing read yet
    with pytest.raises(MeterError, match="not available here: .*udev rule"):
        meter.start()  # the first read says why


def test_rapl_probe_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not rapl_status(str(tmp_path / "missing")).available
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "name").write_text("package-0")
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("not a number")
    assert "could not be read" in rapl_status(str(tmp_path)).reason
    monkeypatch.setattr(_rapl, "find_domains", lambda root: 1 / 0)
    rapl_status.cache_clear()
    assert "probe failed" in rapl_status(str(tmp_path)).reason


# --- NVML -----------------------------------------------------------------------------

@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """GPU 0 with an energy counter, GPU 1 without (read by power), both visible."""
    return fake_nvml.install(monkeypatch, FakeNvml(energy_mj=[5_000, None],
                                                   power_mw=[90_000, 100_000]))


def test_nvml_counter_and_power_samples_exact(nvml: FakeNvml) -> None:
    clock = FakeClock()
    meter = NvmlMeter(sample_interval_s=0, clock=clock)
    assert meter.gpus == ("gpu0", "gpu1")
    meter.start()  # gpu1 at 100 W, t = 0
    clock.now_s, nvml.power_mw[1] = 1.0, 200_000
    meter.sample()  # trapezoid: (100 + 200) / 2 * 1 s = 150 J
    clock.now_s, nvml.energy_mj[0] = 2.0, 12_500  # gpu0 counter: +7.5 J
    m = meter.stop()  # gpu1: (200 + 200) / 2 * 1 s = 200 J
    assert m.gpu_j == pytest.approx(7.5 + 150 + 200)
    assert (m.cpu_j, m.ram_j, m.energy_j) == (None, None, m.gpu_j)
    assert (m.meter, m.is_estimate, m.scope) == ("nvml", False, "machine")
    assert "gpu0, gpu1" in m.warnings[0]


def test_nvml_power_method_integrates_power_even_with_a_counter(nvml: FakeNvml) -> None:
    clock = FakeClock()
    meter = NvmlMeter(sample_interval_s=0, clock=clock, cuda_indices=(0,), method="power")
    meter.start()  # gpu0 at 90 W
    clock.now_s, nvml.power_mw[0], nvml.energy_mj[0] = 2.0, 110_000, 999_000  # counter ignored
    m = meter.stop()
    assert (m.gpu_j, m.meter, m.sources) == (pytest.approx(200.0), "nvml-power",
                                             {"gpu": "nvml-power"})
    with pytest.raises(MeterError, match="without an energy counter .*: gpu1"):
        NvmlMeter(method="counter")


def test_nvml_reads_only_visible_gpus(nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml.install(monkeypatch, nvml, visible="0")
    meter = NvmlMeter(sample_interval_s=0)
    meter.start()
    nvml.energy_mj[0] += 1_000
    nvml.power_mw[1] = 300_000  # not visible: ignored
    assert (meter.gpus, meter.stop().gpu_j) == (("gpu0",), pytest.approx(1.0))
    for visible in (nvml.uuids[1], nvml.uuids[1][:8]):  # a full UUID, a unique prefix
        fake_nvml.install(monkeypatch, nvml, visible=visible)
        assert NvmlMeter(sample_interval_s=0).gpus == (visible,)
    fake_nvml.install(monkeypatch, nvml, visible="GPU-9")
    assert "Not Found" in nvml_status().reason
    fake_nvml.install(monkeypatch, nvml, visible="")
    assert "no GPU visible" in nvml_status().reason
    with pytest.raises(MeterError, match="nvml meter is not available"):
        NvmlMeter()


def test_nvml_reads_the_gpu_of_a_cuda_device_through_cuda_visible_devices(
        nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml.energy_mj[1] = 0  # both GPUs with counters
    fake_nvml.install(monkeypatch, nvml, visible="1,0")  # cuda:0 is GPU 1
    meter = NvmlMeter(cuda_indices=(0,))
    meter.start()
    nvml.energy_mj[0] += 7_000  # GPU 0: another process's work
    nvml.energy_mj[1] += 2_000
    assert (meter.gpus, meter.stop().gpu_j) == (("gpu1",), pytest.approx(2.0))
    assert NvmlMeter(cuda_indices=(1,)).gpus == ("gpu0",)
    with pytest.raises(MeterError, match=r"cuda:2 is not among the visible GPUs \(CUDA_VIS"):
        NvmlMeter(cuda_indices=(2,))
    with pytest.raises(MeterError, match="this work uses none"):
        NvmlMeter(cuda_indices=())
    fake_nvml.install(monkeypatch, nvml, visible=None)  # unset: cuda:i is NVML's GPU i
    assert NvmlMeter(cuda_indices=(1,)).gpus == ("gpu1",)


def test_nvml_mig_instances_read_their_gpu_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(energy_mj=[1_000, 0], power_mw=[50_000, 50_000],
                    migs={"MIG-aaaa": 0, "MIG-bbbb": 0})
    fake_nvml.install(monkeypatch, fake, visible="MIG-aaaa,MIG-bbbb")
    meter = NvmlMeter(sample_interval_s=0)
    assert meter.gpus == ("MIG-aaaa",)
    meter.start()
    fake.energy_mj[0] += 3_000
    fake.energy_mj[1] += 9_000  # not visible
    m = meter.stop()
    assert m.gpu_j == pytest.approx(3.0)  # the whole GPU, counted once
    assert any("MIG instance" in w and "every instance" in w for w in m.warnings)
    # CUDA 11.0's form, MIG-GPU-<parent uuid>/<gi>/<ci>, names the parent directly.
    fake_nvml.install(monkeypatch, fake, visible=f"MIG-{fake.uuids[1]}/1/0")
    assert NvmlMeter(sample_interval_s=0, cuda_indices=(0,)).gpus == (f"MIG-{fake.uuids[1]}/1/0",)


def test_nvml_gpu_without_energy_or_power_is_an_error(nvml: FakeNvml) -> None:
    nvml.power_mw[1] = None
    with pytest.raises(MeterError, match="neither energy nor power"):
        NvmlMeter()


def test_nvml_sampling_thread_integrates(nvml: FakeNvml) -> None:
    """Both GPUs read by power: 0 W at the window's start and stop, 190 W in between. Only
    the thread's samples see the 190 W (start and stop alone integrate to 0 J)."""
    nvml.energy_mj[0] = None
    nvml.power_mw[:] = [0, 0]
    meter = NvmlMeter(sample_interval_s=0.01)
    with meter.window() as w:
        time.sleep(0.02)
        on_s = time.perf_counter()
        nvml.power_mw[:] = [90_000, 100_000]
        time.sleep(0.1)
        nvml.power_mw[:] = [0, 0]
        off_s = time.perf_counter()
        time.sleep(0.02)
    expected_j = 190 * (off_s - on_s)
    # Each edge is off by at most a sampling gap at 190 W (a loaded machine: a few).
    assert w.measurement.gpu_j == pytest.approx(expected_j, abs=190 * 0.04)


# --- NVML counter faults, against a fake that models time ------------------------------

def test_nvml_backwards_counter_falls_back_to_polled_power(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """200 W throughout. A reset mid-window put the counter back to 0: read as a
    difference it gives -900 J (window from 1,000 J) or 200 J too little; the polled power
    gives the 300 J and 400 J drawn, with a warning."""
    fake = fake_nvml.install(monkeypatch, TimedFakeNvml([200.0], refresh_s=0.1))
    meter = NvmlMeter(sample_interval_s=0, clock=fake.clock)
    fake.offset_mj[0] = 1_000_000  # the counter stands at 1,000 J
    meter.start()
    fake.advance(1.0)
    fake.reset(0)
    fake.advance(0.5)
    m = meter.stop()  # the counter reads 100 J < 1,000 J
    assert m.gpu_j == pytest.approx(300.0) and m.energy_j > 0
    (warning,) = [w for w in m.warnings if "backwards" in w]
    assert "gpu0's energy counter went backwards (1000000 -> 100000 mJ" in warning
    assert "measured by polled power instead" in warning
    # Caught between reads too: the counter grows past its start again before the stop.
    meter.start()  # counter at 100 J
    fake.advance(1.0)
    meter.sample()  # 300 J
    fake.reset(0)
    fake.advance(0.5)
    meter.sample()  # 100 J: backwards
    fake.advance(1.5)  # 400 J: above the start, but the window's fault is kept
    m = meter.stop()
    assert m.gpu_j == pytest.approx(200.0 * 3.0)
    assert any("300000 -> 100000 mJ" in w for w in m.warnings)
    # The next window is clean again: the counter, exactly.
    meter.start()
    fake.advance(1.0)
    m = meter.stop()
    assert m.gpu_j == pytest.approx(200.0) and not any("backwards" in w for w in m.warnings)


def test_nvml_a_window_shorter_than_the_counter_period_is_measured_by_power(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter updates every 100 ms: a 40 ms window between two updates reads 0 J, one
    of 80 ms across an update reads 15 J (100 ms of 150 W); polled power gives 6 J and
    12 J. A window of 1 s is read by the counter."""
    fake = fake_nvml.install(monkeypatch, TimedFakeNvml([150.0], refresh_s=0.1))
    meter = NvmlMeter(sample_interval_s=0, clock=fake.clock)
    assert meter.counter_period_s == 0.1
    fake.advance(0.05)
    for window_s, expected_j in [(0.04, 6.0), (0.08, 12.0)]:
        meter.start()
        fake.advance(window_s)
        m = meter.stop()
        assert m.gpu_j == pytest.approx(expected_j) and m.gpu_j > 0
        assert any(f"the window ({window_s * 1000:.0f} ms) is shorter than gpu0's energy "
                   "counter update period (100 ms): measured by polled power" in w
                   for w in m.warnings)
    fake.advance(1.0 - fake.now_s)  # to t = 1 s, an update
    meter.start()
    fake.advance(1.0)
    m = meter.stop()
    assert m.gpu_j == pytest.approx(150.0)
    assert not any("polled power" in w for w in m.warnings)


def test_nvml_a_fault_without_readable_power_is_an_error_not_a_figure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml.install(monkeypatch, FakeNvml(energy_mj=[5_000], power_mw=[None]))
    clock = FakeClock()
    meter = NvmlMeter(sample_interval_s=0, clock=clock)
    meter.counter_period_s = 0.1
    meter.start()
    clock.now_s = 0.02
    with pytest.raises(MeterError, match=r"shorter than gpu0's energy counter update period "
                                         r"\(100 ms\), and its power cannot be read"):
        meter.stop()
    meter.start()
    clock.now_s, fake.energy_mj[0] = 1.0, 4_000  # backwards
    with pytest.raises(MeterError, match="went backwards .* cannot be measured"):
        meter.stop()


def test_nvml_power_is_a_one_second_mean_on_recent_gpus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step from 100 W to 300 W at the window's start: the counter reads the 600 J of
    the 2 s drawn; the power method, integrating a reading that is the mean of the last
    second (Ampere on), ramps up over that second and reads 200 + 300 = 500 J."""
    fake = fake_nvml.install(monkeypatch,
                             TimedFakeNvml([100.0], refresh_s=0.1, average_s=1.0))
    counter = NvmlMeter(sample_interval_s=0, clock=fake.clock)
    power = NvmlMeter(sample_interval_s=0, clock=fake.clock, method="power")
    fake.advance(10.0)
    assert fake.nvmlDeviceGetPowerUsage(0) == 100_000
    fake.draw(0, 300.0)
    counter.start()
    power.start()
    for _ in range(20):
        fake.advance(0.1)
        power.sample()
    assert fake.nvmlDeviceGetPowerUsage(0) == 300_000
    assert counter.stop().gpu_j == pytest.approx(600.0)
    assert power.stop().gpu_j == pytest.approx(500.0)


def test_nvml_probe_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml.install(monkeypatch, None)
    assert "pip install nvidia-ml-py" in nvml_status().reason
    nvml_status.cache_clear()

    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("driver exploded")

    monkeypatch.setattr(_nvml, "pynvml", Broken([1], [1]))
    assert "driver exploded" in nvml_status().reason
    with pytest.raises(MeterError, match="driver exploded"):
        get_meter("nvml")


# --- which GPUs a trial is charged for --------------------------------------------------

def test_codecarbon_reads_only_the_works_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """CodeCarbon is given the GPUs of the work (``gpu_ids``); work on the CPU gets no GPU
    figure, its (idle) GPU draw left out of energy_j. A fake tracker, exact figures."""
    from ecotune.energy import _codecarbon

    class GPU:  # CodeCarbon's hardware class is recognised by its name
        pass

    keys = []

    class Tracker:
        _hardware = [GPU()]

        def start_task(self) -> None:
            pass

        def stop_task(self) -> types.SimpleNamespace:  # kWh, as CodeCarbon reports
            return types.SimpleNamespace(cpu_energy=1e-6, ram_energy=2e-6, gpu_energy=3e-6,
                                         energy_consumed=6e-6, duration=1.0)

    def tracker(*key):
        keys.append(key)
        return Tracker()

    monkeypatch.setattr(_codecarbon, "_shared_tracker", tracker)
    fake_nvml.install(monkeypatch, None, visible="3,GPU-ab")
    for gpus, gpu_j, energy_j, ids in [(None, 10.8, 21.6, None), ((1,), 10.8, 21.6, ("GPU-ab",)),
                                       ((), None, 10.8, None)]:
        keys.clear()
        meter = energy.make_meter("codecarbon", gpus=gpus)
        with meter.window() as w:
            pass
        m = w.measurement
        assert (m.gpu_j, m.energy_j, m.cpu_j) == (
            None if gpu_j is None else pytest.approx(gpu_j), pytest.approx(energy_j),
            pytest.approx(3.6))
        assert keys[0] == (1.0, ids) and ("gpu" in m.sources) == (gpu_j is not None)


def _codecarbon_hardware(cls_name: str, **attrs):
    """One of CodeCarbon's own hardware objects (its real class, not initialised: no
    probe), with the attributes that say how it measures."""
    from codecarbon.external import hardware, ram

    cls = {"CPU": hardware.CPU, "GPU": hardware.GPU, "RAM": ram.RAM,
           "AppleSiliconChip": hardware.AppleSiliconChip}[cls_name]
    obj = object.__new__(cls)
    obj.__dict__.update(attrs)
    return obj


@pytest.mark.parametrize(("hardware", "gpu_j", "scope", "named"), [
    # Its models under process tracking: this process's share.
    ([("CPU", {"_mode": "cpu_load", "_tracking_mode": "process"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": None})],
     None, "process", []),
    # RAPL through CodeCarbon: the whole package, whatever the tracking mode.
    ([("CPU", {"_mode": "intel_rapl", "_tracking_mode": "process"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": None})],
     None, "machine", ["cpu (intel_rapl)"]),
    ([("CPU", {"_mode": "constant", "_tracking_mode": "process"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": None})],
     None, "machine", ["cpu (constant)"]),
    ([("CPU", {"_mode": "cpu_load", "_tracking_mode": "machine"}),
      ("RAM", {"_tracking_mode": "machine", "_force_ram_power": None})],
     None, "machine", ["cpu (cpu_load of the whole machine)", "ram (the machine's memory"]),
    ([("CPU", {"_mode": "cpu_load", "_tracking_mode": "process"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": 7.0})],
     None, "machine", ["ram (a forced constant power)"]),
    # A GPU read through NVML: the whole GPU.
    ([("CPU", {"_mode": "cpu_load", "_tracking_mode": "process"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": None}), ("GPU", {})],
     3e-6, "machine", ["gpu (NVML: the whole GPU)"]),
    ([("AppleSiliconChip", {"chip_part": "CPU"}),
      ("RAM", {"_tracking_mode": "process", "_force_ram_power": None})],
     None, "machine", ["cpu (AppleSiliconChip)"]),
])
def test_codecarbon_scope_follows_what_it_reads(
        monkeypatch: pytest.MonkeyPatch, hardware, gpu_j, scope, named) -> None:
    """Machine-wide wherever CodeCarbon reads a counter (RAPL, NVML, powermetrics) or
    models the whole CPU; process only where every part is this process's share."""
    from ecotune.energy import _codecarbon

    class Tracker:
        _hardware = [_codecarbon_hardware(name, **attrs) for name, attrs in hardware]

        def start_task(self) -> None:
            pass

        def stop_task(self) -> types.SimpleNamespace:  # kWh
            return types.SimpleNamespace(cpu_energy=1e-6, ram_energy=2e-6,
                                         gpu_energy=gpu_j or 0.0,
                                         energy_consumed=3e-6 + (gpu_j or 0.0), duration=1.0)

    monkeypatch.setattr(_codecarbon, "_shared_tracker", lambda *key: Tracker())
    with energy.CodeCarbonMeter().window() as w:
        pass
    m = w.measurement
    assert m.scope == scope
    assert m.as_attrs()["energy_scope"] == scope
    if scope == "process":
        assert m.warnings == ()
    else:
        warning, *why = m.warnings
        assert warning.startswith("codecarbon: whole-machine figure: ")
        assert all(part in warning for part in named)
        # A counter it could not split with other processes says why (this GPU object is
        # not set up: there are no devices to read through).
        assert all("is booked whole, not split with other processes" in w for w in why)
        assert len(why) == ("gpu (NVML: the whole GPU)" in named)
    assert energy.codecarbon_scope(Tracker(), gpu=gpu_j is not None)[0] == scope


def _study_trial() -> optuna.Trial:
    study = optuna.create_study(directions=["maximize", "minimize"])
    return study.ask()


def test_a_trial_on_the_cpu_is_not_charged_for_an_idle_gpu(
        nvml: FakeNvml, no_codecarbon: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    trial = _study_trial()
    with ecotune.measure(trial, meter="auto", device="cpu") as m:
        nvml.energy_mj[0] += 50_000  # the idle GPU's draw during the window
        nvml.power_mw[1] = 120_000
    assert m.meter == "cputime" and "gpu_energy_j" not in trial.user_attrs
    assert m.measurement.gpu_j is None and nvml.reads == 0  # NVML not even read
    # Asked for every visible GPU: the idle draw is charged (gpu0's counter exactly).
    trial = _study_trial()
    nvml.power_mw[1] = None  # keep the figure exact: gpu0 only
    fake_nvml.install(monkeypatch, nvml, visible="0")
    with ecotune.measure(trial, meter="auto", device="cpu", gpus="visible"):
        nvml.energy_mj[0] += 30_000
    assert trial.user_attrs["gpu_energy_j"] == pytest.approx(30.0)
    with pytest.raises(MeterError, match="uses none .*gpus = \"visible\""):
        ecotune.measure(meter="nvml", device="cpu").__enter__()


def test_auto_follows_the_trials_gpu(nvml: FakeNvml, no_codecarbon: None, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial on cuda:1 is charged GPU 1's energy only, and the window waits for the
    device (a fake sync here) before every reading."""
    import torch

    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(name=f"Fake GPU {i}", uuid="1111aaaa"))
    nvml.energy_mj[1] = 0
    queued_mj = [0]  # GPU work queued, done when the device is synchronised

    def sync() -> None:
        nvml.energy_mj[1] += queued_mj.pop()
        queued_mj.append(0)

    trial = _study_trial()
    with ecotune.measure(trial, meter="auto", device="cuda:1", epochs=1, sync=sync) as m:
        nvml.energy_mj[0] += 70_000  # GPU 0: not this trial's
        queued_mj[0] += 4_000
        m.report(1, 0.5)  # the epoch's 4 J are done before its reading
        queued_mj[0] += 1_000  # and this joule before the last reading
    assert trial.user_attrs["gpu_energy_j"] == pytest.approx(5.0)
    assert 4.0 <= m.curve[0].energy_j < 5.0  # 4 J of GPU and a little CPU time
    assert trial.user_attrs["energy_details"]["sources"]["gpu"] == "nvml"
    assert trial.user_attrs["training"]["device"] == {
        "type": "cuda", "index": 1, "name": "Fake GPU 1", "uuid": "GPU-1111aaaa"}


# --- auto: fallback order, labels, alternatives --------------------------------------

@pytest.fixture
def no_codecarbon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the auto tests fast and exact: CodeCarbon 'not installed'."""
    monkeypatch.setattr(energy, "codecarbon_status",
                        lambda: energy.Availability(False, "not installed (test)"))


def test_auto_takes_rapl_for_cpu_ram_and_nvml_for_gpu(
        rapl: FakeRapl, nvml: FakeNvml, no_codecarbon: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "RAPL_ROOT", str(rapl.root))
    monkeypatch.setattr(_rapl, "_now", rapl.clock)  # the meter get_meter makes
    nvml.energy_mj[1] = 0  # both GPUs with counters
    meter = get_meter("auto")
    assert isinstance(meter, CombinedMeter) and meter.name == "rapl+nvml"
    meter.meters[0].share_clock = FakeShareClock((1.0, 10.0), (2.0, 12.0))  # half
    rapl.set(0, 0)
    meter.start()
    rapl.set(2_000_000, 1_000_000)
    nvml.energy_mj[0] += 30_000
    nvml.energy_mj[1] += 10_000
    m = meter.stop()
    assert (m.gpu_j, m.is_estimate, m.scope) == (pytest.approx(40.0), False, "machine")
    assert (m.cpu_share, m.cpu_j, m.ram_j) == (0.5, pytest.approx(1.0), pytest.approx(0.5))
    assert m.energy_j == pytest.approx(41.5)
    assert m.sources == {"cpu": "rapl", "ram": "rapl", "gpu": "nvml"}
    assert list(m.alternatives) == ["cputime"]  # the software estimate, for comparison
    assert any("whole GPU" in w for w in m.warnings)


def test_auto_falls_back_per_device(tmp_path: Path, no_codecarbon: None,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_nvml, "pynvml", None)
    fake = FakeRapl(tmp_path / "pc", dram=False)
    monkeypatch.setattr(energy, "RAPL_ROOT", str(fake.root))
    meter = get_meter("auto")
    assert meter.name == "rapl" and meter.chosen == {"cpu": meter.meters[0]}
    with meter.window() as w:
        pass
    assert w.measurement.ram_j is None and set(w.measurement.alternatives) == {"cputime"}

    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    get_meter.cache_clear()
    assert isinstance(get_meter("auto"), CpuTimeMeter)  # the last resort, alone


def test_auto_here_is_codecarbon_with_cputime_alongside(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(_nvml, "pynvml", None)
    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    meter = get_meter("auto")
    assert meter.name == "codecarbon" and meter.devices == ("cpu", "ram")
    assert [m.name for m in meter.meters] == ["codecarbon", "cputime"]


def test_explicit_unavailable_backend_is_a_clear_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    with pytest.raises(MeterError, match="rapl meter is not available here: no powercap"):
        get_meter("rapl")
    with pytest.raises(ValueError, match="pue must be >= 1.0"):
        with ecotune.measure(meter="cputime", pue=0.5):
            pass


def test_meter_status_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom():
        raise OSError("weird")

    monkeypatch.setattr(energy, "cputime_status", boom)
    assert meter_status("cputime") == energy.Availability(False, "cputime probe failed: "
                                                                 "OSError('weird')")


# --- several workers: CPU-time share -------------------------------------------------

def test_cpu_share_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: busy = 100+5+50+3+2+1 jiffies
    stat.write_text("cpu  100 5 50 1000 40 3 2 1 0 0\ncpu0 1 2 3\n")
    clock = CpuShareClock(stat)
    assert clock.machine_busy_s() == pytest.approx(161 * clock._tick_s)
    assert CpuShareClock(tmp_path / "none").machine_busy_s() is None
    assert cpu_share(CpuTimes(0.0, 1.0), CpuTimes(3.0, 2.0)) == 1.0  # clamped
    assert cpu_share(CpuTimes(0.0, 1.0), CpuTimes(0.0, 1.0)) is None  # no time passed


# --- labels and alternatives on a trial ------------------------------------------------

def test_alternatives_and_scope_are_recorded_on_the_trial(pinned_intensity: None) -> None:
    low, high = CpuTimeMeter(watts_per_core=5.0), CpuTimeMeter(watts_per_core=10.0)
    high.name = "cputime-10w"
    meter = CombinedMeter({"cpu": low}, alternatives=[high])
    trial = optuna.trial.FixedTrial({})
    with ecotune.measure(trial, ecotune.EnergyOptions(meter, country="FRA", pue=1.2)) as m:
        sum(i * i for i in range(200_000))
    attrs = trial.user_attrs
    assert attrs["energy_meter"] == "cputime" and attrs["energy_scope"] == "process"
    assert attrs["energy_details"]["alternatives_j"]["cputime-10w"] == pytest.approx(
        2 * attrs["energy_j"], rel=0.05)
    # 40 g/kWh x PUE 1.2 = 48 g per 3.6 MJ.
    assert attrs["co2_g"] == pytest.approx(attrs["energy_j"] * 48.0 / 3.6e6)
    assert attrs["energy_details"]["sources"] == {"cpu": "cputime"}
    assert m.is_estimate


# --- the `ecotune meters` command ------------------------------------------------------

def test_meters_command_lists_backends_and_sample_readings(
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ecotune.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(_nvml, "pynvml", None)
    monkeypatch.setattr(energy, "RAPL_ROOT", str(tmp_path / "absent"))
    monkeypatch.setattr(energy, "codecarbon_status",
                        lambda: energy.Availability(False, "not installed (test)"))
    assert main(["meters", "--seconds", "0.05", "--country", "FRA"]) == 0
    out = capsys.readouterr().out
    assert "no powercap interface" in out and "pip install nvidia-ml-py" in out
    assert "not installed (test)" in out
    assert "estimate, scope process" in out  # cputime's sample reading
    assert "auto: everything from cputime" in out
    assert main(["meters", "--seconds", "0"]) == 2


class _FakeClock:
    """A clock that moves only when the test says: ``perf_counter`` and ``process_time``
    alike (the work is all CPU)."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


class _FakeCodeCarbonTracker:
    """CodeCarbon's task API at ``power_w``: a task's duration and energy are the fake
    clock's seconds since its start. Its first task first probes the hardware for 1.3 s,
    which (as CodeCarbon's) the task's duration leaves out."""

    _hardware: list = []

    def __init__(self, clock: _FakeClock, power_w: float) -> None:
        self.clock, self.power_w, self.probed, self._t0_s = clock, power_w, False, 0.0

    def start_task(self) -> None:
        if not self.probed:
            self.clock.advance(1.3)
            self.probed = True
        self._t0_s = self.clock()

    def stop_task(self):
        from ecotune.energy.carbon import J_PER_KWH

        duration_s = self.clock() - self._t0_s
        kwh = self.power_w * duration_s / J_PER_KWH
        return types.SimpleNamespace(duration=duration_s, cpu_energy=kwh, ram_energy=0.0,
                                     gpu_energy=0.0, energy_consumed=kwh)


@pytest.mark.parametrize("meter", ["codecarbon", "cputime"])
def test_learning_curve_energy_adds_up_epoch_by_epoch_from_a_first_window(
        meter: str, monkeypatch) -> None:
    """Epochs of 0.25 s of CPU at a constant power, on a patched clock: every epoch of the
    cumulative curve costs exactly power x 0.25 s (so never more than twice the mean
    power), and its last point is the window's energy. For CodeCarbon it is the first
    window of a fresh tracker, whose 1.3 s hardware probe must not count (laps between
    real readings extrapolate from the last reading, never from the window's start)."""
    from ecotune.energy import _codecarbon, _cputime

    clock = _FakeClock()
    fake_time = types.SimpleNamespace(perf_counter=clock, process_time=clock)
    if meter == "codecarbon":
        monkeypatch.setattr(_codecarbon, "time", fake_time)
        power_w = 40.0
        chosen = energy.CodeCarbonMeter(measure_power_secs=1.0)
        tracker = _FakeCodeCarbonTracker(clock, power_w)
        monkeypatch.setattr(chosen, "_tracker", lambda: tracker)
    else:
        monkeypatch.setattr(_cputime, "time", fake_time)
        power_w = 12.0
        chosen = CpuTimeMeter(watts_per_core=power_w)
    epochs, epoch_s = 8, 0.25
    with ecotune.measure(meter=chosen, epochs=epochs) as m:
        for epoch in range(1, epochs + 1):
            clock.advance(epoch_s)
            m.report(epoch, 0.5)
    energies = [0.0] + [r.energy_j for r in m.curve]
    steps = [b - a for a, b in zip(energies, energies[1:])]
    assert steps == pytest.approx([power_w * epoch_s] * epochs, rel=1e-9)
    assert m.energy_j == pytest.approx(energies[-1], rel=1e-9)
    assert m.energy_j / m.duration_s == pytest.approx(power_w, rel=1e-9)


def test_codecarbon_s_extrapolation_scales_the_figures_and_keeps_every_other_field() -> None:
    # _scaled builds the Measurement field by field (it runs at every report): a field
    # added to Measurement must come through as dataclasses.replace would carry it.
    import dataclasses

    from ecotune.energy import Measurement, _codecarbon

    _scaled = _codecarbon._scaled

    m = Measurement(2.0, 10.0, 6.0, 3.0, 1.0, 0.5, "codecarbon", True, scope="machine",
                    alternatives={"rapl": 9.0}, sources={"cpu": "codecarbon"},
                    cpu_share=0.25, warnings=("w",), attribution="shared")
    scaled = _scaled(m, 1.5)
    figures = {"duration_s", "energy_j", "cpu_j", "gpu_j", "ram_j", "co2_g"}
    assert scaled == dataclasses.replace(m, **{f: getattr(m, f) * 1.5 for f in figures})
    assert _scaled(dataclasses.replace(m, gpu_j=None, co2_g=None), 2.0).gpu_j is None

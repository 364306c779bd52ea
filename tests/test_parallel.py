"""Trials at once: windows that overlap on one meter, threads (n_jobs), several GPUs,
several worker processes. Concurrency is driven step by step (fake counters and CPU
clocks set between the windows' events), never by sleeping."""

from __future__ import annotations

import importlib.util
import multiprocessing
import threading
import time
from pathlib import Path

import optuna
import pytest

import ecotune
from ecotune import names
from ecotune.energy import (
    CombinedMeter,
    CpuTimes,
    Measurement,
    Meter,
    NvmlMeter,
    RaplMeter,
    get_meter,
)
from tests import fake_nvml
from tests.conftest import require_component
from tests.test_meters import FakeRapl


class CounterMeter(Meter):
    """A backend whose counters the test sets: ``cpu_j``, ``ram_j`` and time ``t_s``."""

    name = "counter"
    devices = ("cpu", "ram")

    def __init__(self) -> None:
        super().__init__()
        self.cpu_j = self.ram_j = self.t_s = 0.0
        self.lock = threading.Lock()
        self._base = (0.0, 0.0, 0.0)

    def add(self, cpu_j: float, ram_j: float = 0.0, dt_s: float = 0.0) -> None:
        with self.lock:
            self.cpu_j += cpu_j
            self.ram_j += ram_j
            self.t_s += dt_s

    def _start(self) -> None:
        self._base = (self.cpu_j, self.ram_j, self.t_s)

    def _lap(self, exact: bool = False) -> Measurement:
        cpu_j, ram_j = self.cpu_j - self._base[0], self.ram_j - self._base[1]
        return Measurement(self.t_s - self._base[2], cpu_j + ram_j, cpu_j, None, ram_j, None,
                           self.name, False)

    def _stop(self) -> Measurement:
        return self._lap()


def test_overlapping_windows_split_each_reading_and_add_up_to_the_meter() -> None:
    meter = CounterMeter()
    clocks = {"a": 0.0, "b": 0.0}
    a = meter.open(cpu_clock=lambda: clocks["a"])
    meter.add(4.0, 2.0, 1.0)  # a alone: all of it
    clocks["a"] += 1.0
    b = meter.open(cpu_clock=lambda: clocks["b"])
    meter.add(6.0, 4.0, 2.0)  # cpu by thread CPU time (1 s : 2 s), ram equally
    clocks["a"] += 1.0
    clocks["b"] += 2.0
    lap = a.lap()
    assert (lap.cpu_j, lap.ram_j, lap.duration_s) == (pytest.approx(6.0), pytest.approx(4.0),
                                                      pytest.approx(3.0))
    assert lap.attribution == names.ATTRIBUTION_SHARED
    meter.add(3.0, 2.0, 1.0)  # neither thread used the CPU: equally
    m_a = a.close()
    meter.add(2.0, 1.0, 1.0)  # b alone again
    clocks["b"] += 1.0
    m_b = b.close()
    assert (m_a.cpu_j, m_a.ram_j, m_a.energy_j) == (pytest.approx(7.5), pytest.approx(5.0),
                                                    pytest.approx(12.5))
    assert (m_b.cpu_j, m_b.ram_j, m_b.energy_j) == (pytest.approx(7.5), pytest.approx(4.0),
                                                    pytest.approx(11.5))
    assert m_a.duration_s == m_b.duration_s == pytest.approx(4.0)
    # Conserved: the windows add up to what the meter read over the same time.
    assert m_a.energy_j + m_b.energy_j == pytest.approx(meter.cpu_j + meter.ram_j)
    assert m_a.as_attrs()[names.ATTR_ENERGY_ATTRIBUTION] == names.ATTRIBUTION_SHARED
    assert "thread CPU time" in m_a.as_attrs()[names.ATTR_ENERGY_DETAILS]["shared_by"]
    # A window alone from start to end gets the backend's reading unchanged.
    c = meter.open()
    meter.add(1.0, 0.5, 1.0)
    m_c = c.close()
    assert (m_c.energy_j, m_c.attribution) == (pytest.approx(1.5), names.ATTRIBUTION_EXCLUSIVE)


def test_unreadable_thread_clocks_split_cpu_equally() -> None:
    meter = CounterMeter()
    a, b = meter.open(cpu_clock=lambda: None), meter.open(cpu_clock=lambda: None)
    meter.add(8.0)
    assert a.close().cpu_j == pytest.approx(4.0) and b.close().cpu_j == pytest.approx(4.0)


def test_one_window_per_thread_through_start_and_stop() -> None:
    meter = CounterMeter()
    meter.start()
    results = {}

    def other() -> None:
        meter.start()  # another thread: its own window, not "already open"
        meter.add(2.0)
        results["other"] = meter.stop()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    mine = meter.stop()
    assert mine.energy_j + results["other"].energy_j == pytest.approx(2.0)


def test_windows_on_two_gpus_get_their_own_gpu_and_share_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml.install(monkeypatch, fake_nvml.FakeNvml(energy_mj=[0, 0],
                                                            power_mw=[None, None]))
    gpu0, gpu1 = get_meter("nvml", gpus=(0,)), get_meter("nvml", gpus=(1,))
    assert gpu0 is not gpu1 and gpu0 is get_meter("nvml", gpus=(0,))
    first, second, other = gpu0.open(), gpu0.open(), gpu1.open()
    fake.energy_mj[:] = [10_000, 4_000]
    m_other, m_first, m_second = other.close(), first.close(), second.close()
    assert (m_other.gpu_j, m_other.attribution) == (pytest.approx(4.0),
                                                    names.ATTRIBUTION_EXCLUSIVE)
    assert m_first.gpu_j == m_second.gpu_j == pytest.approx(5.0)
    assert m_first.attribution == names.ATTRIBUTION_SHARED
    # auto on two GPUs: one CPU/RAM backend for both (never the process's CPU twice).
    auto0, auto1 = get_meter("auto", gpus=(0,)), get_meter("auto", gpus=(1,))
    assert auto0.chosen["cpu"] is auto1.chosen["cpu"]
    assert auto0.chosen["gpu"] is gpu0 and auto1.chosen["gpu"] is gpu1


def _shared_counter_objective(meter: CounterMeter, joules: float = 10.0):
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        with ecotune.measure(trial, meter=meter) as m:
            meter.add(joules)  # inside the window: some window is always charged for it
            time.sleep(0)
        return x, m.energy_j

    return objective


def test_study_optimize_n_jobs_with_measure_every_trial_charged_once() -> None:
    # The reproduction, with the real CPU-time meter: it used to raise MeterError.
    study = ecotune.create_study(sampler="random", storage=None, seed=0)

    def busy(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        with ecotune.measure(trial, meter="cputime") as m:
            sum(i * i for i in range(200_000))
        return x, m.energy_j

    study.optimize(busy, n_trials=6, n_jobs=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert {t.user_attrs[names.ATTR_ENERGY_ATTRIBUTION] for t in study.trials} <= set(
        names.ENERGY_ATTRIBUTIONS)
    # With a shared counter the trials' energies add up to the counter exactly.
    meter = CounterMeter()
    study = ecotune.create_study(sampler="random", storage=None, seed=0)
    study.optimize(_shared_counter_objective(meter), n_trials=8, n_jobs=2)
    assert sum(t.user_attrs[names.ATTR_ENERGY] for t in study.trials) == pytest.approx(80.0)


def test_study_energy_budget_under_n_jobs_overshoots_by_the_running_trials_at_most() -> None:
    meter = CounterMeter()
    study = ecotune.create_study(sampler="random", storage=None, seed=0,
                                 budgets={"study_energy_j": 25.0})
    study.optimize(_shared_counter_objective(meter), n_trials=20, n_jobs=2)
    states = [t.state.name for t in study.trials]
    complete = states.count("COMPLETE")
    # 10 J a trial: the budget is spent after 3; one more may have been running then.
    assert 3 <= complete <= 3 + 1
    assert "PRUNED" in states and len(states) <= complete + 2
    assert all("energy_j" not in t.user_attrs for t in study.trials if t.state.name == "PRUNED")


def test_run_with_n_jobs_runs_the_builtin_trainer_in_threads(tmp_path: Path) -> None:
    study = ecotune.run({
        "study": {"name": "jobs", "storage": f"sqlite:///{tmp_path / 'j.db'}", "n_trials": 4,
                  "n_jobs": 2, "sampler": "random", "seed": 0},
        "model": {"name": "mlp"}, "training": {"epochs": 1},
        "energy": {"meter": "cputime"},
        "search_space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}})
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert all(names.ATTR_ENERGY_ATTRIBUTION in t.user_attrs for t in study.trials)
    with pytest.raises(ValueError, match="needs storage its threads share"):
        ecotune.run({"study": {"name": "m", "storage": "sqlite:///:memory:", "n_jobs": 2}})


def test_jobs_option_is_checked(capsys: pytest.CaptureFixture) -> None:
    from ecotune.cli import main

    assert main(["run", "missing.toml", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err


# --- several worker processes on one machine's counters ---------------------------------

class FileShareClock:
    """This process's real CPU time; the machine's busy time is the sum of what every
    worker wrote into ``folder`` (the test machine is shared: its /proc/stat counts other
    people's work too)."""

    def __init__(self, folder: str, index: int) -> None:
        self.folder, self.index = Path(folder), index

    def publish(self) -> None:
        (self.folder / f"cpu{self.index}").write_text(repr(time.process_time()))

    def read(self) -> CpuTimes:
        machine_s = sum(float(p.read_text()) for p in self.folder.glob("cpu*"))
        return CpuTimes(time.process_time(), machine_s)


def _rapl_worker(root: str, folder: str, index: int, work: int, barrier, results) -> None:
    clock = FileShareClock(folder, index)
    meter = RaplMeter(root=root, poll_interval_s=0, share_clock=clock)
    assert meter.domains  # found now, not inside the window's first reading
    clock.publish()
    barrier.wait()
    meter.start()
    barrier.wait()
    sum(i * i for i in range(work))  # this worker's share of the machine's CPU time
    clock.publish()
    barrier.wait()  # the parent has advanced the counters
    m = meter.stop()
    results.put((index, m.energy_j, m.cpu_share))


def test_two_worker_processes_split_the_machines_rapl_reading(tmp_path: Path) -> None:
    rapl = FakeRapl(tmp_path / "powercap", max_uj=10**12)
    rapl.set(1_000_000, 500_000)
    folder = tmp_path / "cpu"
    folder.mkdir()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_rapl_worker,
                               args=(str(rapl.root), str(folder), i, work, barrier, results))
               for i, work in enumerate((1_000_000, 3_000_000))]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)  # both published their CPU time
    barrier.wait(timeout=60)  # both windows open
    rapl.set(1_000_000 + 10_000_000, 500_000 + 2_000_000)  # the machine: +10 J, +2 J
    barrier.wait(timeout=120)  # both finished their work
    got = dict((i, (j, share)) for i, j, share in (results.get(timeout=60) for _ in workers))
    for worker in workers:
        worker.join(timeout=60)
    total = got[0][0] + got[1][0]
    assert total == pytest.approx(12.0, rel=0.02)  # the machine's reading, none twice
    assert got[1][0] > got[0][0]  # more CPU time, more of the energy


def _rapl_and_nvml_worker(root: str, folder: str, gpus_file: str, index: int, work: int,
                          barrier, results) -> None:
    # Worker i sees the shared GPU 0 and a GPU of its own (1 + i), as --gpus would give.
    fake_nvml.install_in_process(fake_nvml.FileFakeNvml(gpus_file), visible=f"0,{1 + index}")
    clock = FileShareClock(folder, index)
    rapl = RaplMeter(root=root, poll_interval_s=0, share_clock=clock)
    assert rapl.domains
    shared_gpu, own_gpu = (NvmlMeter(sample_interval_s=0, cuda_indices=(i,)) for i in (0, 1))
    for meter in (shared_gpu, own_gpu):
        meter.counter_period_s = 0.0  # the fake counters update whenever they are written
    trial = CombinedMeter({"cpu": rapl, "ram": rapl, "gpu": shared_gpu})
    clock.publish()
    barrier.wait()
    windows = [trial.open(), own_gpu.open()]
    if index == 1:  # a second trial of this worker in a thread, on the shared GPU only
        windows.append(shared_gpu.open())
    barrier.wait()
    sum(i * i for i in range(work))
    clock.publish()
    barrier.wait()  # the parent has advanced the counters
    measured = [w.close() for w in windows]
    results.put((index, [(m.energy_j, m.gpu_j, m.attribution) for m in measured]))


def test_two_worker_processes_split_rapl_and_a_shared_gpu_and_keep_their_own(
        tmp_path: Path) -> None:
    rapl = FakeRapl(tmp_path / "powercap", max_uj=10**12)
    rapl.set(1_000_000, 500_000)
    gpus_file = tmp_path / "gpus.json"
    fake_nvml.write_counters(gpus_file, [50_000, 60_000, 70_000])
    folder = tmp_path / "cpu"
    folder.mkdir()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_rapl_and_nvml_worker,
                               args=(str(rapl.root), str(folder), str(gpus_file), i, work,
                                     barrier, results))
               for i, work in enumerate((1_000_000, 3_000_000))]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    barrier.wait(timeout=60)  # every window open: 1 + 2 of them on GPU 0
    rapl.set(1_000_000 + 10_000_000, 500_000 + 2_000_000)  # the machine: +10 J, +2 J
    fake_nvml.write_counters(gpus_file, [50_000 + 9_000, 60_000 + 4_000, 70_000 + 6_000])
    barrier.wait(timeout=120)
    got = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    (trial_0, own_0), (trial_1, own_1, second_1) = got[0], got[1]
    # GPU 0's 9 J split among the three windows open on it in two processes, exactly.
    assert [trial_0[1], trial_1[1], second_1[1]] == [pytest.approx(3.0)] * 3
    assert {trial_0[2], trial_1[2], second_1[2]} == {names.ATTRIBUTION_SHARED}
    # Each worker's own GPU whole, and only its own.
    assert (own_0[1], own_0[2]) == (pytest.approx(4.0), names.ATTRIBUTION_EXCLUSIVE)
    assert (own_1[1], own_1[2]) == (pytest.approx(6.0), names.ATTRIBUTION_EXCLUSIVE)
    # Every trial's energy adds up to the machine's: RAPL 12 J (by CPU-time share, hence
    # the 2 %) and the GPUs' 19 J, none counted twice.
    total = sum(m[0] for ms in got.values() for m in ms)
    assert total == pytest.approx(12.0 + 19.0, rel=0.02)
    assert sum(m[0] - (m[1] or 0.0) for ms in got.values() for m in ms) == pytest.approx(
        12.0, rel=0.02)


def test_the_gpu_ledger_splits_by_open_windows_and_drops_dead_processes(
        tmp_path: Path) -> None:
    import json
    import os

    from ecotune.energy._ledger import GpuLedger

    counter = {"j": 100.0}
    a, b = GpuLedger("GPU-x", tmp_path), GpuLedger("GPU-x", tmp_path)
    assert a.settle(lambda: counter["j"], 1) == (0.0, False)  # joins: nothing yet
    counter["j"] += 10.0  # a alone
    assert b.settle(lambda: counter["j"], 2).account_j == 0.0  # b joins with two windows
    counter["j"] += 30.0  # 1 : 2
    assert a.settle(lambda: counter["j"], 1) == (pytest.approx(20.0), True)
    assert b.settle(lambda: counter["j"], 0) == (pytest.approx(20.0), True)  # b leaves
    counter["j"] -= 50.0  # a counter reset (a driver reload): nobody's energy
    assert a.settle(lambda: counter["j"], 1).account_j == pytest.approx(20.0)
    # A participant whose process is gone is dropped: it takes no share; so is one whose
    # pid now belongs to another process (this one, started at another time).
    state = json.loads(a.path.read_text())
    state["participants"]["dead"] = {"pid": 2**22 + 12345, "windows": 5, "j": 0.0,
                                     "shared": False}
    state["participants"]["reused"] = {"pid": os.getpid(), "started": "1", "windows": 5,
                                       "j": 0.0, "shared": False}
    a.path.write_text(json.dumps(state))
    counter["j"] += 8.0
    assert a.settle(lambda: counter["j"], 1).account_j == pytest.approx(28.0)
    assert set(json.loads(a.path.read_text())["participants"]) == {a.participant}
    a.leave()  # a window whose counter could not be read leaves without a settlement
    assert json.loads(a.path.read_text())["participants"] == {}


def test_a_cpu_counter_ledger_unwraps_and_splits_by_each_processs_cpu_time(
        tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from ecotune.energy._ledger import CounterLedger, _cpu_s, _started

    counter = {"j": 90.0}
    me = CounterLedger("rapl:/x/energy_uj", tmp_path)
    me.settle(lambda: counter["j"], 1, wrap_j=100.0, weigh_by_cpu=True)
    counter["j"] = 5.0  # wrapped at 100 J: +15 J, not a reset
    assert me.settle(lambda: counter["j"], 1, wrap_j=100.0,
                     weigh_by_cpu=True).account_j == pytest.approx(15.0)
    # Another process with two windows open, idle (blocked on its stdin): by windows it
    # would take two thirds; by CPU time it used none of the interval, so none of it.
    idle = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout.readline() == "ready\n"  # started: from now on it waits
        state = json.loads(me.path.read_text())
        state["participants"]["idle"] = {"pid": idle.pid, "started": _started(idle.pid),
                                         "windows": 2, "j": 0.0, "shared": False,
                                         "cpu_s": None}
        me.path.write_text(json.dumps(state))
        me.settle(lambda: counter["j"], 1, weigh_by_cpu=True)  # marks its CPU time
        sum(i * i for i in range(3_000_000))  # this process works, the other waits
        idle_cpu_s = _cpu_s(idle.pid)
        counter["j"] += 30.0
        settled = me.settle(lambda: counter["j"], 1, weigh_by_cpu=True)
        assert _cpu_s(idle.pid) == idle_cpu_s  # it did not run meanwhile
        assert settled == (pytest.approx(45.0), True)
        others = json.loads(me.path.read_text())["participants"]["idle"]
        assert others["j"] == 0.0
        # Without the CPU weights the windows decide: one third for this process.
        counter["j"] += 30.0
        assert me.settle(lambda: counter["j"], 1).account_j == pytest.approx(55.0)
        # A step the device could not have drawn since the last settlement is a reset, not
        # energy (a bound of a nanowatt: any step is impossible).
        counter["j"] += 30.0
        assert me.resets == 0
        assert me.settle(lambda: counter["j"], 1, max_power_w=1e-9).account_j == \
            pytest.approx(55.0)
        assert me.resets == 1  # and the participant is told (its figure is low)
    finally:
        idle.kill()
        idle.wait()


def test_two_meters_of_one_process_on_one_gpu_split_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A window on GPU 0 beside one reading every visible GPU: GPU 0 is split, GPU 1 not.
    fake = fake_nvml.install(monkeypatch, fake_nvml.FakeNvml(energy_mj=[0, 0],
                                                            power_mw=[None, None]))
    one, every = get_meter("nvml", gpus=(0,)), get_meter("nvml")
    w_one, w_every = one.open(), every.open()
    fake.energy_mj[:] = [10_000, 4_000]
    m_one, m_every = w_one.close(), w_every.close()
    assert (m_one.gpu_j, m_every.gpu_j) == (pytest.approx(5.0), pytest.approx(9.0))
    assert m_one.attribution == m_every.attribution == names.ATTRIBUTION_SHARED
    # Unsplit on request: each books the whole counter, and says so.
    whole = NvmlMeter(cuda_indices=(0,), share_across_processes=False)
    with whole.window() as w:
        fake.energy_mj[0] += 3_000
    assert (w.measurement.gpu_j, w.measurement.attribution) == (
        pytest.approx(3.0), names.ATTRIBUTION_UNSPLIT)
    assert any("booked whole" in warning for warning in w.measurement.warnings)


def test_codecarbon_reading_what_it_cannot_split_says_its_figure_is_unsplit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CodeCarbon's ``constant`` CPU mode (half the TDP, in every process) is a whole-machine
    figure ecotune does not split with other processes: the trial says so instead of
    claiming its share."""
    from ecotune.energy import CodeCarbonMeter, _codecarbon
    from tests.test_energy import _CountingTracker

    tracker = _CountingTracker()
    tracker._hardware = [type("CPU", (), {"_mode": "constant",
                                          "_tracking_mode": "process"})()]
    monkeypatch.setattr(_codecarbon, "_shared_tracker", lambda *key: tracker)
    meter = CodeCarbonMeter()
    with meter.window() as alone:
        pass
    assert (alone.measurement.scope, alone.measurement.attribution) == (
        "machine", names.ATTRIBUTION_UNSPLIT)
    first, second = meter.open(), meter.open()  # two trials in threads: still split
    m_first, m_second = first.close(), second.close()
    assert m_first.attribution == m_second.attribution == names.ATTRIBUTION_UNSPLIT
    assert any("concurrent windows" in w for w in m_first.warnings)
    attrs = m_first.as_attrs()
    assert attrs[names.ATTR_ENERGY_ATTRIBUTION] == names.ATTRIBUTION_UNSPLIT


def _codecarbon_rapl_tree(root: Path, package_uj: int) -> Path:
    """A powercap tree as CodeCarbon scans it (``<root>/intel-rapl/intel-rapl:0``, one
    package); returns the package's ``energy_uj``."""
    package = root / "intel-rapl" / "intel-rapl:0"
    package.mkdir(parents=True)
    (package / "name").write_text("package-0\n")
    (package / "max_energy_range_uj").write_text(f"{10**12}\n")
    (package / "energy_uj").write_text(f"{package_uj}\n")
    return package / "energy_uj"


class CodeCarbonFakeNvml(fake_nvml.FileFakeNvml):
    """The file-backed fake NVML with the calls CodeCarbon's GPU reader makes too."""

    NVMLError_NotSupported = fake_nvml.FakeNVMLError

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "Fake GPU"

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return 300_000

    def nvmlDeviceGetMemoryInfo(self, handle: int):
        import types

        return types.SimpleNamespace(total=16 * 2**30, used=0, free=16 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int):
        import types

        return types.SimpleNamespace(gpu=0, memory=0)


def _codecarbon_worker(rapl_dir: str, gpus_file: str, index: int, work: int, split: bool,
                       barrier, results) -> None:
    # CodeCarbon's real tracker with its real RAPL and GPU readers, pointed at the fake
    # powercap tree and the fake NVML (the tracker has no setting for either: its CPU and
    # GPU hardware are made again on them).
    from codecarbon.core import gpu, gpu_nvidia
    from codecarbon.external.hardware import CPU, GPU

    from ecotune.energy import CodeCarbonMeter

    gpu_nvidia.pynvml = CodeCarbonFakeNvml(gpus_file)
    gpu.PYNVML_AVAILABLE = True
    meter = CodeCarbonMeter(share_across_processes=split)
    tracker = meter._tracker()
    tracker._ensure_hardware_ready()
    tracker._hardware = [h for h in tracker._hardware if type(h).__name__ not in ("CPU", "GPU")]
    tracker._hardware += [CPU(output_dir=".", mode="intel_rapl", model="fake", tdp=100,
                              rapl_dir=rapl_dir, tracking_mode="process"),
                          GPU.from_utils(None)]
    barrier.wait()
    windows = [meter.open()]
    if index == 1:  # a second trial of this worker, as n_jobs runs one in a thread
        windows.append(meter.open())
    barrier.wait()
    sum(i * i for i in range(work))  # this worker's CPU time
    barrier.wait()
    barrier.wait()  # the parent has advanced the counters
    measured = [w.close() for w in windows]
    results.put((index, [(m.cpu_j, m.gpu_j, m.energy_j - (m.ram_j or 0.0), m.attribution,
                          m.scope) for m in measured]))


@pytest.mark.parametrize("split", [True, False], ids=["split", "split-off"])
def test_two_worker_processes_with_codecarbon_split_its_rapl_and_gpu_readings(
        tmp_path: Path, split: bool) -> None:
    """Two workers (one with two trials at once) whose CodeCarbon reads one package's RAPL
    counter and one GPU's NVML counter: the trials' CPU and GPU energy add up to each
    counter's advance, once. With the split off each worker books each advance whole:
    twice the machine's reading."""
    energy_uj = _codecarbon_rapl_tree(tmp_path / "powercap", 1_000_000)
    gpus_file = tmp_path / "gpus.json"
    fake_nvml.write_counters(gpus_file, [50_000])
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_codecarbon_worker,
                               args=(str(tmp_path / "powercap"), str(gpus_file), i, work,
                                     split, barrier, results))
               for i, work in enumerate((2_000_000, 6_000_000))]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=180)  # both trackers made
    barrier.wait(timeout=60)  # every window open: one in worker 0, two in worker 1
    barrier.wait(timeout=120)  # both finished their work
    energy_uj.write_text(f"{1_000_000 + 12_000_000}\n")  # the package: +12 J
    fake_nvml.write_counters(gpus_file, [50_000 + 9_000])  # the GPU: +9 J
    barrier.wait(timeout=60)
    got = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    trials = got[0] + got[1]
    cpu_j, gpu_j = [t[0] for t in trials], [t[1] for t in trials]
    assert [t[2] for t in trials] == pytest.approx([c + g for c, g in zip(cpu_j, gpu_j)])
    assert {t[4] for t in trials} == {"machine"}  # the counters cover every process
    if split:
        # The machine's readings, once: 12 J of CPU, 9 J of GPU (a third per window).
        assert sum(cpu_j) == pytest.approx(12.0, rel=1e-9)
        assert gpu_j == [pytest.approx(3.0)] * 3
        assert {t[3] for t in trials} == {names.ATTRIBUTION_SHARED}
        # CPU by CPU time: worker 1 did three times the work (its two trials split it).
        assert sum(t[0] for t in got[1]) > sum(t[0] for t in got[0])
    else:
        # Booked whole in each worker (CodeCarbon rounds its kWh to 7 digits).
        assert sum(cpu_j) == pytest.approx(24.0, rel=1e-5)
        assert sum(gpu_j) == pytest.approx(18.0, rel=1e-5)
        assert {t[3] for t in trials} == {names.ATTRIBUTION_UNSPLIT}


# --- the built-in trainer's trials at once on GPUs (torch and NVML faked) --------------

def _fake_cuda_training(monkeypatch: pytest.MonkeyPatch, n_gpus: int) -> dict:
    """torch believes it has ``n_gpus`` CUDA GPUs, NVML reads ``n_gpus`` fake counters; the
    trainer's tensors stay on the CPU. Each trial, inside its window, waits until the other
    trial is training too (so the two are known to run at once), then draws 1 J x (GPU
    index + 1) on the GPU it was given. Returns what each trial's trainer asked for."""
    import types

    import torch

    from ecotune.training import _loop

    fake = fake_nvml.install(monkeypatch, fake_nvml.FakeNvml([0] * n_gpus, [None] * n_gpus))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(name=f"Fake GPU {i}", uuid=f"{i}abc"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    # The optimizer's CUDA-graph check would initialise CUDA: the tensors are on the CPU.
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: None)
    both_training = threading.Barrier(2)
    lock = threading.Lock()
    asked: dict = {"devices": []}
    real_resolve = _loop.resolve_device

    def resolve_on_cpu(device):
        gpu = real_resolve(device).index or 0  # the GPU this trial was given
        both_training.wait(timeout=60)
        with lock:
            asked["devices"].append(device)
            fake.energy_mj[gpu] += 1000 * (gpu + 1)
        return torch.device("cpu")

    monkeypatch.setattr(_loop, "resolve_device", resolve_on_cpu)
    return asked


def _two_trials_at_once(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    study = ecotune.run({
        "study": {"name": "gpus", "storage": f"sqlite:///{tmp_path / 'g.db'}", "n_trials": 2,
                  "n_jobs": 2, "sampler": "random", "seed": 0},
        "model": {"name": "mlp"}, "training": {"epochs": 1, "test_evaluation": "none"},
        "energy": {"meter": "nvml"},
        "search_space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}})
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    return study.trials


def test_builtin_trainer_gives_each_trial_at_once_its_own_gpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_cuda_training(monkeypatch, n_gpus=2)
    trials = _two_trials_at_once(tmp_path)
    assert sorted(asked["devices"]) == ["cuda:0", "cuda:1"]
    by_gpu = {t.user_attrs[names.ATTR_TRAINING]["device"]["index"]: t for t in trials}
    assert sorted(by_gpu) == [0, 1]
    # Each its own GPU's energy, whole: 1 J on GPU 0, 2 J on GPU 1.
    for index, joules in ((0, 1.0), (1, 2.0)):
        attrs = by_gpu[index].user_attrs
        assert attrs[names.ATTR_GPU_ENERGY] == pytest.approx(joules)
        assert attrs[names.ATTR_ENERGY_ATTRIBUTION] == names.ATTRIBUTION_EXCLUSIVE


def test_builtin_trainer_trials_at_once_share_the_one_gpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_cuda_training(monkeypatch, n_gpus=1)
    trials = _two_trials_at_once(tmp_path)
    assert asked["devices"] == ["auto", "auto"]
    assert [t.user_attrs[names.ATTR_TRAINING]["device"]["index"] for t in trials] == [0, 0]
    # The GPU drew 2 J while both were open: split between them, none counted twice.
    assert sum(t.user_attrs[names.ATTR_GPU_ENERGY] for t in trials) == pytest.approx(2.0)
    assert {t.user_attrs[names.ATTR_ENERGY_ATTRIBUTION] for t in trials} == {
        names.ATTRIBUTION_SHARED}


def test_lightning_callback_trials_at_once_each_charged_once(tmp_path: Path) -> None:
    require_component(importlib.util.find_spec("pytorch_lightning") is not None,
                      "pytorch_lightning")
    import pytorch_lightning as pl
    import torch
    from torch import nn

    from ecotune.data import load_data
    from ecotune.integration import EnergyCallback

    data = load_data("digits")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=128)
    val = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_val, data.y_val), batch_size=256)
    meter = CounterMeter()
    both_fitting = threading.Barrier(2)

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Draw(pl.Callback):
        """Both trials' windows are open before either trains; 1 J per epoch each."""

        def on_train_start(self, trainer, pl_module) -> None:
            both_fitting.wait(timeout=60)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            meter.add(1.0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_float("x", 0, 1)
        callback = EnergyCallback(trial, monitor="val_acc", meter=meter)
        trainer = pl.Trainer(max_epochs=3, callbacks=[callback, Draw()], logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp_path,
                             accelerator="cpu")
        trainer.fit(Tiny(), loader, val)
        return callback.window.accuracy, callback.window.energy_j

    study = ecotune.create_study(sampler="random", storage=None, seed=0)
    study.optimize(objective, n_trials=2, n_jobs=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    assert [len(t.user_attrs[names.ATTR_TRAINING]["learning_curve"])
            for t in study.trials] == [3, 3]
    # 2 trials x 3 epochs x 1 J, drawn while both windows were open: split, none twice.
    assert sum(t.user_attrs[names.ATTR_ENERGY] for t in study.trials) == pytest.approx(6.0)
    assert {t.user_attrs[names.ATTR_ENERGY_ATTRIBUTION] for t in study.trials} == {
        names.ATTRIBUTION_SHARED}

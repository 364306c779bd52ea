"""Devices without a GPU: resolving ``[training] device``, the one-line errors for a GPU
this machine lacks (exit 2, nothing stored), ``--gpus`` for local workers, low precision
with a gradient scaler, and device-agnostic tensor code (checked on the CPU by catching
every tensor made without a device where the code must follow its inputs' device).

CUDA is simulated where a test needs it (``torch.cuda.is_available`` patched, the fake
pynvml of tests/fake_nvml.py), so every figure and message is exact on any machine.
"""

from __future__ import annotations

import shutil
import sqlite3
import types
import warnings
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import ecotune
from ecotune.cli import main
from ecotune.data import load_data
from ecotune.devices import (
    DeviceError,
    check_gpus,
    device_info,
    parse_gpus,
    resolve_device,
    synchronizer,
    worker_gpu,
)
from ecotune.energy.hardware import inference_estimates
from ecotune.knobs import EATPenalty
from ecotune.knobs.budget import EnergyBudgetProjector, input_mask
from ecotune.models import build_model
from ecotune.training import RuntimeDecisions, TrainConfig, accuracy, activation_density, train
from ecotune.training._loop import fits_on_device
from ecotune.training._runtime import autocast_dtype
from tests import fake_nvml
from tests.conftest import tiny_study_toml
from tests.fake_nvml import FakeNvml


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_cuda_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch believes it has two CUDA GPUs (nothing here runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(name=f"Fake GPU {i}", uuid=f"{i}abc"))


# --- resolving a device ------------------------------------------------------------------

def test_auto_is_the_cpu_without_cuda_and_the_first_gpu_with_it(
        no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == resolve_device(torch.device("cuda", 1))


def test_a_gpu_this_machine_lacks_is_a_one_line_error(no_cuda: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(DeviceError, match=r"^device 'cuda(:0)?': ") as err:
            resolve_device(name)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DeviceError, match=r"'cuda:2': only 2 CUDA GPU\(s\) visible here "
                                          r"\(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    for bad in ("gpu", "cuda:", "cuda:-1", "CPU", 0):
        with pytest.raises(DeviceError, match="expected \"auto\", \"cpu\", \"cuda\""):
            resolve_device(bad)


def test_the_reason_cuda_is_missing_is_named(no_cuda: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DeviceError, match="this torch build .* has no CUDA support"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError, match="no CUDA GPU is visible .*CUDA_VISIBLE_DEVICES=''"):
        resolve_device("cuda")


def test_device_info_names_the_device(two_cuda_gpus: None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert device_info(torch.device("cuda", 1)) == {
        "type": "cuda", "index": 1, "name": "Fake GPU 1", "uuid": "GPU-1abc",
        "cuda_visible_devices": "3,1"}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    cpu = device_info(torch.device("cpu"))
    assert cpu["type"] == "cpu" and cpu["index"] is None and cpu["name"]


def test_synchronizer_waits_for_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", calls.append)
    synchronizer(torch.device("cpu"))()
    assert calls == []
    synchronizer(torch.device("cuda", 1))()
    assert calls == [torch.device("cuda", 1)]


# --- the trainer on a device -------------------------------------------------------------

def test_the_trial_records_its_device_and_low_precision_type(no_cuda: None) -> None:
    study = ecotune.run({
        "study": {"name": "dev", "storage": "sqlite:///:memory:", "n_trials": 1,
                  "sampler": "random", "seed": 0},
        "model": {"name": "mlp"},
        "training": {"epochs": 2, "batch_size": 128, "low_precision_at_epoch": 2,
                     "device": "auto"},
        "energy": {"meter": "cputime"}})
    training = study.trials[0].user_attrs["training"]
    assert training["device"]["type"] == "cpu" and training["device"]["index"] is None
    assert training["low_precision_dtype"] == "bfloat16"
    assert [r["decisions"] for r in training["learning_curve"]] == [[], ["low_precision"]]


def test_the_python_api_refuses_a_missing_gpu_before_storing(no_cuda: None,
                                                             tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="device 'cuda:0': "):
        ecotune.run({"study": {"name": "dev", "n_trials": 1},
                     "training": {"device": "cuda:0"}})
    assert list(tmp_path.iterdir()) == []  # no ecotune.db


def test_an_explicit_cpu_device_trains_exactly_as_before() -> None:
    """The same seed gives the same weights, batch order and losses on the CPU, whether
    the device is named or chosen."""
    data = load_data("digits")
    config = TrainConfig(model="cnn", epochs=2, batch_size=256, device="cpu")
    first = train(data, config)
    second = train(data, config)
    assert [r.train_loss for r in first.curve] == [r.train_loss for r in second.curve]
    assert first.device == torch.device("cpu") and first.low_precision_dtype is None


def test_a_nan_loss_is_caught_every_batch_on_the_cpu() -> None:
    data = load_data("digits")
    with pytest.raises(FloatingPointError, match="training loss became nan at epoch 1"):
        train(data, TrainConfig(model="mlp", epochs=1, lr=1e30, optimizer="sgd",
                                device="cpu"))


def test_data_fits_on_the_device_up_to_a_quarter_of_free_memory() -> None:
    gib = 2 ** 30
    assert fits_on_device(20 * gib, 80 * gib) and not fits_on_device(20 * gib + 1, 80 * gib)
    assert fits_on_device(0, 0)


def test_autocast_type_and_gradient_scaler() -> None:
    assert autocast_dtype("cpu", "auto") == torch.bfloat16
    assert autocast_dtype("cpu", "float16") == torch.float16
    assert autocast_dtype("cuda", "auto", bf16_supported=True) == torch.float16
    assert autocast_dtype("cuda", "bfloat16", bf16_supported=True) == torch.bfloat16
    assert autocast_dtype("cuda", "bfloat16", bf16_supported=False) == torch.float16
    with pytest.raises(ValueError, match="unknown low_precision_dtype 'int8'"):
        autocast_dtype("cpu", "int8")
    model = nn.Linear(2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available. Disabling" here
        for device_type, dtype, scaled in [("cuda", "auto", True), ("cuda", "float16", True),
                                           ("cpu", "auto", False), ("cpu", "float16", False)]:
            runtime = RuntimeDecisions(model, None, 2, device_type, dtype)
            runtime.start_epoch(1)
            assert runtime.grad_scaler is None  # not before low precision is on
            assert runtime.start_epoch(2) == ("low_precision",)
            assert (runtime.grad_scaler is not None) == scaled, (device_type, dtype)


def test_backward_step_goes_through_the_scaler_and_skips_overflowing_steps() -> None:
    model = nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    runtime = RuntimeDecisions(model, None, None)
    runtime.grad_scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = model.weight.detach().clone()
    loss = model(torch.ones(1, 2)).sum()
    runtime.backward_step(loss, optimizer)  # gradient 1 per weight, unscaled before the step
    assert torch.allclose(model.weight, before - 0.1)
    optimizer.zero_grad()
    loss = model(torch.full((1, 2), float("inf"))).sum()
    runtime.backward_step(loss, optimizer)  # inf gradients: the step is skipped
    assert torch.allclose(model.weight, before - 0.1)
    assert runtime.grad_scaler.get_scale() == 512.0  # and the scale backs off


# --- device-agnostic tensor code -----------------------------------------------------

FACTORIES = {"arange", "zeros", "ones", "full", "empty", "tensor", "rand", "randn",
             "randint", "randperm", "eye", "linspace", "as_tensor", "scalar_tensor"}


class UnplacedTensors(TorchFunctionMode):
    """Records each tensor factory called without ``device=``: on a GPU it would make a
    CPU tensor beside the GPU ones (an error, or a silent copy per batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in FACTORIES and "device" not in kwargs:
            self.calls.append(func.__name__)
        return func(*args, **kwargs)


def test_eat_budget_inference_and_evaluation_make_no_tensor_off_their_inputs_device() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, width=0.5)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    projector = EnergyBudgetProjector(model, x[:16], budget=0.5, every_batches=1)
    with UnplacedTensors() as mode:
        with EATPenalty(model, lam=1.0) as eat:
            zero = eat.penalty()  # no activations yet
            loss = nn.functional.cross_entropy(model(x), y) + eat.penalty()
        loss.backward()
        projector.after_step(1.0)  # a projection
        energy = projector.finish()
        estimates = inference_estimates(model, x[:16])
        mask = input_mask(x, 0.5)
        val = accuracy(model, x, y), activation_density(model, x)
    assert mode.calls == []
    assert zero.device == loss.device and energy <= 0.5 * projector.dense_energy_
    assert estimates["sample_size"] == 16 and mask.shape == x.shape[1:] and 0 <= val[0] <= 1


def test_eat_penalty_stays_finite_under_float16() -> None:
    """A float16 sum of a large activation overflows (max 65504): l0hat sums in float32."""
    activations = torch.ones(300, 256, dtype=torch.float16)  # 76,800 non-zeros
    from ecotune.knobs import l0hat

    assert torch.isfinite(l0hat(activations)) and float(l0hat(activations)) == pytest.approx(
        76_800, rel=1e-3)


# --- one GPU per local worker -----------------------------------------------------------

def test_parse_gpus_maps_indices_through_cuda_visible_devices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parse_gpus("0,1") == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a batch system's allocation
    assert parse_gpus("1,0,GPU-8a1b") == ["3", "2", "GPU-8a1b"]
    with pytest.raises(DeviceError, match="GPU 2 is not visible to this process "
                                          r"\(CUDA_VISIBLE_DEVICES=2,3\)"):
        parse_gpus("2")
    for bad in ("", "0,,1", "zero", "0;1", "-1"):
        with pytest.raises(DeviceError, match="expected GPU indices or UUIDs"):
            parse_gpus(bad)
    assert [worker_gpu(["3", "2"], i) for i in range(4)] == ["3", "2", "3", "2"]


def test_check_gpus_asks_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml.install(monkeypatch, FakeNvml([0, 0], [1, 1]))
    check_gpus(["0", "1", fake.uuids[1], fake.uuids[0][:9]])
    with pytest.raises(DeviceError, match=r"GPU 2 does not exist here \(2 GPU\(s\)"):
        check_gpus(["0", "2"])
    with pytest.raises(DeviceError, match="GPU GPU-9 does not exist here"):
        check_gpus(["GPU-9"])

    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise fake_nvml.FakeNVMLError("NVML Shared Library Not Found")

    fake_nvml.install(monkeypatch, NoDriver([], []))
    with pytest.raises(DeviceError, match=r"--gpus 0: no NVIDIA GPU here \(NVML: NVML Shared"):
        check_gpus(["0"])


# --- the command line: one line, exit 2, nothing stored ---------------------------------

STUDY = tiny_study_toml("dev", study=("n_trials = 1", "seed = 1"))


def _existing_db(path: Path) -> bytes:
    from ecotune.search import create_study

    study = create_study("dev", storage=f"sqlite:///{path}", sampler="random")
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0]))
    study._storage._backend.engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from trials").fetchone()[0] == 1
    return path.read_bytes()


@pytest.mark.parametrize(("edit", "args", "message"), [
    (lambda s: s, ["--device", "cuda"], "device 'cuda': "),
    (lambda s: s, ["--device", "cuda:1"], "device 'cuda:1': "),
    (lambda s: s.replace("[training]\n", '[training]\ndevice = "cuda"\n'), [],
     "device 'cuda': "),
    (lambda s: s.replace("[training]\n", '[training]\ndevice = "gpu0"\n'), [],
     "training.device: expected"),
    (lambda s: s, ["--device", "tpu"], "--device: expected \"auto\""),
    (lambda s: s, ["--gpus", "0"], "--gpus 0: no NVIDIA GPU here"),
    (lambda s: s, ["--gpus", "0,x"], "--gpus '0,x': expected GPU indices"),
    (lambda s: s.replace('"cputime"', '"nvml"').replace("[training]\n",
                                                          '[training]\ndevice = "cpu"\n'),
     [], 'meter "nvml" measures the GPU a trial trains on'),
], ids=["cli-cuda", "cli-cuda-1", "file-cuda", "file-bad-name", "cli-bad-name", "gpus-none",
        "gpus-bad", "nvml-on-cpu"])
def test_device_errors_exit_2_with_one_line_and_store_nothing(
        edit, args: list[str], message: str, tmp_path: Path, no_cuda: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise fake_nvml.FakeNVMLError("NVML Shared Library Not Found")

    fake_nvml.install(monkeypatch, NoDriver([], []))
    study_file = tmp_path / "dev.toml"
    study_file.write_text(edit(STUDY))
    for existing in (False, True):
        before = _existing_db(tmp_path / "ecotune.db") if existing else None
        assert main(["run", str(study_file), *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        if existing:
            assert (tmp_path / "ecotune.db").read_bytes() == before
            (tmp_path / "ecotune.db").unlink()
        else:
            assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.toml"]
        shutil.rmtree(tmp_path / "ecotune-report", ignore_errors=True)


def test_each_worker_is_started_with_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker i (1..n) starts with CUDA_VISIBLE_DEVICES = gpus[i mod len(gpus)]: a spawned
    process takes its environment at start, before it imports anything."""
    import os

    from ecotune.execution import _workers
    from ecotune.spec import load_spec

    started: list[tuple[str, str | None]] = []

    class Process:
        def __init__(self, target, args, name, daemon) -> None:
            self.name = name

        def start(self) -> None:
            started.append((self.name, os.environ.get("CUDA_VISIBLE_DEVICES")))

        def join(self, timeout: float | None = None) -> None:
            pass

    monkeypatch.setattr(_workers.multiprocessing, "get_context",
                        lambda method: types.SimpleNamespace(Process=Process))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    spec = load_spec({"study": {"name": "w"}})
    with _workers.start_local_workers(spec, 10, 3, print, gpus=["2", "GPU-ab"]):
        pass
    assert started == [("ecotune-worker-1", "GPU-ab"), ("ecotune-worker-2", "2"),
                       ("ecotune-worker-3", "GPU-ab")]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"  # this process's own is unchanged
    started.clear()
    with _workers.start_local_workers(spec, 10, 1, print):
        pass
    assert started == [("ecotune-worker-1", "7")]  # no --gpus: inherited as it is


@pytest.mark.slow
def test_workers_each_get_their_gpu_through_cuda_visible_devices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers 3 --gpus 0,1 end to end: this process (worker 0) and worker 2 see GPU 0,
    worker 1 sees GPU 1, and every trial records what it saw. Which worker runs which
    trial is up to the workers; this process always runs the first. (The GPUs are a fake
    NVML's; the trials train on the CPU.)"""
    fake_nvml.install(monkeypatch, FakeNvml([0, 0], [1, 1]))
    study_file = tmp_path / "w.toml"
    study_file.write_text(tiny_study_toml("w", study=('sampler = "random"',),
                                          training=("epochs = 1", 'device = "cpu"')))
    assert main(["run", str(study_file), "--workers", "3", "--gpus", "0,1", "--n-trials", "9",
                 "--no-report"]) == 0
    study = optuna.load_study(study_name="w", storage="sqlite:///ecotune.db")
    seen = [t.user_attrs["training"]["device"].get("cuda_visible_devices") for t in study.trials]
    assert len(seen) == 9 and set(seen) <= {"0", "1"} and seen[0] == "0", seen
    assert all(t.user_attrs["training"]["device"]["type"] == "cpu" for t in study.trials)

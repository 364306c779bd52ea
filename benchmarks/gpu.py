"""GPU training and GPU energy on one NVIDIA GPU, end to end, in well under 5 minutes.

A small study through the built-in trainer: ResNet-18 at two widths (0.5 and 1.0) on
CIFAR-10-shaped FakeData (3x32x32, 10 classes), batch 256, device ``auto`` and meter
``auto`` (grid sampler over the width: one trial per width). Each trial's measurement
window is also read, over the same window, by NVML's polled power (``nvml-power``) and by
a CodeCarbon tracker of its own, while a thread samples NVML's GPU utilisation. Printed:

(a) per trial, the NVML energy counter (the trial's ``gpu_energy_j``) against the integral
    of polled NVML power over the same window, and their agreement in %;
(b) CodeCarbon's GPU figure for the same windows;
(c) GPU utilisation during each trial (NVML ``utilization.gpu``, sampled every 0.1 s);
(d) time per epoch of the same model (ResNet-18, width 1.0) through the same trainer on
    the GPU and on the CPU (all cores), on the same batches, and the ratio;
(e) energy per trial for each width (GPU from NVML; CPU and RAM as ``auto`` measured them);
(f) the cost of measuring with NVML: sync + start + sync + stop of an empty window, and a
    per-epoch lap, in ms, and as a share of each trial.

Targets (issue 10): counter vs polled power within 2 % per trial; NVML overhead at most
2 ms per window and 0.5 % of a trial of 10 s or more; GPU utilisation at least 80 % for
ResNet-18 at batch 256.

On a machine without a CUDA GPU it says so and exits 0. What it prints also goes to
``$OUT/gpu.txt`` when ``OUT`` is set.

    PYTHONPATH=. python3 benchmarks/gpu.py [--samples 12500] [--epochs 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

T0_S = time.perf_counter()
LINES: list[str] = []


def say(text: str = "") -> None:
    """Print a line (at once: the run may be cut short) and keep it for $OUT/gpu.txt."""
    print(text, flush=True)
    LINES.append(text)


def save() -> None:
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")


class UtilisationSampler:
    """Samples NVML's ``utilization.gpu`` (% of time a kernel ran) on a thread."""

    def __init__(self, handle, interval_s: float = 0.1) -> None:
        self.handle = handle
        self.interval_s = interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from ecotune.energy import _nvml

        self.samples = []
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                rates = _nvml.pynvml.nvmlDeviceGetUtilizationRates(self.handle)
                self.samples.append(rates.gpu)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> list[int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples


def tee_meter(primary, others, sampler):
    """A meter whose figures are ``primary``'s; ``others`` and the utilisation sampler
    read the same windows beside it (their records in ``.records``)."""
    from ecotune.energy import Meter, MeterError

    class Tee(Meter):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.devices = primary.name, primary.devices
            self.records: list[tuple] = []

        def _start(self) -> None:
            for meter in others:
                meter.start()
            sampler.start()
            primary.start()

        def _stop(self):
            main = primary.stop()
            beside = {meter.name: meter.stop() for meter in reversed(others)}
            self.records.append((main, beside, sampler.stop()))
            return main

        def lap(self, exact: bool = False):
            if not self._open:
                raise MeterError("tee: lap() with no open window")
            return primary.lap(exact)

    return Tee()


def epoch_time_s(data, device: str, width: float, threads: int) -> float:
    """Seconds of the second epoch (the first warms up) of the built-in trainer."""
    from ecotune.training import TrainConfig, train

    result = train(data, TrainConfig(model="resnet18", width=width, epochs=2, batch_size=256,
                                     lr=0.01, device=device, threads=threads))
    return result.curve[1].elapsed_s - result.curve[0].elapsed_s


def overhead(meter, sync, windows: int = 100) -> tuple[float, float, float]:
    """Median and 90th percentile of sync+start+sync+stop of an empty window, and the
    median of sync+lap, in ms."""
    window_ms, lap_ms = [], []
    for i in range(windows + 3):
        t0 = time.perf_counter()
        sync()
        meter.start()
        t1 = time.perf_counter()
        sync()
        meter.lap()
        t2 = time.perf_counter()
        sync()
        meter.stop()
        t3 = time.perf_counter()
        if i >= 3:  # after warm-up
            window_ms.append((t1 - t0 + t3 - t2) * 1e3)
            lap_ms.append((t2 - t1) * 1e3)
    window_ms.sort()
    return (statistics.median(window_ms), window_ms[int(0.9 * (len(window_ms) - 1))],
            statistics.median(lap_ms))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12_500,
                        help="FakeData images (80 %% train, 10 %% val, 10 %% test)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--widths", default="0.5,1.0")
    parser.add_argument("--cpu-batches", type=int, default=6,
                        help="training batches per epoch for the GPU/CPU epoch timing")
    args = parser.parse_args()

    import torch

    from ecotune.energy import meter_status

    say("ecotune benchmarks/gpu.py: GPU training and GPU energy")
    if not torch.cuda.is_available():
        say(f"no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}; "
            f"NVML: {meter_status('nvml').reason}): nothing to measure. Run it on a machine "
            "with one NVIDIA GPU (docs/measurement.md).")
        save()
        return 0
    if not meter_status("nvml").available:
        say(f"a CUDA GPU but no NVML reading ({meter_status('nvml').reason}): nothing to "
            "compare; install nvidia-ml-py")
        save()
        return 0
    try:
        run(args, "cuda")
    finally:
        save()
    return 0


def run(args: argparse.Namespace, gpu_device: str) -> None:
    """The benchmark on ``gpu_device`` (a CUDA device; the CPU only to check the script)."""
    import optuna
    import torch

    from ecotune.data import load_data
    from ecotune.devices import device_info, resolve_device, synchronizer
    from ecotune.energy import CodeCarbonMeter, NvmlMeter, _nvml, get_meter, meter_status
    from ecotune.names import ATTR_FAIL_REASON
    from ecotune.search import BuiltinObjective, prepare
    from ecotune.spec import load_spec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = resolve_device("auto")
    index = device.index or 0
    info = device_info(device)
    entry = _nvml.gpu_entries((index,))[0]
    handle, _ = _nvml.find_gpu(entry)
    say(f"GPU: {info['name']} ({device}, NVML {entry}: {meter_status('nvml').reason}); "
        f"driver {_nvml.pynvml.nvmlSystemGetDriverVersion()}; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}); {os.cpu_count()} CPU(s)")
    widths = [float(w) for w in args.widths.split(",")]
    data_options = {"name": "fake", "n_samples": args.samples, "image_shape": [3, 32, 32],
                    "n_classes": 10, "val_fraction": 0.1, "test_fraction": 0.1}
    spec = load_spec({
        "study": {"name": "gpu-benchmark", "storage": "sqlite:///:memory:", "seed": 0,
                  "sampler": "grid", "n_trials": len(widths)},
        "data": data_options,
        "model": {"name": "resnet18"},
        "training": {"epochs": args.epochs, "batch_size": 256, "lr": 0.01,
                     "optimizer": "sgd", "device": "auto"},
        "energy": {"meter": "auto"},
        "search_space": {"width": {"type": "categorical", "choices": widths}}})
    t_s = time.perf_counter()
    data = load_data("fake", **spec.data.loader_options())
    say(f"data: FakeData {data.sizes()} images 3x32x32 ({time.perf_counter() - t_s:.1f} s "
        "to generate)")

    auto = get_meter("auto", gpus=(index,))
    polled = NvmlMeter(cuda_indices=(index,), method="power", sample_interval_s=0.1)
    # A tracker of its own (another measure_power_secs): auto may use CodeCarbon too.
    codecarbon = CodeCarbonMeter(measure_power_secs=0.5, gpu_ids=(entry,))
    for meter in (auto, codecarbon):  # CodeCarbon probes the hardware (~1 s) at first use
        meter.warm_up()
    sampler = UtilisationSampler(handle)
    # Started in this order, stopped in reverse: the polled window hugs the trial's.
    tee = tee_meter(auto, [codecarbon, polled], sampler)
    say(f"meter auto here: {auto.name} (GPU from "
        f"{getattr(auto, 'chosen', {}).get('gpu', auto).name})")

    spec, study = prepare(spec)
    t_s = time.perf_counter()
    study.optimize(BuiltinObjective(spec, meter=tee), n_trials=len(widths))
    say(f"study: {len(study.trials)} trials, {args.epochs} epochs each, in "
        f"{time.perf_counter() - t_s:.1f} s")
    failed = [t for t in study.trials if t.state.name != "COMPLETE"]
    for trial in failed:
        reason = trial.user_attrs.get(ATTR_FAIL_REASON)
        say(f"  trial {trial.number} {trial.state.name}: {reason}")

    nan = float("nan")
    say()
    say("(a) NVML energy counter vs integrated polled NVML power, same windows")
    say("(b) CodeCarbon's GPU figure, same windows   (c) GPU utilisation during the trial")
    say(f"{'width':>6} {'s':>7} {'counter J':>10} {'polled J':>10} {'agree %':>8} "
        f"{'codecarbon gpu J':>17} {'util mean %':>12} {'util median %':>14}")
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    for trial, (main_m, beside, util) in zip(study.trials, tee.records):
        counter_j = main_m.gpu_j
        polled_j = beside[polled.name].gpu_j
        cc_gpu_j = beside[codecarbon.name].gpu_j
        agree = 100.0 * (polled_j - counter_j) / counter_j if counter_j else nan
        say(f"{trial.params['width']:>6} {main_m.duration_s:>7.2f} {counter_j:>10.1f} "
            f"{polled_j:>10.1f} {agree:>+8.2f} "
            f"{cc_gpu_j if cc_gpu_j is not None else nan:>17.1f} "
            f"{statistics.mean(util) if util else nan:>12.1f} "
            f"{statistics.median(util) if util else nan:>14.1f}")

    say()
    say("(e) energy per trial, by width (auto: GPU from NVML, the rest as measured)")
    say(f"{'width':>6} {'energy J':>9} {'gpu J':>8} {'cpu J':>8} {'ram J':>8} "
        f"{'s/epoch':>8} {'val acc':>8} {'meter':>22}")
    for trial in trials:
        a = trial.user_attrs
        curve = a["training"]["learning_curve"]
        per_epoch_s = (curve[-1]["elapsed_s"] - curve[0]["elapsed_s"]) / max(1, len(curve) - 1)
        gpu_j, cpu_j, ram_j = (a.get(f"{d}_energy_j", nan) for d in ("gpu", "cpu", "ram"))
        say(f"{trial.params['width']:>6} {a['energy_j']:>9.1f} {gpu_j:>8.1f} {cpu_j:>8.1f} "
            f"{ram_j:>8.1f} {per_epoch_s:>8.3f} "
            f"{trial.values[0]:>8.3f} {a['energy_meter']:>22}")

    say()
    n_train = args.cpu_batches * 256
    # A data set of its own: 10 % val and test around n_train (the CPU evaluates them too).
    small = load_data("fake", n_samples=round(n_train / 0.8) + 1, image_shape=(3, 32, 32),
                      n_classes=10, val_fraction=0.1, test_fraction=0.1,
                      train_samples=n_train)
    threads = os.cpu_count() or 1
    gpu_s = epoch_time_s(small, gpu_device, 1.0, 1)
    cpu_s = epoch_time_s(small, "cpu", 1.0, threads)
    say(f"(d) one epoch of ResNet-18 (width 1.0) through the trainer, {n_train} train + "
        f"{len(small.y_val)} val images, batch 256:")
    say(f"    GPU {gpu_s:.3f} s, CPU ({threads} threads) {cpu_s:.3f} s: GPU {cpu_s / gpu_s:.1f}x "
        "faster")

    say()
    sync = synchronizer(device)
    nvml_alone = NvmlMeter(cuda_indices=(index,))
    rows = [("nvml", nvml_alone), (f"auto ({auto.name})", auto)]
    say("(f) cost of measuring (median of 100 windows after 3 warm-up; ms)")
    for name, meter in rows:
        window_ms, p90_ms, lap_ms = overhead(meter, sync)
        shares = ", ".join(
            f"{100 * (window_ms + args.epochs * lap_ms) / 1e3 / m.duration_s:.3f} %"
            for m, _, _ in tee.records)
        say(f"    {name:<28} window {window_ms:.3f} (p90 {p90_ms:.3f}), lap {lap_ms:.3f}; "
            f"share of each trial: {shares}")
    say()
    say(f"total {time.perf_counter() - T0_S:.0f} s")


if __name__ == "__main__":
    sys.exit(main())

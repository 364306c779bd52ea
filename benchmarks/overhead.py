"""ecotune's own cost per trial, against a bare PyTorch loop doing the same work.

The same digits training (the built-in cnn, Adam, batch 64, validation accuracy after every
epoch), the same test-split evaluation after it and the same inference estimates run as a
bare loop and as an ecotune trial (``run_worker``, as ``ecotune run`` runs a trial: claim
lock, trial count, sampler, SQLite storage, measurement window, rules, attributes),
alternated in one process so that both see the same machine state. The study sets
``[training] test_evaluation = "all"``, so every ecotune trial evaluates the test split, as
every bare round does: like with like, the difference is ecotune's own cost.

Printed for each meter (``codecarbon`` and ``cputime``), for a ~1 s 20-epoch trial and a
1-epoch trial: median wall times, their paired ratio, ecotune's cost per trial, and that
cost split into parts, timed inside the same ecotune trials (wrappers around the sampler,
the storage's methods and the meter's windows):

- sampler: Optuna's sampler (``sample_*``, ``before_trial``, ``after_trial``);
- storage writes, and their count per trial (trial creation, parameter, attributes,
  constraints, state and values), and storage reads (the calls, and the SELECT
  statements that reached the database: a read served from memory is none);
- meter: opening and closing the windows (training and test evaluation), and the
  readings after each epoch (ms per epoch);
- the rest: ecotune's Python around them (rules, attribute building, the loop).

The inference estimates and the test evaluation are work both sides do: their own time is
printed as a reference, not as ecotune's cost. The benchmark's own count of the study's
trials (to ask ``run_worker`` for one more) is outside the timing; ``run_worker``'s own
counts and its start (the look for dead trials) are inside it.

Targets (issue 25, idle 2-core machine): ~1 s 20-epoch trial <= 1.03x the bare loop with
CodeCarbon and <= 1.01x with cputime; fixed cost <= 20 ms per trial; <= 0.5 ms per epoch.
How each is measured:

- per epoch: in each paired round of the long trial, ecotune's time from the end of the
  training window's first reading (in epoch 1's report) to the end of its last, less the
  bare loop's from its first epoch's validation to its last, divided by epochs - 1:
  everything ecotune adds to an epoch (the trainer's loop, the report, the rules, the
  meter's reading, CodeCarbon's real reading once a second and at the last planned
  epoch), none of the fixed cost. A whole-trial difference would bury it in the trial's
  own spread (about ±4 % of 2 s);
- fixed: the 1-epoch trial's cost (many short pairs) less one epoch's;
- the long trial's ratio: 1 + (1-epoch cost + (epochs - 1) x per epoch) / bare, from the
  two, with the ratio as timed ("direct") beside it.

Each figure comes with a ~95 % interval (of a median: sign-test order statistics of the
paired rounds; a derived figure: its parts' interval ends combined), in the process's CPU
time (all its threads: the meter's and the heartbeat's too; ecotune's cost is work this
process does, and on a loaded machine CPU figures stay put where wall figures swing),
which the verdict uses, and in wall time beside it. Verdicts: holds, misses, or not
resolved where the target lies inside the interval. About 3 minutes on an idle 2-core
machine with the defaults.

    .venv/bin/python benchmarks/overhead.py [--rounds 15] [--short-rounds 41] \
        [--epochs 20] [--meters codecarbon cputime]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from torch import nn

from ecotune.data import load_data
from ecotune.energy import get_meter
from ecotune.energy.hardware import INFERENCE_SAMPLE, inference_estimates
from ecotune.execution import count_trials, run_worker
from ecotune.models import build_model
from ecotune.search import BuiltinObjective, prepare

#: Storage methods that write (one transaction each on relational storage) and that read.
WRITES = ("create_new_trial", "set_trial_param", "set_trial_user_attr",
          "set_trial_system_attr", "set_trial_state_values", "set_trial_intermediate_value")
READS = ("get_trial", "get_all_trials", "get_n_trials", "get_trial_id_from_study_id_trial_number",
         "get_trial_system_attrs", "get_trial_user_attrs", "get_trial_params",
         "get_study_system_attrs", "get_study_user_attrs", "get_study_directions")
SAMPLER = ("infer_relative_search_space", "sample_relative", "sample_independent",
           "before_trial", "after_trial")


class Parts:
    """Seconds and calls per part, added up by wrappers on live objects."""

    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self.enabled = False
        self.reset()

    def wrap(self, obj: object, method: str, part: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            if not self.enabled:
                return inner(*args, **kwargs)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
                self.calls[part] += 1

        setattr(obj, method, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        #: (wall, CPU) at each reading of the trial's first window (its training window).
        self.marks: list[tuple[float, float]] = []
        self.windows_opened = 0


class _TimedSampler(optuna.samplers.BaseSampler):
    """Delegates to ``inner``; the methods are timed by :meth:`Parts.wrap`."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        for method in SAMPLER:
            setattr(self, method, getattr(inner, method))

    def infer_relative_search_space(self, study, trial):  # replaced per instance
        raise NotImplementedError

    def sample_relative(self, study, trial, search_space):  # replaced per instance
        raise NotImplementedError

    def sample_independent(self, study, trial, param_name, param_distribution):
        raise NotImplementedError  # replaced per instance

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _timed_meter(name: str, parts: Parts):
    """The meter ``name``, with its windows' opening, readings and closing timed."""
    meter = get_meter(name)
    open_window = meter.open

    def timed_open(*args, **kwargs):
        start = time.perf_counter()
        window = open_window(*args, **kwargs)
        if parts.enabled:
            parts.seconds["meter open/close"] += time.perf_counter() - start
            parts.calls["meter open/close"] += 1
        parts.wrap(window, "lap", "meter reading")
        parts.wrap(window, "close", "meter open/close")
        if parts.enabled and parts.windows_opened == 0:  # the training window: one
            lap = window.lap  # reading per epoch, at the end of its report()

            def marked(*args, **kwargs):
                # After the reading: from epoch 1's to the last epoch's, the span holds
                # the readings of epochs 2 to last (CodeCarbon: the real ones once a
                # second and the last planned epoch's), as the long trial adds them to
                # the 1-epoch trial, whose one reading its own cost holds.
                try:
                    return lap(*args, **kwargs)
                finally:
                    parts.marks.append((time.perf_counter(), time.process_time()))

            window.lap = marked
        parts.windows_opened += 1
        return window

    meter.open = timed_open
    return meter


def _count_writing_transactions(storage, parts: Parts) -> None:
    """Count, as the call count of part "transactions that wrote", every commit on the
    storage's database that followed an INSERT, UPDATE or DELETE, and as that of part
    "statements that read" every SELECT (a storage read served from memory is none)."""
    from sqlalchemy import event

    engine = getattr(storage, "_backend", storage).engine
    wrote = [False]

    def statement(_conn, _cursor, sql: str, *_args) -> None:
        verb = sql.lstrip()[:6].upper()
        wrote[0] = wrote[0] or verb in ("INSERT", "UPDATE", "DELETE")
        if verb == "SELECT" and parts.enabled:
            parts.calls["statements that read"] += 1

    def commit(_conn) -> None:
        if wrote[0] and parts.enabled:
            parts.calls["transactions that wrote"] += 1
        wrote[0] = False

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)


def bare_loop(epochs: int, seed: int = 0, marks: list | None = None) -> dict:
    """The same training, test evaluation and estimates without ecotune: returns the
    seconds of the training (and validation), the estimates and the test evaluation.
    ``marks`` gets (wall, CPU) after each epoch's validation."""
    start_s = time.perf_counter()
    data = load_data("digits")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model("cnn", data.input_shape, data.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.y_train), generator=generator)
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            float((model(data.x_val).argmax(1) == data.y_val).float().mean())
        if marks is not None:
            marks.append((time.perf_counter(), time.process_time()))
    t0 = time.perf_counter()
    training_s = t0 - start_s
    inference_estimates(model, data.x_val[:INFERENCE_SAMPLE])
    t1 = time.perf_counter()
    with torch.no_grad():
        float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    t2 = time.perf_counter()
    return {"training": training_s, "estimates": t1 - t0, "test evaluation": t2 - t1}


def median_ci(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95 % confidence interval of the median of ``values``: the
    order statistics k and n-1-k with k = floor((n - 1.96 sqrt(n)) / 2) (the sign test's
    interval; 21 values: the 7th and 15th smallest)."""
    ordered = sorted(values)
    k = max(0, int((len(ordered) - 1.96 * len(ordered) ** 0.5) / 2))
    return ordered[k], ordered[len(ordered) - 1 - k]


def verdict(interval: tuple[float, float], target: float) -> str:
    """"holds" when the whole interval is at or below the target, "misses" when it is all
    above, "not resolved" when the target lies inside it."""
    low, high = interval
    return "holds" if high <= target else "misses" if low > target else "not resolved"


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def compare(meter_name: str, epochs: int, rounds: int, workdir: Path) -> dict:
    spec = {
        "study": {"name": f"overhead-{meter_name}-{epochs}",
                  "storage": f"sqlite:///{workdir}/bench.db", "sampler": "random", "seed": 0,
                  "n_trials": 1},
        "model": {"name": "cnn"},
        "training": {"epochs": epochs, "batch_size": 64, "lr": 0.01, "optimizer": "adam",
                     "test_evaluation": "all"},  # as the bare loop: every trial
        "energy": {"meter": meter_name},
        # Two learning rates 1e-12 apart: the sampler really samples (Optuna skips a
        # single choice), and every trial trains as the bare loop does.
        "search_space": {"lr": {"type": "categorical", "choices": [0.01, 0.01 + 1e-12]}},
    }
    parts = Parts()
    spec, study = prepare(spec)
    study.sampler = _TimedSampler(study.sampler)
    for method in SAMPLER:
        parts.wrap(study.sampler, method, "sampler")
    for method in WRITES:
        parts.wrap(study._storage, method, f"write {method}")
    for method in READS:
        if hasattr(study._storage, method):
            parts.wrap(study._storage, method, "storage reads")
    # ecotune's batched attribute writes go past the storage object's methods: timed where
    # the measurement window calls them, and every writing transaction counted on the
    # database connection itself.
    import ecotune.search._measure as window_module

    if hasattr(window_module, "set_user_attrs"):  # a tree from before batching: none
        parts.wrap(window_module, "set_user_attrs", "write set_user_attrs (batched)")
    _count_writing_transactions(study._storage, parts)
    objective = BuiltinObjective(spec, meter=_timed_meter(meter_name, parts))
    # As `ecotune run` does before its first trial: one-off costs of the process.
    warm_up_s = timed(objective.warm_up)

    def ecotune_trial(target: int) -> None:
        run_worker(spec, study, target, objective)

    first_s = timed(ecotune_trial, count_trials(study) + 1)
    bare_loop(epochs)
    bare, eco, both = [], [], collections.Counter()
    bare_cpu: list[float] = []
    eco_cpu: list[float] = []
    per_trial: list[Parts] = []
    # Per round: (ecotune's epoch-to-epoch span - the bare loop's) / (epochs - 1), wall, CPU.
    per_epoch: list[float] = []
    cpu_per_epoch: list[float] = []
    eco_marks: list[tuple[float, float]] = []
    bare_marks: list[tuple[float, float]] = []
    for i in range(rounds):
        def eco_round() -> None:
            # The benchmark's own count (to ask for one trial more) is not the trial's.
            target = count_trials(study) + 1
            parts.reset()
            parts.enabled = True
            cpu0 = time.process_time()
            eco.append(timed(ecotune_trial, target))
            eco_cpu.append(time.process_time() - cpu0)
            parts.enabled = False
            eco_marks[:] = parts.marks
            # The training window's duration (train() and the meter's readings in it).
            window_s = study.trials[-1].user_attrs["duration_s"]
            snapshot = Parts()
            snapshot.seconds["training window"] = window_s
            snapshot.seconds.update(parts.seconds)
            snapshot.calls.update(parts.calls)
            per_trial.append(snapshot)

        def bare_round() -> None:
            bare_marks.clear()
            t0, cpu0 = time.perf_counter(), time.process_time()
            both.update(bare_loop(epochs, marks=bare_marks))
            bare.append(time.perf_counter() - t0)
            bare_cpu.append(time.process_time() - cpu0)

        # ABBA order: a slow drift of the machine affects both sides alike.
        for side in ((bare_round, eco_round) if i % 2 == 0 else (eco_round, bare_round)):
            side()
        if epochs > 1:
            assert len(eco_marks) == len(bare_marks) == epochs, (len(eco_marks), epochs)
            for clock, out in ((0, per_epoch), (1, cpu_per_epoch)):
                eco_span = eco_marks[-1][clock] - eco_marks[0][clock]
                bare_span = bare_marks[-1][clock] - bare_marks[0][clock]
                out.append((eco_span - bare_span) / (epochs - 1))
    ratios = [e / b for e, b in zip(eco, bare)]
    costs_s = [e - b for e, b in zip(eco, bare)]
    cpu_ratios = [e / b for e, b in zip(eco_cpu, bare_cpu)]
    cpu_costs_s = [e - b for e, b in zip(eco_cpu, bare_cpu)]
    ratio, cost_s = statistics.median(ratios), statistics.median(costs_s)
    train_s = statistics.median(p.seconds.pop("training window") - p.seconds["meter reading"]
                                for p in per_trial)
    names = sorted({k for p in per_trial for k in (*p.seconds, *p.calls)})
    median_parts = {k: statistics.median(p.seconds[k] for p in per_trial) for k in names}
    median_calls = {k: statistics.median(p.calls[k] for p in per_trial) for k in names}
    return {"meter": meter_name, "epochs": epochs, "bare_s": statistics.median(bare),
            "eco_s": statistics.median(eco), "ratio": ratio, "cost_s": cost_s,
            "ratio_ci": median_ci(ratios), "cost_ci_s": median_ci(costs_s),
            "cpu_ratio": statistics.median(cpu_ratios), "cpu_ratio_ci": median_ci(cpu_ratios),
            "cpu_cost_s": statistics.median(cpu_costs_s),
            "cpu_cost_ci_s": median_ci(cpu_costs_s),
            "parts": median_parts, "calls": median_calls, "warm_up_s": warm_up_s,
            "first_s": first_s, "both": {k: v / rounds for k, v in both.items()},
            "trainer_s": train_s, "bare_cpu_s": statistics.median(bare_cpu),
            **({"per_epoch_s": statistics.median(per_epoch),
                "per_epoch_ci_s": median_ci(per_epoch),
                "cpu_per_epoch_s": statistics.median(cpu_per_epoch),
                "cpu_per_epoch_ci_s": median_ci(cpu_per_epoch)} if per_epoch else {})}


def show(result: dict) -> None:
    r = result
    print(f"\n{r['meter']}, {r['epochs']} epochs: bare {r['bare_s'] * 1e3:.1f} ms, ecotune "
          f"{r['eco_s'] * 1e3:.1f} ms, ratio {r['ratio']:.3f}, ecotune's cost "
          f"{r['cost_s'] * 1e3:+.1f} ms/trial (paired medians; warm-up "
          f"{r['warm_up_s'] * 1e3:.0f} ms, first trial {r['first_s'] * 1e3:.0f} ms)")
    lo, hi = r["ratio_ci"]
    clo, chi = r["cost_ci_s"]
    print(f"  wall: ratio {r['ratio']:.3f} (95 % CI of the median {lo:.3f}-{hi:.3f}), cost "
          f"{r['cost_s'] * 1e3:+.1f} ms ({clo * 1e3:+.1f} to {chi * 1e3:+.1f})")
    lo, hi = r["cpu_ratio_ci"]
    clo, chi = r["cpu_cost_ci_s"]
    print(f"  CPU time of the process (all its threads): ratio {r['cpu_ratio']:.3f} "
          f"({lo:.3f}-{hi:.3f}), cost {r['cpu_cost_s'] * 1e3:+.1f} ms "
          f"({clo * 1e3:+.1f} to {chi * 1e3:+.1f})")
    if "per_epoch_s" in r:
        lo, hi = r["per_epoch_ci_s"]
        clo, chi = r["cpu_per_epoch_ci_s"]
        print(f"  per epoch, epoch to epoch: wall {r['per_epoch_s'] * 1e3:+.2f} ms "
              f"({lo * 1e3:+.2f} to {hi * 1e3:+.2f}), CPU {r['cpu_per_epoch_s'] * 1e3:+.2f} "
              f"ms ({clo * 1e3:+.2f} to {chi * 1e3:+.2f})")
    parts, calls = r["parts"], r["calls"]
    writes = [k for k in parts if k.startswith("write ")]
    n_writes = sum(calls[k] for k in writes)
    write_ms = sum(parts[k] for k in writes) * 1e3
    print(f"  {'sampler':<34} {parts.get('sampler', 0) * 1e3:7.2f} ms")
    print(f"  {'storage writes':<34} {write_ms:7.2f} ms  ({n_writes:.0f} calls per trial: " +
          ", ".join(f"{k.removeprefix('write ')} {calls[k]:.0f}" for k in writes) +
          f"; {calls.get('transactions that wrote', 0):.0f} writing transactions, "
          "the heartbeat thread's included)")
    print(f"  {'storage reads':<34} {parts.get('storage reads', 0) * 1e3:7.2f} ms  "
          f"({calls.get('storage reads', 0):.0f} calls per trial, "
          f"{calls.get('statements that read', 0):.0f} SELECT statements)")
    print(f"  {'meter open/close (2 windows)':<34} "
          f"{parts.get('meter open/close', 0) * 1e3:7.2f} ms")
    laps = calls.get("meter reading", 0)
    lap_ms = parts.get("meter reading", 0) * 1e3
    print(f"  {'meter readings':<34} {lap_ms:7.2f} ms  ({laps:.0f}: "
          f"{lap_ms / max(laps, 1):.2f} ms each)")
    both = r["both"]
    trainer_ms = (r["trainer_s"] - both["training"]) * 1e3
    print(f"  {'train() against the bare loop':<34} {trainer_ms:7.2f} ms  (the training "
          "window's time less its readings, minus the bare loop's training)")
    measured = sum(parts.values()) * 1e3 + trainer_ms
    print(f"  {'the rest (rules, attributes, loop)':<34} {r['cost_s'] * 1e3 - measured:7.2f} ms"
          "  (cost minus the parts above; noise included)")
    print(f"  both sides do: test evaluation {both['test evaluation'] * 1e3:.2f} ms, "
          f"inference estimates {both['estimates'] * 1e3:.2f} ms")


def derive(long: dict, short: dict, cpu: bool) -> dict:
    """Ecotune's cost per epoch (measured epoch to epoch in the long trials), its fixed
    cost (the 1-epoch trial's cost less one epoch's) and the ratio they give the long
    trial, each with an interval made of its parts' intervals' ends (so at least ~95 %)."""
    pre = "cpu_" if cpu else ""
    per_epoch, (pe_lo, pe_hi) = long[pre + "per_epoch_s"], long[pre + "per_epoch_ci_s"]
    one, (one_lo, one_hi) = short[pre + "cost_s"], short[pre + "cost_ci_s"]
    bare_s = long["bare_cpu_s" if cpu else "bare_s"]
    steps = long["epochs"] - 1  # the long trial: the 1-epoch trial and this many epochs
    return {"per_epoch": (per_epoch, pe_lo, pe_hi),
            "fixed": (one - per_epoch, one_lo - pe_hi, one_hi - pe_lo),
            "ratio": tuple(1 + (c + steps * e) / bare_s for c, e in
                           ((one, per_epoch), (one_lo, pe_lo), (one_hi, pe_hi))),
            "bare_s": bare_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="paired rounds of the long trial (ABBA order)")
    parser.add_argument("--short-rounds", type=int, default=41,
                        help="paired rounds of the 1-epoch trial")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the ~1 s trial")
    parser.add_argument("--meters", nargs="+", default=["codecarbon", "cputime"])
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the cost per epoch is measured between "
                     "the first and the last epoch)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start_s = time.perf_counter()
    print(f"benchmarks/overhead.py: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for meter in args.meters:
            long = compare(meter, args.epochs, args.rounds, Path(tmp))
            show(long)
            short = compare(meter, 1, args.short_rounds, Path(tmp))
            show(short)
            summary.append((meter, long, short))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end, "
          f"{time.perf_counter() - start_s:.0f} s in all")
    print("Verdicts on the ~95 % interval of each figure: holds (all of it within the "
          "target), misses (all of it past), not resolved (the target inside it).\n"
          "Per epoch: ecotune's epoch-to-epoch time less the bare loop's, over the long "
          "trial's epochs 1 to last (median of the rounds). Fixed: the 1-epoch trial's "
          "cost less one epoch's. Ratio: the long trial's, from the two (1 + (1-epoch "
          "cost + (epochs - 1) x per epoch) / bare); 'direct': its paired median as "
          "timed, for comparison. CPU time (the process, every thread: ecotune's cost is "
          "work this process does) is the verdict; wall time beside it.")
    targets = {"codecarbon": 1.03, "cputime": 1.01}

    def fig(value: float, lo: float, hi: float, scale: float, fmt: str) -> str:
        return f"{value * scale:{fmt}} [{lo * scale:{fmt}} to {hi * scale:{fmt}}]"

    for meter, long, short in summary:
        ratio_target = targets.get(meter)
        for clock, cpu in (("CPU", True), ("wall", False)):
            d = derive(long, short, cpu)
            pre = "cpu_" if cpu else ""
            direct, direct_ci = long[pre + "ratio"], long[pre + "ratio_ci"]
            ratio_text = "" if ratio_target is None else (
                f" (target <= {ratio_target}: {verdict(d['ratio'][1:], ratio_target)})")
            print(f"{meter:<10} {clock:<4} per epoch {fig(*d['per_epoch'], 1e3, '.2f')} ms "
                  f"(target <= 0.5 ms: {verdict(d['per_epoch'][1:], 0.0005)}); fixed "
                  f"{fig(*d['fixed'], 1e3, '.1f')} ms (target <= 20 ms: "
                  f"{verdict(d['fixed'][1:], 0.020)}); {args.epochs}-epoch trial "
                  f"({d['bare_s']:.2f} s bare) ratio {fig(*d['ratio'], 1, '.4f')}"
                  f"{ratio_text}; direct {direct:.3f} [{direct_ci[0]:.3f}-{direct_ci[1]:.3f}]")


if __name__ == "__main__":
    main()

"""ecotune's own cost per trial, against a bare PyTorch loop doing the same work.

The same digits training (Adam, validation accuracy after every epoch), the same
test-split evaluation after it (accuracy and activation density) and the same inference
estimates run as a bare loop and as
an ecotune trial (``run_worker``, as ``ecotune run`` runs a trial: claim lock, trial
count, sampler, SQLite storage, measurement window, rules, attributes), alternated in one
process so that both see the same machine state. The studies set ``[training]
test_evaluation = "all"``, so every ecotune trial evaluates the test split, as every bare
round does: like with like, the difference is ecotune's own cost.

Targets (issue 25, idle 2-core machine): a ~1 s 20-epoch trial <= 1.03x the bare loop
with CodeCarbon and <= 1.01x with cputime; fixed cost <= 20 ms per trial; <= 0.5 ms per
epoch. A cost of a fraction of a millisecond cannot be seen in the difference of two
2-second trials (their CPU time alone varies by ±2-8 % on a shared machine), so each part
of the cost is measured where it is large against the work around it:

- **per epoch and fixed** (``--epoch-counts``, ``--slope-rounds``): trials of very short
  epochs (the digits mlp, one batch of 8 training examples and a 36-example validation
  split: ~2 ms an epoch), 2, 42 and 82 epochs, each ecotune trial paired with a bare loop
  of the same epochs (ABBA order). Two epochs at least: CodeCarbon reads for real at a
  trial's first report and at its last, one reading in a 1-epoch trial, two in any
  longer one (a line through a 1-epoch trial would put one reading into the slope). In
  every round, the least-squares line of (ecotune - bare) against epochs: its slope is
  ecotune's cost per epoch (the trainer's loop, the report, the rules, the meter's
  reading; everything the trial does once an epoch), its intercept the fixed cost of a
  trial of two epochs or more (sampler, storage, windows, attributes, CodeCarbon's
  first and last real readings). The
  figures are the medians over the rounds. A short epoch has one batch where a digits
  cnn epoch has 17: the trainer's per-batch bookkeeping (the loss read, the finiteness
  check, the no-op autocast) is timed alone and printed as ``per batch``, and the
  per-epoch verdict adds 16 batches of it;
- **per second** (``--seconds``): what ecotune costs by the clock rather than by the
  epoch: CodeCarbon's background readings (its scheduler thread, once a second) and its
  real readings (at most once a second, at a report). A measurement window open over
  sleeps of 1 and 3 s, reported every 0.5 s, against the same sleeps with no window: the
  difference's slope over the two durations (the window's opening and closing cancel);
- **the 20-epoch trial** (``--rounds``, ``--epochs``): the built-in cnn, batch 64, the
  full training split, paired rounds. Its ratio, the verdict, is timed in the trial: two
  ~1.1-1.4 s trainings differ by several per cent from one run to the next on this
  machine, so the difference of an ecotune trial and a bare loop cannot resolve a cost of
  one per cent. Instead each side's CPU time less the work both do (the epochs' batches,
  the validations, the test evaluation, the estimates: ecotune's calls timed where the
  trial makes them, :class:`SharedWork`, on the calling thread's clock; the bare loop's
  the same way) is its own cost, and ecotune's less the bare loop's (its set-up: data,
  model, optimiser) is ecotune's, plus the trainer's per-batch bookkeeping (timed alone:
  it sits inside the batches). Beside it the ratio derived from the parts, 1 + (fixed +
  epochs x (per epoch + 16 x per batch) + bare seconds x per second) / bare, and the
  paired ratio as timed; its cost is split into parts, timed inside the same ecotune
  trials (wrappers around the sampler, the storage's methods and the meter's windows):

  - sampler: Optuna's sampler (``sample_*``, ``before_trial``, ``after_trial``);
  - storage writes, and their count per trial (trial creation, parameter, attributes,
    constraints, state and values), and storage reads (the calls, and the SELECT
    statements that reached the database: a read served from memory is none);
  - meter: opening and closing the windows (training and test evaluation), and the
    readings after each epoch;
  - the rest: ecotune's Python around them (rules, attribute building, the loop).

The inference estimates and the test evaluation are work both sides do: their own time is
printed as a reference, not as ecotune's cost. The benchmark's own count of the study's
trials (to ask ``run_worker`` for one more) is outside the timing; ``run_worker``'s own
counts and its start (the look for dead trials: once a heartbeat interval through the
same storage object, so once every few trials here) are inside it.

Each figure comes with a ~95 % interval (of a median: sign-test order statistics of the
rounds; a derived figure: its parts' interval ends combined), in the process's CPU time
(all its threads: the meter's and the heartbeat's too; ecotune's cost is work this
process does, and on a loaded machine CPU figures stay put where wall figures swing),
which the verdict uses, and in wall time beside it. Verdicts: holds, misses, or not
resolved where the target lies inside the interval. About 2 1/4 minutes on an idle
2-core machine with the defaults (132 s on 2026-12-02).

    .venv/bin/python benchmarks/overhead.py [--rounds 15] [--slope-rounds 31] \
        [--epoch-counts 2 42 82] [--seconds 1 3] [--epochs 20] \
        [--meters codecarbon cputime]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import optuna
import torch
from torch import nn

from ecotune import measure
from ecotune.data import load_data
from ecotune.energy import get_meter, make_meter
from ecotune.energy.hardware import INFERENCE_SAMPLE, NONZERO_THRESHOLD, inference_estimates
from ecotune.execution import count_trials, run_worker
from ecotune.knobs import hidden_activation_modules
from ecotune.models import build_model
from ecotune.search import BuiltinObjective, prepare


class Setup(NamedTuple):
    """What a trial trains: the model, ``load_data("digits", **data)``, the batch size."""

    model: str
    data: dict
    batch_size: int


#: The issue's ~1 s trial (about 2.3 s on this machine): the built-in cnn, every example.
LONG = Setup("cnn", {}, 64)
#: Very short epochs (one batch, a small validation split), where a fraction of a
#: millisecond per epoch stands out against the epoch's own time.
SHORT = Setup("mlp", {"train_samples": 8, "val_fraction": 0.02}, 8)
#: Batches of a digits cnn epoch (1,077 examples in batches of 64): SHORT's epochs have 1.
LONG_BATCHES = 17


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
    """A meter ``name`` of its own (the process's cached one stays as it is), with its
    windows' opening, readings and closing timed."""
    meter = make_meter(name, ())  # as a trial on the CPU gets it
    open_window = meter.open

    def timed_open(*args, **kwargs):
        start = time.perf_counter()
        window = open_window(*args, **kwargs)
        if parts.enabled:
            parts.seconds["meter open/close"] += time.perf_counter() - start
            parts.calls["meter open/close"] += 1
        parts.wrap(window, "lap", "meter reading")
        parts.wrap(window, "close", "meter open/close")
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


def bare_loop(setup: Setup, epochs: int, seed: int = 0) -> dict:
    """The same training, test evaluation (accuracy and activation density) and estimates
    without ecotune: returns the seconds of the training (and validation), the estimates
    and the test evaluation, and ``shared``: the thread CPU seconds of the work an
    ecotune trial times as shared (:class:`SharedWork`: the epochs' batches, the
    validations, the estimates, the test evaluation; the rest is the loop's set-up:
    data, model, optimiser)."""
    start_s = time.perf_counter()
    shared_s = 0.0
    data = load_data("digits", **setup.data)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model(setup.model, data.input_shape, data.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()  # outside the shared work, as ecotune's (its runtime decisions)
        c0 = time.thread_time()
        order = torch.randperm(len(data.y_train), generator=generator)
        for start in range(0, len(order), setup.batch_size):
            idx = order[start:start + setup.batch_size]
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        c1 = time.thread_time()
        model.eval()
        with torch.no_grad():
            float((model(data.x_val).argmax(1) == data.y_val).float().mean())
        shared_s += (c1 - c0) + (time.thread_time() - c1)
    t0, c0 = time.perf_counter(), time.thread_time()
    training_s = t0 - start_s
    inference_estimates(model, data.x_val[:INFERENCE_SAMPLE])
    t1, c1 = time.perf_counter(), time.thread_time()
    # The test evaluation's two figures, as a trial's: accuracy and the hidden
    # activations' density (forward hooks counting the non-zero outputs).
    counts = [0, 0]

    def count(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        counts[0] += int((output.abs() > NONZERO_THRESHOLD).sum())
        counts[1] += output.numel()

    hooks = [m.register_forward_hook(count) for m in hidden_activation_modules(model)]
    with torch.no_grad():
        float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    for hook in hooks:
        hook.remove()
    t2 = time.perf_counter()
    shared_s += time.thread_time() - c0
    return {"training": training_s, "estimates": t1 - t0, "test evaluation": t2 - t1,
            "shared": shared_s}


#: The work a bare loop does too, as ecotune's trial calls it: (module, function).
SHARED_WORK = (("ecotune.training._loop", "_train_epoch"),  # an epoch's batches
               ("ecotune.training._loop", "accuracy"),  # the epoch's validation
               ("ecotune.training._loop", "accuracy_and_density"),  # the test split
               ("ecotune.energy.hardware", "inference_estimates"))


class SharedWork:
    """The thread CPU seconds of the calls to :data:`SHARED_WORK` inside ecotune's
    trials, added up while ``enabled``: work both sides do, so that a trial's CPU time
    less it (and the bare loop's less its own) leaves each side's own cost, timed in the
    same trial as the training whose noise it would otherwise sit in. The calls are
    timed on the calling thread's clock: what other threads (CodeCarbon's, the
    heartbeat's) do meanwhile stays ecotune's cost."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.enabled = False

    @contextlib.contextmanager
    def timing(self):
        """The functions of :data:`SHARED_WORK` wrapped, put back at the end."""
        import importlib

        originals = []
        for module_name, name in SHARED_WORK:
            module = importlib.import_module(module_name)
            original = getattr(module, name)
            originals.append((module, name, original))
            setattr(module, name, self._timed(original))
        try:
            yield self
        finally:
            for module, name, original in originals:
                setattr(module, name, original)

    def _timed(self, fn):
        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            c0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - c0
        return timed


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


def clocks() -> tuple[float, float]:
    """(wall, CPU of the process: every thread) now, seconds."""
    return time.perf_counter(), time.process_time()


class EcotuneTrials:
    """A study of one setup and epoch count, and its trials one at a time as ``ecotune
    run`` runs them; with ``parts``, the sampler's, storage's and meter's calls timed."""

    def __init__(self, meter_name: str, setup: Setup, epochs: int, workdir: Path,
                 parts: Parts | None = None) -> None:
        spec = {
            "study": {"name": f"overhead-{meter_name}-{setup.model}-{epochs}",
                      "storage": f"sqlite:///{workdir}/bench.db", "sampler": "random",
                      "seed": 0, "n_trials": 1},
            "data": {"name": "digits", **setup.data},
            "model": {"name": setup.model},
            "training": {"epochs": epochs, "batch_size": setup.batch_size, "lr": 0.01,
                         "optimizer": "adam",
                         "test_evaluation": "all"},  # as the bare loop: every trial
            "energy": {"meter": meter_name},
            # Two learning rates 1e-12 apart: the sampler really samples (Optuna skips a
            # single choice), and every trial trains as the bare loop does.
            "search_space": {"lr": {"type": "categorical", "choices": [0.01, 0.01 + 1e-12]}},
        }
        self.parts = parts
        self.spec, self.study = prepare(spec)
        meter = None  # the spec's meter, as `ecotune run` gets it
        if parts is not None:
            study = self.study
            study.sampler = _TimedSampler(study.sampler)
            for method in SAMPLER:
                parts.wrap(study.sampler, method, "sampler")
            for method in WRITES:
                parts.wrap(study._storage, method, f"write {method}")
            for method in READS:
                if hasattr(study._storage, method):
                    parts.wrap(study._storage, method, f"read {method}")
            # ecotune's batched attribute writes go past the storage object's methods:
            # timed where the measurement window calls them, and every writing
            # transaction counted on the database connection itself.
            import ecotune.search._measure as window_module

            if hasattr(window_module, "set_user_attrs"):
                # (The built-in trial's one call holds its attributes for the
                # transaction of its finished state: no transaction of its own.)
                parts.wrap(window_module, "set_user_attrs",
                           "write set_user_attrs (batched, with the state)")
            _count_writing_transactions(study._storage, parts)
            meter = _timed_meter(meter_name, parts)
        self.objective = BuiltinObjective(self.spec, meter=meter)
        # As `ecotune run` does before its first trial: one-off costs of the process.
        self.warm_up_s = timed(self.objective.warm_up)
        self.first_s = timed(self.trial)

    def trial(self) -> tuple[float, float]:
        """One more trial: its (wall, CPU) seconds, the benchmark's own count outside."""
        target = count_trials(self.study) + 1
        if self.parts is not None:
            self.parts.reset()
            self.parts.enabled = True
        (w0, c0) = clocks()
        run_worker(self.spec, self.study, target, self.objective)
        (w1, c1) = clocks()
        if self.parts is not None:
            self.parts.enabled = False
        return w1 - w0, c1 - c0


def bare_trial(setup: Setup, epochs: int, both: collections.Counter | None = None
               ) -> tuple[float, float]:
    (w0, c0) = clocks()
    seconds = bare_loop(setup, epochs)
    (w1, c1) = clocks()
    if both is not None:
        both.update(seconds)
    return w1 - w0, c1 - c0


def paired(eco, bare, i: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Run ``eco()`` and ``bare()`` in ABBA order (by round ``i``): a slow drift of the
    machine affects both sides alike. Their (wall, CPU) seconds."""
    if i % 2 == 0:
        b = bare()
        e = eco()
    else:
        e = eco()
        b = bare()
    return e, b


def compare(meter_name: str, epochs: int, rounds: int, workdir: Path,
            batch_s: float) -> dict:
    """The long trial: paired rounds, its cost split into parts, and its own cost timed
    inside it (``own_*``: the trial's CPU time less the shared work's, against the bare
    loop's less its own, plus the trainer's per-batch bookkeeping, ``batch_s`` a batch,
    which the shared work's timing holds)."""
    parts = Parts()
    shared = SharedWork()
    with shared.timing():
        trials = EcotuneTrials(meter_name, LONG, epochs, workdir, parts)
        bare_trial(LONG, epochs)
        eco, bare, both = [], [], collections.Counter()
        per_trial: list[Parts] = []
        eco_shared: list[float] = []
        bare_shared: list[float] = []

        def eco_round() -> tuple[float, float]:
            shared.seconds, shared.enabled = 0.0, True
            try:
                result = trials.trial()
            finally:
                shared.enabled = False
            eco_shared.append(shared.seconds)
            # The training window's duration (train() and the meter's readings in it).
            snapshot = Parts()
            snapshot.seconds["training window"] = \
                trials.study.trials[-1].user_attrs["duration_s"]
            snapshot.seconds.update(parts.seconds)
            snapshot.calls.update(parts.calls)
            per_trial.append(snapshot)
            return result

        def bare_round() -> tuple[float, float]:
            before = both["shared"]
            result = bare_trial(LONG, epochs, both)
            bare_shared.append(both["shared"] - before)
            return result

        for i in range(rounds):
            e, b = paired(eco_round, bare_round, i)
            eco.append(e)
            bare.append(b)
    result = {"meter": meter_name, "epochs": epochs, "warm_up_s": trials.warm_up_s,
              "first_s": trials.first_s, "both": {k: v / rounds for k, v in both.items()}}
    for clock, pre in ((0, ""), (1, "cpu_")):
        ratios = [e[clock] / b[clock] for e, b in zip(eco, bare)]
        costs = [e[clock] - b[clock] for e, b in zip(eco, bare)]
        result |= {pre + "bare_s": statistics.median(b[clock] for b in bare),
                   pre + "eco_s": statistics.median(e[clock] for e in eco),
                   pre + "ratio": statistics.median(ratios), pre + "ratio_ci": median_ci(ratios),
                   pre + "cost_s": statistics.median(costs), pre + "cost_ci_s": median_ci(costs)}
    bookkeeping_s = epochs * LONG_BATCHES * batch_s
    own = [(e[1] - es) - (b[1] - bs) + bookkeeping_s
           for e, es, b, bs in zip(eco, eco_shared, bare, bare_shared)]
    own_ratios = [1 + c / b[1] for c, b in zip(own, bare)]
    result |= {"own_s": statistics.median(own), "own_ci_s": median_ci(own),
               "own_ratio": statistics.median(own_ratios),
               "own_ratio_ci": median_ci(own_ratios),
               "shared_s": statistics.median(eco_shared)}
    result["trainer_s"] = statistics.median(
        p.seconds.pop("training window") - p.seconds["meter reading"] for p in per_trial)
    names = sorted({k for p in per_trial for k in (*p.seconds, *p.calls)})
    result["parts"] = {k: statistics.median(p.seconds[k] for p in per_trial) for k in names}
    result["calls"] = {k: statistics.median(p.calls[k] for p in per_trial) for k in names}
    return result


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of ``ys`` against ``xs``."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
             / sum((x - mean_x) ** 2 for x in xs))
    return slope, mean_y - slope * mean_x


def slope(meter_name: str, epoch_counts: list[int], rounds: int, workdir: Path) -> dict:
    """Per epoch and fixed: in each round, a trial of each epoch count paired with a bare
    loop of the same; the line of their differences against epochs (slope: per epoch,
    intercept: fixed), per clock. Medians and intervals over the rounds."""
    studies = {n: EcotuneTrials(meter_name, SHORT, n, workdir) for n in epoch_counts}
    for n in epoch_counts:
        bare_trial(SHORT, n)
    lines: dict[str, list[tuple[float, float]]] = {"": [], "cpu_": []}
    diffs: dict[int, list[float]] = collections.defaultdict(list)  # CPU, per epoch count
    t0 = time.perf_counter()
    for i in range(rounds):
        # Each round in its own order of epoch counts (rotated), each pair ABBA.
        order = epoch_counts[i % len(epoch_counts):] + epoch_counts[:i % len(epoch_counts)]
        round_diffs: dict[int, tuple[float, float]] = {}
        for j, n in enumerate(order):
            e, b = paired(studies[n].trial, lambda n=n: bare_trial(SHORT, n), i + j)
            round_diffs[n] = (e[0] - b[0], e[1] - b[1])
            diffs[n].append(e[1] - b[1])
        for clock, pre in ((0, ""), (1, "cpu_")):
            lines[pre].append(line([float(n) for n in epoch_counts],
                                   [round_diffs[n][clock] for n in epoch_counts]))
    result = {"seconds": time.perf_counter() - t0,
              "cpu_cost_by_epochs": {n: statistics.median(d) for n, d in diffs.items()}}
    for pre, fits in lines.items():
        slopes = [s for s, _ in fits]
        intercepts = [c for _, c in fits]
        result |= {pre + "per_epoch_s": statistics.median(slopes),
                   pre + "per_epoch_ci_s": median_ci(slopes),
                   pre + "fixed_s": statistics.median(intercepts),
                   pre + "fixed_ci_s": median_ci(intercepts)}
    return result


def time_driven(meter_name: str, durations_s: list[float], rounds: int,
                report_every_s: float = 0.5) -> dict:
    """Per second: a measurement window on the trials' meter (no trial: no storage) open
    over sleeps of each duration, reported every ``report_every_s``, against the same
    sleeps with no window; the slope of the difference over the durations."""
    meter = get_meter(meter_name, ())  # the meter a trial on the CPU gets

    def sleeps(duration_s: float, window) -> None:
        n = max(1, round(duration_s / report_every_s))
        for epoch in range(1, n + 1):
            time.sleep(report_every_s)
            if window is not None:
                window.report(epoch, 0.5)

    def eco(duration_s: float) -> tuple[float, float]:
        (w0, c0) = clocks()
        with measure(meter=meter, device="cpu",
                     epochs=max(1, round(duration_s / report_every_s))) as window:
            sleeps(duration_s, window)
        (w1, c1) = clocks()
        return w1 - w0, c1 - c0

    def bare(duration_s: float) -> tuple[float, float]:
        (w0, c0) = clocks()
        sleeps(duration_s, None)
        (w1, c1) = clocks()
        return w1 - w0, c1 - c0

    per_second = []
    for i in range(rounds):
        cost = {}
        for j, d in enumerate(durations_s):
            e, b = paired(lambda d=d: eco(d), lambda d=d: bare(d), i + j)
            cost[d] = e[1] - b[1]
        per_second.append(line(durations_s, [cost[d] for d in durations_s])[0])
    return {"cpu_per_second_s": statistics.median(per_second),
            "cpu_per_second_ci_s": median_ci(per_second)}


def per_batch_s(repeats: int = 20_000) -> float:
    """What the built-in trainer does each batch that the bare loop does not, timed
    alone on a real loss (``ecotune/training/_loop.py``, ``_train_epoch`` on the CPU: the
    no-op autocast, the EAT and projector checks, the loss summed as a Python float and
    checked finite, the step through ``backward_step``'s scaler check): seconds a batch,
    the minimum of 5 runs."""
    loss = nn.CrossEntropyLoss()(torch.randn(8, 10), torch.zeros(8, dtype=torch.long))
    grad_scaler = projector = None
    eat_active = False

    def bookkeeping() -> float:
        total = 0.0
        for _ in range(repeats):
            with contextlib.nullcontext():
                if eat_active:
                    pass
            total += loss.item() * 8
            if not math.isfinite(float(total)):
                raise FloatingPointError
            if grad_scaler is not None or projector is not None:
                pass
        return total

    best = math.inf
    for _ in range(5):
        t0 = time.process_time()
        bookkeeping()
        best = min(best, time.process_time() - t0)
    return best / repeats


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
    lo, hi = r["own_ratio_ci"]
    clo, chi = r["own_ci_s"]
    print(f"  timed in the trial (CPU less the shared work, {r['shared_s'] * 1e3:.0f} ms, on "
          f"each side): ratio {r['own_ratio']:.4f} ({lo:.4f}-{hi:.4f}), ecotune's own cost "
          f"{r['own_s'] * 1e3:+.1f} ms ({clo * 1e3:+.1f} to {chi * 1e3:+.1f})")
    parts, calls = r["parts"], r["calls"]
    writes = [k for k in parts if k.startswith("write ")]
    n_writes = sum(calls[k] for k in writes)
    write_ms = sum(parts[k] for k in writes) * 1e3
    print(f"  {'sampler':<34} {parts.get('sampler', 0) * 1e3:7.2f} ms")
    print(f"  {'storage writes':<34} {write_ms:7.2f} ms  ({n_writes:.0f} calls per trial: " +
          ", ".join(f"{k.removeprefix('write ')} {calls[k]:.0f}" for k in writes) +
          f"; {calls.get('transactions that wrote', 0):.0f} writing transactions, "
          "the heartbeat thread's included)")
    reads = [k for k in parts if k.startswith("read ")]
    print(f"  {'storage reads':<34} {sum(parts[k] for k in reads) * 1e3:7.2f} ms  "
          f"({sum(calls[k] for k in reads):.0f} calls per trial: " +
          ", ".join(f"{k.removeprefix('read ')} {calls[k]:.0f}" for k in reads) +
          f"; {calls.get('statements that read', 0):.0f} SELECT statements)")
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


def show_slope(meter: str, s: dict, t: dict, batch_s: float) -> None:
    by_epochs = ", ".join(f"{n}: {c * 1e3:+.1f}" for n, c in s["cpu_cost_by_epochs"].items())
    print(f"\n{meter}, short epochs ({SHORT.model}, {SHORT.data}, batch {SHORT.batch_size}; "
          f"{s['seconds']:.0f} s): CPU cost by epochs (ms, medians) {by_epochs}")
    for pre, clock in (("cpu_", "CPU"), ("", "wall")):
        pe, (pe_lo, pe_hi) = s[pre + "per_epoch_s"], s[pre + "per_epoch_ci_s"]
        fx, (fx_lo, fx_hi) = s[pre + "fixed_s"], s[pre + "fixed_ci_s"]
        print(f"  {clock:<4} slope {pe * 1e3:+.3f} ms per epoch ({pe_lo * 1e3:+.3f} to "
              f"{pe_hi * 1e3:+.3f}), intercept {fx * 1e3:+.1f} ms per trial "
              f"({fx_lo * 1e3:+.1f} to {fx_hi * 1e3:+.1f})")
    ps, (ps_lo, ps_hi) = t["cpu_per_second_s"], t["cpu_per_second_ci_s"]
    print(f"  per second (a window over sleeps, CPU): {ps * 1e3:+.2f} ms/s ({ps_lo * 1e3:+.2f} "
          f"to {ps_hi * 1e3:+.2f}); per batch (the trainer's bookkeeping, timed alone): "
          f"{batch_s * 1e6:.2f} us")


def derive(long: dict, s: dict, t: dict, batch_s: float, cpu: bool) -> dict:
    """The verdicts' figures, each (value, low, high): per epoch at the long trial's
    batches, fixed, and the long trial's ratio from them."""
    pre = "cpu_" if cpu else ""
    extra_batches_s = (LONG_BATCHES - SHORT_BATCHES) * batch_s
    pe = (s[pre + "per_epoch_s"], *s[pre + "per_epoch_ci_s"])
    pe = tuple(v + extra_batches_s for v in pe)
    fixed = (s[pre + "fixed_s"], *s[pre + "fixed_ci_s"])
    # Per second: CPU time only (wall time of a sleep is the sleep).
    ps = (t["cpu_per_second_s"], *t["cpu_per_second_ci_s"])
    bare_s, bare_wall_s = long[pre + "bare_s"], long["bare_s"]
    epochs = long["epochs"]
    ratio = tuple(1 + (f + epochs * e + bare_wall_s * p) / bare_s
                  for f, e, p in zip(fixed, pe, ps))
    return {"per_epoch": pe, "fixed": fixed, "per_second": ps, "ratio": ratio,
            "bare_s": bare_s}


#: Batches in an epoch of SHORT.
SHORT_BATCHES = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="paired rounds of the long trial (ABBA order)")
    parser.add_argument("--slope-rounds", type=int, default=31,
                        help="rounds of short-epoch pairs (one pair per epoch count)")
    parser.add_argument("--epoch-counts", type=int, nargs="+", default=[2, 42, 82],
                        help="epochs of the short-epoch trials (at least two counts, each "
                             ">= 2)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 3.0],
                        help="durations of the per-second windows (at least two)")
    parser.add_argument("--second-rounds", type=int, default=3,
                        help="rounds of per-second pairs")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the ~1 s trial")
    parser.add_argument("--meters", nargs="+", default=["codecarbon", "cputime"])
    args = parser.parse_args()
    if len(set(args.epoch_counts)) < 2 or min(args.epoch_counts) < 2:
        parser.error("--epoch-counts needs at least two different counts, each >= 2")
    if len(set(args.seconds)) < 2 or min(args.seconds) <= 0:
        parser.error("--seconds needs at least two different durations, each > 0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start_s = time.perf_counter()
    print(f"benchmarks/overhead.py: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    batch_s = per_batch_s()
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for meter in args.meters:
            s = slope(meter, sorted(set(args.epoch_counts)), args.slope_rounds, Path(tmp))
            t = time_driven(meter, sorted(set(args.seconds)), args.second_rounds)
            show_slope(meter, s, t, batch_s)
            long = compare(meter, args.epochs, args.rounds, Path(tmp), batch_s)
            show(long)
            summary.append((meter, long, s, t))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end, "
          f"{time.perf_counter() - start_s:.0f} s in all")
    print("Verdicts on the ~95 % interval of each figure: holds (all of it within the "
          "target), misses (all of it past), not resolved (the target inside it).\n"
          f"Per epoch: the short-epoch trials' slope, plus {LONG_BATCHES - SHORT_BATCHES} "
          "batches of the trainer's per-batch bookkeeping (a cnn epoch has "
          f"{LONG_BATCHES} batches, a short one {SHORT_BATCHES}). Fixed: their intercept. "
          "Per second: a window over sleeps (CodeCarbon's readings by the clock). Ratio "
          f"(the verdict): the {args.epochs}-epoch trial's, timed in it: its CPU time less "
          "the work the bare loop does too (batches, validations, test evaluation, "
          "estimates, each timed where the trial calls it), against the bare loop's less "
          "the same, plus the trainer's per-batch bookkeeping. Beside it, 'derived': 1 + "
          "(fixed + epochs x per epoch + bare seconds x per second) / bare (per second "
          "counts a window's cold reports over sleeps too), and 'paired': the paired "
          "median as timed (two ~1.4 s trainings differ by several per cent on this "
          "machine, so its interval cannot resolve one). CPU time (the process, every "
          "thread: ecotune's cost is work this process does); wall time beside it for the "
          "parts.")
    targets = {"codecarbon": 1.03, "cputime": 1.01}

    def fig(value: float, lo: float, hi: float, scale: float, fmt: str) -> str:
        return f"{value * scale:{fmt}} [{lo * scale:{fmt}} to {hi * scale:{fmt}}]"

    for meter, long, s, t in summary:
        ratio_target = targets.get(meter)
        for clock, cpu in (("CPU", True), ("wall", False)):
            d = derive(long, s, t, batch_s, cpu)
            pre = "cpu_" if cpu else ""
            paired_ci = long[pre + "ratio_ci"]
            text = (f"{meter:<10} {clock:<4} per epoch {fig(*d['per_epoch'], 1e3, '.3f')} ms "
                    f"(target <= 0.5 ms: {verdict(d['per_epoch'][1:], 0.0005)}); fixed "
                    f"{fig(*d['fixed'], 1e3, '.1f')} ms (target <= 20 ms: "
                    f"{verdict(d['fixed'][1:], 0.020)})")
            if cpu:
                own = (long["own_ratio"], *long["own_ratio_ci"])
                judged = ("" if ratio_target is None else
                          f" (target <= {ratio_target}: {verdict(own[1:], ratio_target)})")
                text += (f"; {args.epochs}-epoch trial ({d['bare_s']:.2f} s bare) ratio "
                         f"{fig(*own, 1, '.4f')}{judged}; derived "
                         f"{fig(*d['ratio'], 1, '.4f')}; paired {long[pre + 'ratio']:.3f} "
                         f"[{paired_ci[0]:.3f}-{paired_ci[1]:.3f}]")
            print(text)


if __name__ == "__main__":
    main()

"""An own training loop with and without energy-aware early stopping, in one run.

A small PyTorch CNN on Fashion-MNIST (a training subset; validation on held-out training
images), written as a user would write it with the per-epoch API (`ecotune.measure`,
`m.report`, `m.should_stop`), searched by TPE over lr, width and batch size: once plain,
once with `early_stopping={"enabled": True, "min_epochs": M}`, same seed. Prints each
study's search energy and hypervolume (both fronts against one reference point: accuracy
0, energy 10 % past the dearest trial of either study), the energy saved and the
hypervolume ratio.

Target (own-loop issue): at least 50 % of search energy saved at a hypervolume loss of at
most 2 %.

    .venv/bin/python benchmarks/own_loop.py [--trials 24] [--epochs 10] [--train 3000]
                                            [--min-epochs 2] [--meter cputime]
    .venv/bin/python benchmarks/own_loop.py --variant min_epochs=2,on_stop=complete \
        --variant method=successive_halving,min_epochs=1,reduction_factor=3,on_stop=complete

Each ``--variant`` is an ``[early_stopping]`` section (``enabled = true`` implied) run
against the same plain study; with ``on_stop=complete`` the loop ends a stopped trial
with its values at that epoch (``break``) instead of raising ``optuna.TrialPruned``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna
import torch
from torch import nn

import ecotune
from ecotune.data import load_data
from ecotune.names import (
    ATTR_ENERGY,
    ATTR_ENERGY_IS_ESTIMATE,
    ATTR_METER,
    ATTR_TRAINING,
    STOP_ENERGY_AWARE,
    STOP_SUCCESSIVE_HALVING,
)
from ecotune.pareto import hypervolume


def make_objective(data, epochs: int, meter: str = "auto", complete: bool = False):
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        lr = trial.suggest_float("lr", 1e-4, 0.3, log=True)
        width = trial.suggest_categorical("width", [4, 8, 16])
        batch = trial.suggest_categorical("batch_size", [32, 128])
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 49, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        order = torch.Generator().manual_seed(0)
        with ecotune.measure(trial, meter=meter, epochs=epochs) as m:
            for epoch in range(1, epochs + 1):
                model.train()
                perm = torch.randperm(len(data.y_train), generator=order)
                for i in range(0, len(perm), batch):
                    idx = perm[i:i + batch]
                    loss = nn.functional.cross_entropy(model(data.x_train[idx]),
                                                       data.y_train[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    accuracy = (model(data.x_val).argmax(1) == data.y_val).float().mean()
                m.report(epoch, accuracy.item())
                if m.should_stop():
                    if complete:  # the trial ends with its values at this epoch
                        break
                    raise optuna.TrialPruned(m.stop_reason)
        return m.accuracy, m.energy_j

    return objective


def run_study(name: str, data, args, **rules) -> tuple[optuna.Study, float]:
    study = ecotune.create_study(name, storage=None, sampler="tpe", seed=args.seed, **rules)
    complete = rules.get("early_stopping", {}).get("on_stop") == "complete"
    t0 = time.perf_counter()
    study.optimize(make_objective(data, args.epochs, args.meter, complete),
                   n_trials=args.trials)
    return study, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train", type=int, default=3000, help="training images used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-epochs", type=int, default=2,
                        help="early stopping's min_epochs (epochs before a trial may stop)")
    parser.add_argument("--meter", default="auto",
                        help="energy meter (auto, codecarbon, cputime: CPU time is not "
                             "inflated by other work on a shared machine)")
    parser.add_argument("--variant", action="append", default=[],
                        help="an early-stopping variant, KEY=VALUE,... of [early_stopping] "
                             "(repeatable; default: min_epochs from --min-epochs)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    data = load_data("fashion_mnist", train_samples=args.train)
    variants = [dict(_setting(kv) for kv in v.split(",")) for v in args.variant] or [
        {"min_epochs": args.min_epochs}]
    plain, wall_s = run_study("plain", data, args)
    _print_study("plain", plain, wall_s)
    for i, variant in enumerate(variants):
        name = "early-stopping" if len(variants) == 1 else f"variant-{i + 1}"
        study, wall_s = run_study(name, data, args,
                                  early_stopping={"enabled": True, **variant})
        print(f"{name}: {variant}")
        _print_study(name, study, wall_s)
        _compare(plain, study)


def _setting(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value.strip()


def _print_study(name: str, study: optuna.Study, wall_s: float) -> None:
    states = [t.state.name for t in study.trials]
    stopped = sum(1 for t in study.trials
                  if (t.user_attrs.get(ATTR_TRAINING) or {}).get("stop_reason")
                  in (STOP_ENERGY_AWARE, STOP_SUCCESSIVE_HALVING))
    print(f"{name:>15}: {len(states)} trials ({stopped} stopped early, "
          f"{states.count('PRUNED')} pruned), search energy "
          f"{sum(t.user_attrs[ATTR_ENERGY] for t in study.trials):8.1f} J, "
          f"wall {wall_s:6.1f} s")


def _compare(plain: optuna.Study, stopped: optuna.Study) -> None:
    studies = {"plain": plain, "early-stopping": stopped}
    points = {name: np.array([t.values for t in s.best_trials]) for name, s in studies.items()}
    every = np.vstack([np.array([t.values for t in s.trials if t.values is not None])
                       for s in studies.values()])
    reference = [0.0, float(every[:, 1].max() * 1.1)]  # accuracy 0; 10 % past the worst J
    volumes = {n: hypervolume(p, reference, [True, False]) for n, p in points.items()}
    energy = {n: sum(t.user_attrs[ATTR_ENERGY] for t in s.trials) for n, s in studies.items()}
    meter = studies["plain"].trials[0].user_attrs
    saved = 1 - energy["early-stopping"] / energy["plain"]
    ratio = volumes["early-stopping"] / volumes["plain"]
    kind = "estimate" if meter[ATTR_ENERGY_IS_ESTIMATE] else "measurement"
    print(f"energy meter: {meter[ATTR_METER]} ({kind})")
    print(f"search energy saved: {saved:.1%} (target >= 50 %)")
    print(f"hypervolume ratio (early stopping / plain): {ratio:.4f} (target >= 0.98)")


if __name__ == "__main__":
    main()

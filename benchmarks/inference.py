"""Measured inference energy on the quickstart: what it costs a trial, and how it ranks the
models against the ASIC and Eyeriss hardware-model estimates.

Runs studies/quickstart.toml (its meter, its model and data) with
``[energy] inference = "measured"``, timing each trial's inference measurement
(``ecotune.search.measure_inference_energy``: the untimed fit-check batch, the window, the
meter's open and close). Prints:

- the measurement's wall time against the trial's, per trial and in total, next to the
  target (under 5 % of a quickstart trial);
- Kendall's tau between the measured energy per sample and each estimate (``asic_pj``,
  ``eyeriss_rel``) over every complete trial and over the front's (accuracy, energy_j),
  and whether each estimate orders the front's models exactly as the measurement does.

    .venv/bin/python benchmarks/inference.py [--trials 16] [--storage sqlite:///bench.db]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from scipy.stats import kendalltau

import ecotune
import ecotune.search._inference as inference_module
from ecotune.report import pareto_front
from ecotune.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--storage", default=None, help="default: a temporary SQLite file")
    options = parser.parse_args()

    spec = load_spec(ROOT / "studies" / "quickstart.toml").model_dump()
    spec["energy"]["inference"] = "measured"
    spec["study"]["n_trials"] = options.trials
    spec["study"]["name"] = f"quickstart-inference-{os.getpid()}"
    tmp = tempfile.TemporaryDirectory()
    spec["study"]["storage"] = options.storage or f"sqlite:///{tmp.name}/bench.db"

    spent: list[float] = []
    measure = inference_module.measure_inference_energy

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return measure(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    inference_module.measure_inference_energy = timed
    study = ecotune.run(spec)
    trials = [t for t in study.trials if t.state.name == "COMPLETE"
              and "measured" in t.user_attrs.get("inference", {})]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    shares = [s / d for s, d in zip(spent, durations)]
    m0 = trials[0].user_attrs["inference"]["measured"]
    batches = sorted({t.user_attrs["inference"]["measured"]["batches"] for t in trials})
    print(f"meter: {m0['meter']} ({'estimate' if m0['is_estimate'] else 'measurement'}), "
          f"device {m0['device']}, batch {m0['batch_size']}, batches run: {batches}")
    if len(spent) != len(trials):
        print(f"warning: {len(spent)} measurements for {len(trials)} trials")
    print(f"trials: {len(trials)}; trial wall time median {statistics.median(durations):.2f} s")
    print(f"inference measurement: median {1000 * statistics.median(spent):.0f} ms, "
          f"max {1000 * max(spent):.0f} ms; share of its trial: median "
          f"{100 * statistics.median(shares):.1f} %, max {100 * max(shares):.1f} % "
          f"(target: under 5 %); of all trials' time {100 * sum(spent) / sum(durations):.1f} %")

    front = set(pareto_front(study)["trial"])
    for label, group in (("all trials", trials),
                         ("front", [t for t in trials if t.number in front])):
        measured = [t.user_attrs["inference"]["measured"]["energy_per_sample_j"]
                    for t in group]
        print(f"{label} ({len(group)}):")
        for key in ("asic_pj", "eyeriss_rel"):
            estimate = [t.user_attrs["inference"][key] for t in group]
            tau = kendalltau(measured, estimate).statistic if len(group) > 1 else float("nan")
            same = _order(measured) == _order(estimate)
            print(f"  measured vs {key}: Kendall tau {tau:+.2f}; same order: {same}")
    print("front, by measured J/sample: " + ", ".join(
        f"#{t.number} {t.user_attrs['inference']['measured']['energy_per_sample_j']:.2e} J "
        f"/ {t.user_attrs['inference']['asic_pj']:.3g} pJ / "
        f"{t.user_attrs['inference']['eyeriss_rel']:.3g} rel"
        for t in sorted((t for t in trials if t.number in front),
                        key=lambda t: t.user_attrs["inference"]["measured"]
                        ["energy_per_sample_j"])))


def _order(values: list[float]) -> list[int]:
    return sorted(range(len(values)), key=values.__getitem__)


if __name__ == "__main__":
    main()

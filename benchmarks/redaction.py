"""What reading a study through the password-hiding view costs (``ecotune report`` and
``ecotune dashboard`` read storage through ``RedactedStorage``).

A study of N trials, each with the attributes an ecotune trial records (energy figures, a
per-epoch learning curve, inference estimates), in a SQLite file: the time to read every
trial directly and through the view, alternated, median of several rounds, and their
ratio. One trial in 100 holds a failure reason quoting a URL with a password, so the view
also does its copying work.

    PYTHONPATH=. .venv/bin/python benchmarks/redaction.py [--trials 1000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from ecotune.storage import RedactedStorage, open_storage


def _attrs(number: int, epochs: int) -> dict:
    attrs = {
        "energy_j": 12.5 + number, "energy_method": "codecarbon", "energy_is_estimate": True,
        "energy_details": {"cpu_j": 3.0, "ram_j": 9.5, "gpu_j": None, "scope": "process"},
        "training": {"epochs_run": epochs, "stop_reason": "epochs",
                     "learning_curve": [{"epoch": e, "accuracy": 0.5 + e / 100,
                                         "energy_j": 1.0 * e} for e in range(epochs)]},
        "inference": {"asic_pj": 1.2e6, "gpu_pj": 3.4e6, "weight_sparsity": 0.4},
    }
    if number % 100 == 0:
        attrs["fail_reason"] = "OperationalError: postgresql://ann:s3cret@db/x refused"
    return attrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'b.db'}"
        study = optuna.create_study(storage=url, study_name="b",
                                    directions=["maximize", "minimize"])
        study.add_trials([optuna.trial.create_trial(values=[0.9, float(n)],
                                                    user_attrs=_attrs(n, args.epochs))
                          for n in range(args.trials)])
        storage = open_storage(url)
        view = RedactedStorage(storage)
        study_id = storage.get_study_id_from_name("b")
        times: dict[str, list[float]] = {"direct": [], "view": []}
        for _ in range(args.rounds):
            for name, source in (("direct", storage), ("view", view)):
                start = time.perf_counter()
                trials = source.get_all_trials(study_id, deepcopy=False)
                times[name].append(time.perf_counter() - start)
                assert len(trials) == args.trials
        direct, viewed = (statistics.median(times[k]) for k in ("direct", "view"))
        print(f"read {args.trials} trials ({args.epochs}-epoch curves), median of "
              f"{args.rounds}:")
        print(f"  direct        {direct * 1e3:8.1f} ms")
        print(f"  through view  {viewed * 1e3:8.1f} ms")
        print(f"  view / direct {viewed / direct:8.2f}x")


if __name__ == "__main__":
    main()

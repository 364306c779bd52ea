"""Workers and storage: ecotune trials per minute with 1 and 2 worker processes on
PostgreSQL and on SQLite, and the storage overhead per trial.

Run from the repository root (starts a throw-away PostgreSQL server on 127.0.0.1; needs
Debian's postgresql package and, as root, the postgres user):

    .venv/bin/python benchmarks/workers.py

Trials per minute are the trials of one ``ecotune run --workers N`` (tiny digits MLP, 2
epochs, cputime meter) divided by the time from the first trial's start to the last one's
end, read from storage: process start-up is not counted. The storage overhead is the time
per trial of ``study.optimize`` with an objective that does no work but records the same
user attributes an ecotune trial does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pg import create_database, postgres_bin, temporary_postgres  # noqa: E402

N_TRIALS = 16
STUDY = """
[study]
name = "bench"
sampler = "random"
seed = 0

[model]
name = "mlp"

[training]
epochs = 2
batch_size = 64

[energy]
meter = "cputime"

[search_space]
lr = { type = "float", low = 1e-3, high = 3e-2, log = true }
width = { type = "float", low = 0.25, high = 1.0 }
"""

#: The user attributes one ecotune trial writes (see docs/index.md), with typical values.
TRIAL_ATTRS = {
    "energy_j": 1.5, "cpu_energy_j": 0.5, "ram_energy_j": 1.0, "duration_s": 0.1,
    "co2_g": 0.0002, "energy_meter": "codecarbon", "energy_is_estimate": True,
    "energy_scope": "process",
    "energy_details": {"sources": {"cpu": "codecarbon", "ram": "codecarbon"},
                       "alternatives_j": {"cputime": 0.4}, "cpu_share": 1.0,
                       "warnings": []},
    "test_accuracy": 0.9,
    "training": {"val_accuracy": 0.9, "activation_density": 0.5, "n_params": 10_000,
                 "macs": 10_000, "epochs_run": 2, "stop_reason": None,
                 "learning_curve": [{"epoch": e, "train_loss": 0.5, "val_accuracy": 0.9,
                                     "elapsed_s": 0.05} for e in (1, 2)]},
}


def trials_per_minute(storage: str, workers: int, workdir: Path) -> float:
    study_file = workdir / "bench.toml"
    study_file.write_text(STUDY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "ecotune", "run", str(study_file), "--storage",
                    storage, "--workers", str(workers), "--n-trials", str(N_TRIALS),
                    "--no-report"], cwd=workdir, env=env, check=True, capture_output=True)
    trials = optuna.load_study(study_name="bench", storage=storage).trials
    assert len(trials) == N_TRIALS and all(t.state.name == "COMPLETE" for t in trials)
    span_s = (max(t.datetime_complete for t in trials)
              - min(t.datetime_start for t in trials)).total_seconds()
    return N_TRIALS / span_s * 60


def overhead_ms(storage: str, n_trials: int = 100) -> float:
    from ecotune.search import create_study

    study = create_study("overhead", storage=storage, sampler="random", seed=0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        w = trial.suggest_float("width", 0.25, 1.0)
        for key, value in TRIAL_ATTRS.items():
            trial.set_user_attr(key, value)
        return x, w

    study.optimize(objective, n_trials=5)  # warm up: tables, connections
    start_s = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return (time.perf_counter() - start_s) / n_trials * 1000


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    print(f"ecotune workers benchmark: {N_TRIALS} trials per run, tiny digits MLP, 2 epochs; "
          f"{os.cpu_count()} CPU(s)")
    with temporary_postgres(bin_dir) as (base, admin), \
            tempfile.TemporaryDirectory() as tmp:
        rates: dict[tuple[str, int], float] = {}
        for kind in ("postgresql", "sqlite"):
            for workers in (1, 2):
                workdir = Path(tmp) / f"{kind}-{workers}"
                workdir.mkdir()
                if kind == "postgresql":
                    create_database(admin, f"bench{workers}")
                    storage = f"{base}/bench{workers}"
                else:
                    storage = f"sqlite:///{workdir / 'bench.db'}"
                rates[kind, workers] = trials_per_minute(storage, workers, workdir)
                print(f"  {kind:10s} {workers} worker(s): {rates[kind, workers]:7.1f} "
                      "trials/min")
        for kind in ("postgresql", "sqlite"):
            print(f"  {kind:10s} 2 workers / 1 worker: "
                  f"{rates[kind, 2] / rates[kind, 1]:.2f}x")
        create_database(admin, "overhead")
        print("storage overhead per trial (trivial objective, an ecotune trial's attributes):")
        for label, storage in (("in memory", None),
                               ("sqlite", f"sqlite:///{Path(tmp) / 'overhead.db'}"),
                               ("postgresql", f"{base}/overhead")):
            print(f"  {label:10s} {overhead_ms(storage):6.1f} ms")


if __name__ == "__main__":
    main()

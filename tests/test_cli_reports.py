"""`ecotune report` and `ecotune run` as users meet them: any Optuna study, studies with
nothing to show, command-line mistakes, output into a file, and nothing stray left behind.
`ecotune report` runs as a real process; `ecotune run` into a file in-process (its real
process is test_cli.py's)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd

from tests import forkserver
from tests.conftest import run_cli, tiny_spec

State = optuna.trial.TrialState


def _plain_study(db: Path, names: list[str] | None = None,
                 states: tuple[State, ...] = ()) -> optuna.Study:
    """A study made with plain Optuna: no ecotune attribute, long parameter names."""
    study = optuna.create_study(study_name="plain", storage=f"sqlite:///{db}",
                                directions=["maximize", "minimize"])
    if names:
        study.set_metric_names(names)
    lr = optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)
    momentum = optuna.distributions.FloatDistribution(0.0, 1.0)
    for i, (value, energy) in enumerate([(0.2, 1.0), (0.9, 4.123456), (0.5, 2.0)]):
        study.add_trial(optuna.trial.create_trial(
            values=[value, energy], params={"learning_rate_of_the_optimizer": 1e-5 * 7 ** i,
                                            "momentum_of_the_optimizer": 0.123456 * (i + 1)},
            distributions={"learning_rate_of_the_optimizer": lr,
                           "momentum_of_the_optimizer": momentum}))
    for i, state in enumerate(states):
        study.add_trial(optuna.trial.create_trial(
            state=state, user_attrs={"fail_reason": f"CUDA out of memory {i}"}
            if state == State.FAIL else {}))
    return study


def _dump(db: Path) -> list[str]:
    # Every row, as SQL (opening the file may switch its journal mode: not a change of data).
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def _report(tmp_path: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess:
    # Output into a pipe, as with `ecotune report > log`, at a narrow COLUMNS.
    env = {**os.environ, "COLUMNS": str(columns)}
    return forkserver.run([sys.executable, "-m", "ecotune", "report", "--no-png", *args],
                          cwd=tmp_path, text=True, timeout=300, env=env)


def test_report_on_a_plain_optuna_study_into_a_pipe(tmp_path: Path) -> None:
    _plain_study(tmp_path / "p.db")
    result = _report(tmp_path, "--storage", "sqlite:///p.db", "--out", "r", columns=40)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    front = pd.read_csv(tmp_path / "r" / "front.csv")
    # Every column and full value, although the output is narrower than the table.
    assert "…" not in out
    for column in ("objective_0", "objective_1", "learning_rate_of_the_optimizer",
                   "momentum_of_the_optimizer"):
        assert column in out
    for _, row in front.iterrows():
        cells = [f"{row[c]:.4g}" for c in ("objective_0", "objective_1",
                                           "params_learning_rate_of_the_optimizer",
                                           "params_momentum_of_the_optimizer")]
        assert any(all(c in line for c in cells) for line in out.splitlines()), cells
    assert ("not drawn: learning curves (no per-epoch data" in out
            and len([line for line in out.splitlines() if "not drawn" in line]) == 1)
    assert f"report: {Path('r') / 'index.html'}" in out


def test_report_of_a_study_with_no_complete_trial_exits_1(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="plain", storage="sqlite:///p.db",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    for i, state in enumerate([State.PRUNED, State.FAIL, State.FAIL]):
        study.add_trial(optuna.trial.create_trial(
            state=state, user_attrs={"fail_reason": f"boom {i}"} if state == State.FAIL
            else {}))
    result = _report(tmp_path, "--storage", "sqlite:///p.db")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("study 'plain' has no complete trial to report (2 failed, 1 pruned); "
                         "first failure: trial 1: boom 1")
    assert not (tmp_path / "ecotune-report").exists()


def test_report_refuses_a_study_without_an_energy_objective(tmp_path: Path) -> None:
    _plain_study(tmp_path / "p.db", names=["accuracy", "latency_ms"])
    before = _dump(tmp_path / "p.db")
    result = _report(tmp_path, "--storage", "sqlite:///p.db")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "objectives found: accuracy (maximize), latency_ms (minimize)" in line
    assert not (tmp_path / "ecotune-report").exists()
    assert _dump(tmp_path / "p.db") == before


def test_an_unknown_color_by_lists_the_parameters(tmp_path: Path) -> None:
    _plain_study(tmp_path / "p.db", names=["accuracy", "energy_j"])
    before = _dump(tmp_path / "p.db")
    result = _report(tmp_path, "--storage", "sqlite:///p.db", "--color-by", "width")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("cannot colour by 'width': not a parameter of study 'plain'; its "
                         "parameters: learning_rate_of_the_optimizer, "
                         "momentum_of_the_optimizer")
    assert not (tmp_path / "ecotune-report").exists()
    assert _dump(tmp_path / "p.db") == before
    good = _report(tmp_path, "--storage", "sqlite:///p.db", "--color-by",
                   "momentum_of_the_optimizer")
    assert good.returncode == 0, good.stderr


def test_run_help_lists_the_sampler_names() -> None:
    from ecotune.spec import SAMPLERS

    result = run_cli("run", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps the help text
    assert f"one of {', '.join(SAMPLERS)}" in text


def test_the_stored_spec_holds_only_the_fields_of_its_data_set() -> None:
    from ecotune.names import STUDY_ATTR_SPEC
    from ecotune.search import prepare

    _, study = prepare(tiny_spec("digits-spec", storage="sqlite:///s.db"))
    data = study.user_attrs[STUDY_ATTR_SPEC]["data"]
    assert data["name"] == "digits" and "test_fraction" in data
    assert not {"image_shape", "n_samples", "n_classes", "root", "download"} & set(data)
    fake = tiny_spec("fake-spec", storage="sqlite:///s.db")
    fake["data"] = {"name": "fake", "image_shape": [1, 8, 8]}
    _, study = prepare(fake)
    assert study.user_attrs[STUDY_ATTR_SPEC]["data"]["image_shape"] == [1, 8, 8]


def test_the_artifact_folder_is_made_at_the_first_upload(tmp_path: Path) -> None:
    from optuna.artifacts import upload_artifact

    from ecotune.cli._dashboard import _lazy_artifact_store

    store = _lazy_artifact_store(tmp_path / "artifacts")
    assert not (tmp_path / "artifacts").exists()
    study = optuna.create_study()
    trial = study.ask()
    (tmp_path / "note.txt").write_text("hello")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(tmp_path / "note.txt"),
                                  study_or_trial=trial)
    assert (tmp_path / "artifacts" / artifact_id).read_text() == "hello"


def test_run_into_a_file_keeps_every_column(tmp_path: Path, capsys, monkeypatch) -> None:
    """In-process, output into a file-like capture, not a terminal, at 40 COLUMNS (the
    same main() as `ecotune run > log`; test_cli.py runs `ecotune run` as a process)."""
    from ecotune.cli import main

    (tmp_path / "s.toml").write_text(
        '[study]\nname = "wide"\nn_trials = 3\nsampler = "random"\nseed = 0\n'
        '[model]\nname = "mlp"\n[training]\nepochs = 1\n[energy]\nmeter = "cputime"\n'
        '[search_space]\nlr = { type = "float", low = 1e-4, high = 3e-2, log = true }\n'
        'eat_lambda = { type = "float", low = 0.0, high = 2.0 }\n'
        'weight_decay = { type = "float", low = 1e-6, high = 1e-2, log = true }\n')
    monkeypatch.setenv("COLUMNS", "40")
    capsys.readouterr()
    assert main(["run", "s.toml", "--no-report"]) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="wide", storage="sqlite:///ecotune.db")
    from ecotune.report import pareto_front

    front = pareto_front(study)
    assert "…" not in out and len(front)
    assert "trial 2: accuracy=" in out  # each trial on a line of its own, not a bar
    for _, row in front.iterrows():
        cells = [f"{row[c]:.4g}" for c in ("accuracy", "energy_j", "params_lr",
                                           "params_eat_lambda", "params_weight_decay")]
        assert any(all(c in line for c in cells) for line in out.splitlines()), cells

"""Bad input: each malformed study file or command line gets one line on stderr naming the
problem, exit status 2, and creates or changes nothing in storage."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ecotune.cli import main
from tests.conftest import tiny_study_toml

STUDY = tiny_study_toml("bad", study=("n_trials = 2", 'sampler = "tpe"', "seed = 1"))

Edit = Callable[[str], str]


def _add(section: str, line: str) -> Edit:
    return lambda s: s.replace(f"[{section}]\n", f"[{section}]\n{line}\n")


CASES: list[tuple[str, Edit, list[str], str]] = [
    # (id, edit of the study file, extra arguments, text the error line must contain)
    ("n_trials-string", lambda s: s.replace("n_trials = 2", 'n_trials = "2"'), [],
     "study.n_trials"),
    ("n_trials-negative", lambda s: s.replace("n_trials = 2", "n_trials = -5"), [],
     "study.n_trials"),
    ("seed-float", lambda s: s.replace("seed = 1", "seed = 1.5"), [], "study.seed"),
    ("unknown-study-key", _add("study", "colour = 1"), [], "study.colour: unknown key"),
    ("unknown-section", lambda s: s + "\n[extra]\nx = 1\n", [], "extra: unknown key"),
    ("unknown-sampler", lambda s: s.replace('"tpe"', '"cmaes"'), [], "study.sampler.name"),
    ("unknown-dataset", lambda s: s + '\n[data]\nname = "imagenet"\n', [], "data.name"),
    ("unknown-model", lambda s: s.replace('name = "mlp"', 'name = "vgg"'), [],
     "model.name"),
    ("unknown-objective", _add("study", 'objectives = ["accuracy", "flops"]'), [],
     "study.objectives"),
    ("no-objectives", _add("study", "objectives = []"), [], "study.objectives"),
    ("unknown-knob", _add("search_space", 'depth = { type = "int", low = 1, high = 3 }'), [],
     "search_space: unknown knob 'depth'"),
    ("low-above-high", lambda s: s.replace("low = 1e-3", "low = 0.5"), [],
     "search_space.lr: low must be <= high"),
    ("log-low-zero", lambda s: s.replace("low = 1e-3", "low = 0.0"), [],
     "search_space.lr: low must be > 0"),
    ("param-type", lambda s: s.replace('type = "float"', 'type = "double"'), [],
     "search_space.lr"),
    ("empty-choices", lambda s: s.replace("choices = [0.25, 0.5]", "choices = []"), [],
     "search_space.width"),
    ("grid-empty-space", lambda s: s.replace('"tpe"', '"grid"').split("[search_space]")[0],
     [], "the grid sampler needs a non-empty search_space"),
    ("grid-float-without-values", lambda s: s.replace('"tpe"', '"grid"'), [],
     "search_space.lr: the grid sampler needs"),
    ("negative-trial-budget", lambda s: s + "\n[budgets]\ntrial_energy_j = -1\n", [],
     "budgets.trial_energy_j"),
    ("zero-study-budget", lambda s: s + "\n[budgets]\nstudy_energy_j = 0\n", [],
     "budgets.study_energy_j"),
    ("epochs-zero", lambda s: s.replace("epochs = 1", "epochs = 0"), [], "training.epochs"),
    ("bad-country", _add("energy", 'country = "XX"'), [], "energy.country"),
    ("unknown-meter", lambda s: s.replace('"cputime"', '"wattmeter"'), [], "energy.meter"),
    ("pue-below-one", _add("energy", "pue = 0.5"), [], "energy.pue"),
    ("width-knob-out-of-range", lambda s: s.replace("choices = [0.25, 0.5]",
                                                    "choices = [0.25, 99.0]"), [],
     "search_space.width: value 99.0"),
    ("not-toml", lambda s: "[study\nname=", [], "not valid TOML"),
    ("missing-name", lambda s: s.replace('name = "bad"\n', ""), [],
     "study.name: required but missing"),
    ("cli-n-trials-zero", lambda s: s, ["--n-trials", "0"], "--n-trials must be > 0"),
    ("cli-workers-zero", lambda s: s, ["--workers", "0"], "--workers must be >= 1"),
    ("cli-total-and-n", lambda s: s, ["--n-trials", "2", "--total-trials", "3"],
     "not both"),
    ("cli-total-negative", lambda s: s, ["--total-trials", "-1"], "--total-trials"),
    ("cli-bad-sampler", lambda s: s, ["--sampler", "anneal"], "study.sampler.name"),
    ("cli-storage-not-url", lambda s: s, ["--storage", "m.db"],
     "--storage 'm.db' is not a storage URL: for a SQLite file write 'sqlite:///m.db'"),
    ("file-storage-not-url", _add("study", 'storage = "m.db"'), [],
     "study.storage: 'm.db' is not a storage URL: for a SQLite file write 'sqlite:///m.db'"),
    ("cli-storage-unknown-dialect", lambda s: s, ["--storage", "nosuchdb://x"],
     "storage nosuchdb://x"),
    ("cli-storage-refused", lambda s: s,
     ["--storage", "postgresql+psycopg://u@127.0.0.1:1/db"], "storage postgresql"),
    ("cli-storage-no-dir", lambda s: s, ["--storage", "sqlite:///no/such/dir/x.db"],
     "--storage sqlite:///no/such/dir/x.db: no such directory 'no/such/dir'"),
    ("cli-journal-no-dir", lambda s: s, ["--storage", "journal:///no/such/dir/x.log"],
     "no such directory"),
    ("cli-workers-in-memory", lambda s: s,
     ["--workers", "2", "--storage", "sqlite:///:memory:"], "private to one process"),
    ("cli-study-name-empty", lambda s: s, ["--study-name", ""], "study.name"),
    ("objectives-changed", _add("study", 'objectives = ["accuracy"]'), [],
     "already exists with objectives"),
]


@pytest.fixture(scope="module")
def existing_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ecotune.db holding study "bad" (accuracy, energy_j) with one trial."""
    import optuna

    from ecotune.search import create_study

    path = tmp_path_factory.mktemp("db") / "ecotune.db"
    study = create_study("bad", storage=f"sqlite:///{path}", sampler="random")
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.01},
                                              distributions={"lr": optuna.distributions
                                                             .FloatDistribution(1e-3, 3e-2)},
                                              values=[0.5, 1.0]))
    study._storage._backend.engine.dispose()  # close it: WAL contents go to the file
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from trials").fetchone()[0] == 1
    return path


def _check_one_line_exit_2(args: list[str], message: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert message in err, err
    assert "error" in err


@pytest.mark.parametrize(("edit", "args", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(edit: Edit, args: list[str], message: str, tmp_path: Path,
                   existing_db: Path, capsys) -> None:
    study_file = tmp_path / "bad.toml"
    study_file.write_text(edit(STUDY))
    if "already exists" not in message:
        # A fresh directory: nothing appears in it.
        _check_one_line_exit_2(["run", str(study_file), *args], message, capsys)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
    # Beside an existing database: it stays byte-identical.
    shutil.copy(existing_db, tmp_path / "ecotune.db")
    before = (tmp_path / "ecotune.db").read_bytes()
    _check_one_line_exit_2(["run", str(study_file), *args], message, capsys)
    assert (tmp_path / "ecotune.db").read_bytes() == before
    assert not (tmp_path / "ecotune-report").exists()


def test_a_directory_as_study_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "dir.toml").mkdir()
    _check_one_line_exit_2(["run", "dir.toml"], "cannot read the study file", capsys)


def test_an_error_prints_brackets_as_written(tmp_path: Path, capsys) -> None:
    """A message naming a study-file section, e.g. ``[energy]``, is not eaten as rich
    markup: the file name here carries one."""
    (tmp_path / "[energy] x.toml").mkdir()
    _check_one_line_exit_2(["run", "[energy] x.toml"], "[energy] x.toml", capsys)


def test_a_study_file_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    (tmp_path / "latin1.toml").write_bytes(STUDY.replace("bad", "b\xe9").encode("latin-1"))
    _check_one_line_exit_2(["run", "latin1.toml"], "not UTF-8", capsys)
    assert not (tmp_path / "ecotune.db").exists()


def test_bad_heartbeat_setting(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    monkeypatch.setenv("ECOTUNE_HEARTBEAT_S", "soon")
    _check_one_line_exit_2(["run", "s.toml"], "ECOTUNE_HEARTBEAT_S", capsys)
    assert not (tmp_path / "ecotune.db").exists()


@pytest.mark.parametrize("command", [["run", "s.toml"], ["report"], ["dashboard"],
                                     ["compare", "s.toml", "--n-trials", "1"]])
@pytest.mark.parametrize("via", ["--storage", "ECOTUNE_STORAGE"])
@pytest.mark.parametrize(("url", "message"), [
    ("m.db", "'m.db' is not a storage URL: for a SQLite file write 'sqlite:///m.db'"),
    ("sqlite:///no/dir/m.db", "sqlite:///no/dir/m.db: no such directory 'no/dir'"),
    ("journal:///no/dir/m.log", "journal:///no/dir/m.log: no such directory 'no/dir'"),
])
def test_storage_url_mistakes_name_the_fix(command: list[str], via: str, url: str,
                                           message: str, tmp_path: Path, monkeypatch,
                                           capsys) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    monkeypatch.delenv("ECOTUNE_STORAGE", raising=False)
    args = ["--storage", url]
    if via == "ECOTUNE_STORAGE":
        monkeypatch.setenv("ECOTUNE_STORAGE", url)
        args = []
    _check_one_line_exit_2([*command, *args], f"{via} {message}", capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_unknown_command_line_option_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "x.toml", "--frobnicate"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("reference", "message"), [
    ("0.0", "expected 2 finite numbers"),
    ("0,1,2", "expected 2 finite numbers"),
    ("0,inf", "expected 2 finite numbers"),
    ("zero,1", "expected numbers separated by commas"),
])
def test_report_with_a_bad_reference_point(reference: str, message: str, tmp_path: Path,
                                           existing_db: Path, capsys) -> None:
    shutil.copy(existing_db, tmp_path / "ecotune.db")
    before = (tmp_path / "ecotune.db").read_bytes()
    _check_one_line_exit_2(["report", "--no-png", "--reference", reference],
                           f"--reference {reference!r}: {message}", capsys)
    assert (tmp_path / "ecotune.db").read_bytes() == before
    assert not (tmp_path / "ecotune-report").exists()


def test_report_with_a_reference_point(tmp_path: Path, existing_db: Path) -> None:
    import pandas as pd

    shutil.copy(existing_db, tmp_path / "ecotune.db")  # one trial: accuracy 0.5, 1.0 J
    assert main(["report", "--no-png", "--reference", "0.25,3", "--out", "r"]) == 0
    history = pd.read_csv(tmp_path / "r" / "hypervolume.csv")
    assert history["hypervolume"].tolist() == pytest.approx([(0.5 - 0.25) * (3 - 1.0)])

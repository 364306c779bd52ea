"""The `ecotune` command, run as a real process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import tomllib

from ecotune.cli import main
from tests.conftest import require_component, run_cli

STUDY = """
[study]
name = "cli"
n_trials = 3
sampler = "tpe"
seed = 1

[model]
name = "mlp"

[training]
epochs = 2

[energy]
meter = "codecarbon"  # always an estimate (RAM is modelled), on any machine

[search_space]
lr = { type = "float", low = 1e-3, high = 3e-2, log = true }
width = { type = "categorical", choices = [0.25, 0.5] }
"""


def _trial_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from trials").fetchone()[0]


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(STUDY)
    return path


@pytest.mark.slow
def test_run_writes_database_and_report_then_adds_trials(tmp_path: Path, study_file: Path,
                                                         capsys) -> None:
    first = run_cli("run", str(study_file), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    db = tmp_path / "ecotune.db"
    assert _trial_count(db) == 3
    assert "Pareto front of cli" in first.stdout and "estimate, codecarbon" in first.stdout
    report = tmp_path / "ecotune-report" / "cli"
    front_csv = pd.read_csv(report / "front.csv")
    front_json = json.loads((report / "front.json").read_text())
    assert front_json["objectives"] == {"accuracy": "maximize", "energy_j": "minimize"}
    assert front_json["energy"] == "estimate, codecarbon"
    assert sorted(r["trial"] for r in front_json["front"]) == sorted(front_csv["trial"])
    assert {"accuracy", "energy_j", "params_lr", "energy_meter"} <= set(front_csv.columns)
    # One copy of plotly.js beside the pages, loaded from there: they work offline.
    assert len((report / "plotly.min.js").read_bytes()) > 1_000_000
    for page in ("pareto.html", "index.html"):
        html = (report / page).read_text()
        assert 'src="plotly.min.js"' in html and len(html) < 200_000
        assert "<script src=\"http" not in html  # no script fetched from a CDN

    # The rest in-process: the same main() a process runs, without a process start each.
    capsys.readouterr()
    assert main(["run", str(study_file), "--n-trials", "2", "--no-report"]) == 0
    assert "3 trial(s) stored, adding 2" in capsys.readouterr().out
    assert _trial_count(db) == 5
    # The first run's report exported PNGs through a real browser (its default where one
    # is present; under CI=true, a missing one fails here).
    from ecotune.report import png_export_available

    require_component(png_export_available(), "Chromium for PNG export")
    png = report / "pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_run_overrides_storage_and_name(tmp_path: Path, study_file: Path) -> None:
    assert main(["run", str(study_file), "--storage", "sqlite:///other.db",
                 "--study-name", "renamed", "--n-trials", "1", "--sampler", "random",
                 "--out", "rep", "--no-report"]) == 0
    assert _trial_count(tmp_path / "other.db") == 1
    assert not (tmp_path / "ecotune.db").exists() and not (tmp_path / "rep").exists()


# One study-file mistake and one command-line mistake in a real process: its exit status
# and stderr as a shell sees them. The other cases run in-process in test_bad_input.py
# (the same main(), without a process start each).
@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (lambda s: s.replace("low = 1e-3", "low = 0.0"), [], "search_space.lr: low must be > 0"),
        (lambda s: s, ["--storage", "sqlite:///no/such/dir/x.db"],
         "no such directory 'no/such/dir'"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(tmp_path: Path, study_file: Path, edit, args,
                                               message: str) -> None:
    study_file.write_text(edit(STUDY))
    result = run_cli("run", str(study_file), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not (tmp_path / "ecotune.db").exists()
    assert not (tmp_path / "ecotune-report").exists()


def test_missing_study_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("run", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and "cannot read the study file" in result.stderr


def test_bad_input_leaves_an_existing_study_unchanged(tmp_path: Path, study_file: Path,
                                                      capsys) -> None:
    assert main(["run", str(study_file), "--n-trials", "1", "--no-report"]) == 0
    db = tmp_path / "ecotune.db"
    before = db.read_bytes()
    changed = STUDY.replace('objectives', 'x') + '\n'
    study_file.write_text(changed.replace("[study]", '[study]\nobjectives = ["accuracy"]'))
    capsys.readouterr()
    assert main(["run", str(study_file)]) == 2
    assert "already exists with objectives" in capsys.readouterr().err
    assert db.read_bytes() == before


@pytest.mark.slow
def test_report_command(tmp_path: Path, study_file: Path, capsys) -> None:
    assert main(["run", str(study_file), "--no-report"]) == 0
    # The report in a real process; the other cases in-process (the same main()).
    result = run_cli("report", "--storage", "sqlite:///ecotune.db", "--study-name", "cli",
                     "--out", "out", "--no-png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "pareto.html", "front.csv", "front.json", "hypervolume.csv", "hypervolume.html",
        "learning_curves.html", "parameters.html", "energy_profile.csv",
        "energy_profile_by_type.csv", "index.html", "plotly.min.js"}
    profile = pd.read_csv(tmp_path / "out" / "energy_profile_by_type.csv")
    assert set(profile["type"]) == {"Linear"}  # the mlp: three Linear layers, all costed
    assert profile.groupby("trial")["share"].sum().round(6).eq(1.0).all()
    # Without --study-name, the only study is used; a missing database is not created.
    capsys.readouterr()
    assert main(["report", "--no-png"]) == 0
    assert "Pareto front of cli" in capsys.readouterr().out
    assert main(["report", "--storage", "sqlite:///missing.db"]) == 2
    assert "no such database file" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    assert main(["report", "--study-name", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_quickstart_study_file_is_valid() -> None:
    from ecotune import load_spec

    root = Path(__file__).resolve().parents[1]
    for path in (root / "studies").glob("*.toml"):
        tomllib.loads(path.read_text())
        load_spec(path)


def test_python_dash_m_and_help() -> None:
    """A new interpreter each (the other CLI tests' processes are forked from one that
    imported torch and friends already: tests/forkserver.py)."""
    result = run_cli("--help", fresh=True)
    assert result.returncode == 0 and "run" in result.stdout and "report" in result.stdout
    assert run_cli("frobnicate", fresh=True).returncode == 2

"""Security: user-supplied names stay inside the output directory; nothing unpickles
data read from storage."""

from __future__ import annotations

import re
from pathlib import Path

from ecotune.cli import main
from ecotune.report import safe_name
from tests.conftest import tiny_study_toml

STUDY = tiny_study_toml("sec", study=("n_trials = 1", 'sampler = "random"'),
                        search_space=False)


def test_study_name_cannot_escape_the_report_directory(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "s.toml").write_text(STUDY)
    import os

    os.chdir(work)
    assert main(["run", "s.toml", "--study-name", "../../x"]) == 0
    reports = [p for p in (work / "ecotune-report").iterdir()]
    assert [p.name for p in reports] == [safe_name("../../x")]
    assert (reports[0] / "front.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # nothing above
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_safe_name_is_one_path_component() -> None:
    for name in ["../../x", "/etc/passwd", "..", ".", "a/../../b", "C:\\x", "\x00", ""]:
        cleaned = safe_name(name)
        assert "/" not in cleaned and "\\" not in cleaned and cleaned not in ("", ".", "..")


def test_nothing_unpickles_data_from_storage() -> None:
    # The only pickle reader is the CIFAR-10 loader, on files the user placed; Optuna's
    # RDB and journal storages hold JSON. Any new use of pickle must be looked at.
    root = Path(__file__).resolve().parents[1] / "ecotune"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if re.search(r"\b(pickle|cloudpickle|dill|joblib)\b", p.read_text()))
    assert users == ["data/_vision.py"]

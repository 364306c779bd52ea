"""Storage credentials never leave the command (issue 15).

A password in a storage URL appears in no output, stored attribute, report file,
dashboard response, error message or worker command line, whether the URL comes from
``--storage`` or ``ECOTUNE_STORAGE``; studies stored before passwords were hidden are not
shown with theirs and are rewritten by the next run; PostgreSQL's ``PGPASSWORD`` and
``~/.pgpass`` supply the password of a password-less URL.

Against real PostgreSQL servers: the session's (trust authentication accepts any
password, so a URL can carry one as a team's would) and, for the password-only checks, a
server of this module's own that requires one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from ecotune.cli import main
from tests import forkserver
from tests.conftest import free_port, get_json, run_cli, tiny_spec, tiny_study_toml

SECRET = "Xq7-pw-never-shown"
STUDY = tiny_study_toml("cred", study=("n_trials = 2", 'sampler = "random"', "seed = 0"))


def _with_password(url: str, password: str = SECRET) -> str:
    return url.replace("://postgres@", f"://postgres:{password}@", 1)


def _stored_text(url: str, trials: bool = True) -> str:
    """Every study's (and trial's) user and system attributes in ``url``, as one text."""
    storage = optuna.storages.RDBStorage(url)
    parts = []
    for study in storage.get_all_studies():
        parts.append(json.dumps([study.user_attrs, study.system_attrs], default=str))
        if trials:
            parts += [json.dumps([t.user_attrs, t.system_attrs], default=str)
                      for t in storage.get_all_trials(study._study_id)]
    storage.engine.dispose()
    return "\n".join(parts)


def _assert_no_secret_in_files(folder: Path) -> int:
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    return len(files)


def _run_watching_workers(args: list[str], cwd: Path, env: dict
                          ) -> tuple[subprocess.CompletedProcess, dict[int, str], str]:
    """``python -m ecotune ARGS`` (with ``--workers``) in a real process; while it runs,
    the command lines of its descendants until a spawned worker is seen (its command line
    names multiprocessing's spawn_main) and then ``ps`` of every process."""
    run = forkserver.start([sys.executable, "-m", "ecotune", *args], cwd=cwd, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, str] = {}
    ps = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            seen.update((p, _command_line(p)) for p in _descendants(run.pid))
            if any("spawn_main" in line for line in seen.values()):
                ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                                    text=True).stdout
                break
            time.sleep(0.05)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    return subprocess.CompletedProcess(run.args, run.returncode, out, err), seen, ps


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_password_is_in_no_output_attribute_report_file_or_worker_command_line(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Each command with the URL from each source: `run` given ``--storage`` (with two
    workers, whose command lines are read while they run) and `report` given
    ``ECOTUNE_STORAGE`` in real processes (their output as a shell sees it), the other two
    pairs in-process (the same main(); output captured at the file descriptors)."""
    url = _with_password(postgres_url)
    (tmp_path / "cred.toml").write_text(STUDY)
    monkeypatch.delenv("ECOTUNE_STORAGE", raising=False)
    run, seen, ps = _run_watching_workers(
        ["run", "cred.toml", "--storage", url, "--workers", "2", "--n-trials", "4",
         "--out", "run-report"], cwd=tmp_path, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert any("spawn_main" in line for line in seen.values()), seen
    for text in (*seen.values(), ps):
        assert SECRET not in text
    assert "2 workers" in run.stdout
    # The URL is shown, password hidden, and where it came from when the variable is set.
    assert "postgres:***@127.0.0.1" in run.stdout
    assert "(from ECOTUNE_STORAGE)" not in run.stdout
    monkeypatch.setenv("ECOTUNE_STORAGE", url)
    report = run_cli("report", "--out", "report", "--no-png", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "(from ECOTUNE_STORAGE)" in report.stdout
    texts = [run.stdout, run.stderr, report.stdout, report.stderr]

    capfd.readouterr()
    assert main(["run", "cred.toml", "--n-trials", "1", "--out", "env-run-report"]) == 0
    env_run = capfd.readouterr()
    assert "postgres:***@127.0.0.1" in env_run.out and "(from ECOTUNE_STORAGE)" in env_run.out
    monkeypatch.delenv("ECOTUNE_STORAGE")
    assert main(["report", "--storage", url, "--out", "arg-report", "--no-png"]) == 0
    arg_report = capfd.readouterr()
    assert "Pareto front of cred" in arg_report.out
    for text in (*texts, env_run.out, env_run.err, arg_report.out, arg_report.err):
        assert SECRET not in text
    stored = _stored_text(postgres_url)  # trust authentication: no password needed to look
    assert "ecotune.spec" in stored and "postgres:***@127.0.0.1" in stored
    assert SECRET not in stored
    for folder in ("run-report", "report", "env-run-report", "arg-report"):
        assert _assert_no_secret_in_files(tmp_path / folder) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arg-report", "cred.toml", "env-run-report", "report", "run-report"]


@pytest.fixture(params=["--storage", "ECOTUNE_STORAGE"])
def storage_args(request, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Command-line arguments that reach a PostgreSQL database with a password in its URL,
    given by ``--storage`` or by ``ECOTUNE_STORAGE`` (then no argument at all)."""
    if request.param == "ECOTUNE_STORAGE":
        monkeypatch.setenv("ECOTUNE_STORAGE", _with_password(postgres_url))
        return []
    monkeypatch.delenv("ECOTUNE_STORAGE", raising=False)
    return ["--storage", _with_password(postgres_url)]


@pytest.fixture
def old_study(postgres_url: str) -> str:
    """A study as ecotune stored it before passwords were hidden: ``ecotune.spec`` holds
    the URL with its password, and a failed trial's reason quotes it. Returns its name."""
    from ecotune.names import STUDY_ATTR_SPEC
    from ecotune.search import prepare

    spec, study = prepare(tiny_spec("old", storage=postgres_url))
    data = spec.model_dump(mode="json")
    data["study"]["storage"] = _with_password(postgres_url)
    study.set_user_attr(STUDY_ATTR_SPEC, data)
    for accuracy, energy_j in [(0.5, 1.0), (0.8, 3.0)]:
        study.add_trial(optuna.trial.create_trial(values=[accuracy, energy_j],
                                                  user_attrs={"energy_j": energy_j}))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"fail_reason": f"OperationalError: {_with_password(postgres_url)}"}))
    assert SECRET in _stored_text(postgres_url)
    return "old"


def _wait_for_dashboard(server: subprocess.Popen, base: str) -> dict:
    deadline = time.monotonic() + 60  # a loaded 2-core machine starts it slowly
    while time.monotonic() < deadline:
        try:
            return get_json(f"{base}/api/studies")
        except OSError:
            assert server.poll() is None, server.communicate()
            time.sleep(0.1)
    raise AssertionError("the dashboard did not answer within 60 s")


def test_dashboard_does_not_show_a_stored_password(storage_args: list[str], old_study: str,
                                                   tmp_path: Path) -> None:
    port = free_port()
    server = forkserver.start(
        [sys.executable, "-m", "ecotune", "dashboard", *storage_args, "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        studies = _wait_for_dashboard(server, base)
        [summary] = studies["study_summaries"]
        assert summary["study_name"] == old_study
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert "postgres:***@127.0.0.1" in attrs["ecotune.spec"]  # shown, password hidden
    reasons = [a["value"] for t in detail["trials"] for a in t["user_attrs"]
               if a["key"] == "fail_reason"]
    assert reasons and all("postgres:***@" in r for r in reasons)
    for text in (json.dumps(studies), json.dumps(detail), out, err):
        assert SECRET not in text
    assert "postgres:***@127.0.0.1" in out


def test_report_hides_and_run_rewrites_a_stored_password(old_study: str, postgres_url: str,
                                                          tmp_path: Path, capfd) -> None:
    """In-process (the same main() as the commands; output captured at the descriptors):
    what a real process prints is the test above's."""
    url = _with_password(postgres_url)
    capfd.readouterr()
    assert main(["report", "--storage", url, "--out", "report", "--no-png"]) == 0
    report = capfd.readouterr()
    assert "Pareto front of old" in report.out
    assert SECRET not in report.out + report.err
    assert _assert_no_secret_in_files(tmp_path / "report") > 0
    assert SECRET in _stored_text(postgres_url, trials=False)  # a report only reads

    (tmp_path / "old.toml").write_text(
        tiny_study_toml("old", study=("n_trials = 1", 'sampler = "random"')))
    assert main(["run", "old.toml", "--storage", url, "--no-report"]) == 0
    run = capfd.readouterr()
    assert "adding 1" in run.out
    assert SECRET not in run.out + run.err
    study = optuna.load_study(study_name=old_study, storage=postgres_url)
    assert study.user_attrs["ecotune.spec"]["study"]["storage"] == url.replace(SECRET, "***")
    assert SECRET not in _stored_text(postgres_url, trials=False)
    assert len(study.trials) == 4


@pytest.mark.parametrize("via", ["--storage", "ECOTUNE_STORAGE"])
@pytest.mark.parametrize("command", ["run", "report", "dashboard"])
def test_a_refused_connection_names_no_password(command: str, via: str, tmp_path: Path,
                                                capsys, monkeypatch) -> None:
    url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{free_port()}/ecotune"
    monkeypatch.delenv("ECOTUNE_STORAGE", raising=False)
    args = ["--storage", url]
    if via == "ECOTUNE_STORAGE":
        monkeypatch.setenv("ECOTUNE_STORAGE", url)
        args = []
    (tmp_path / "cred.toml").write_text(STUDY)
    argv = {"run": ["run", "cred.toml"], "report": ["report"],
            "dashboard": ["dashboard", "--port", str(free_port())]}[command]
    assert main([*argv, *args]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert "Connection refused" in err and "postgres:***@127.0.0.1" in err
    assert SECRET not in out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cred.toml"]


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        todo += children
    return found


def _command_line(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                + " " + Path(f"/proc/{pid}/comm").read_text())
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------
# A server that requires the password: PGPASSWORD and ~/.pgpass with a password-less URL.


@pytest.fixture(scope="module")
def password_url() -> str:
    """A database on a server of its own that requires user postgres's password (SECRET);
    the URL holds no password."""
    from tests.pg import create_database, postgres_bin, temporary_postgres

    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; .ci/setup test installs it under CI")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with temporary_postgres(bin_dir, password=SECRET) as (base, admin):
        create_database(admin, "auth")
        yield f"{base}/auth"


@pytest.fixture
def no_password_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No PGPASSWORD, no PGPASSFILE, and a home of this test's own (no ~/.pgpass yet)."""
    for name in ("PGPASSWORD", "PGPASSFILE", "ECOTUNE_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_password_server_refuses_without_it_or_with_a_wrong_one(
        password_url: str, no_password_source: Path, capsys) -> None:
    (no_password_source / "cred.toml").write_text(STUDY)
    assert main(["run", "cred.toml", "--storage", password_url]) == 2
    assert "no password supplied" in capsys.readouterr().err
    wrong = "Wr0ng-pw-also-hidden"
    assert main(["report", "--storage", _with_password(password_url, wrong)]) == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err and wrong not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_pgpassword_and_pgpass_supply_the_password(password_url: str,
                                                   no_password_source: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capfd) -> None:
    """In-process commands (output captured at the descriptors); the run's two workers are
    real processes, spawned with this environment."""
    home = no_password_source
    (home / "cred.toml").write_text(STUDY)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    # Workers inherit the variable: they connect too.
    capfd.readouterr()
    assert main(["run", "cred.toml", "--storage", password_url, "--workers", "2",
                 "--no-report"]) == 0
    run = capfd.readouterr()
    assert "2 workers" in run.out and "adding 2" in run.out
    assert SECRET not in run.out + run.err
    study = optuna.load_study(study_name="cred", storage=password_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    monkeypatch.delenv("PGPASSWORD")
    port = password_url.rsplit(":", 1)[1].split("/")[0]
    pgpass = home / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{port}:*:postgres:{SECRET}\n")
    pgpass.chmod(0o600)  # libpq ignores a .pgpass others can read
    assert main(["report", "--storage", password_url, "--out", "report", "--no-png"]) == 0
    report = capfd.readouterr()
    assert SECRET not in report.out + report.err
    assert "Pareto front of cred" in report.out

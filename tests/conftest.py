"""Shared fixtures: every test runs in its own working directory, so the default
``sqlite:///ecotune.db`` and report directory never touch the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_spec(name: str = "tiny", **study: object) -> dict:
    """A digits study that trains in well under a second per trial."""
    return {
        "study": {"name": name, "n_trials": 3, "sampler": "random", "seed": 0, **study},
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "training": {"epochs": 2, "batch_size": 128},
        "search_space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "width": {"type": "categorical", "choices": [0.25, 0.5]},
        },
    }


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ecotune ARGS`` in a real process."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ecotune", *args], cwd=cwd,
                           capture_output=True, text=True, timeout=300, env=env)


def _postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries (initdb, pg_ctl), or None."""
    import glob
    import shutil

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of its own on 127.0.0.1 for the session: yields
    ``(base URL without database, psycopg connection string of the postgres database)``.

    Skips where PostgreSQL is not installed, except under CI=true, where it fails: CI's
    set-up (.ci/setup test) installs it.
    """
    import shutil
    import tempfile
    import time

    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; .ci/setup test installs it under CI")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="ecotune-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as postgres
        shutil.chown(root, "postgres")
        root.chmod(0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        import psycopg

        admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        for _ in range(50):
            try:
                psycopg.connect(admin).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}", admin
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh, empty database on the session's PostgreSQL server, as a storage URL."""
    import re

    import psycopg

    base, admin = postgres_server
    name = "t_" + re.sub(r"\W", "_", request.node.name)[:50].lower()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"

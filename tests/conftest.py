"""Shared fixtures: every test runs in its own working directory, so the default
``sqlite:///ecotune.db`` and report directory never touch the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# One thread per BLAS/OpenMP pool (numpy's OpenBLAS under scikit-learn's GPs, torch in
# the own-loop tests) in the processes this one starts: the -n 2 workers (.ci/test) and
# the commands they run. Two workers on two cores, each with pools of two threads, spin on
# a core the other holds: test_cost_model's GP tests took 27-29 CPU-s so and 8-10 without.
# (The pools size themselves when their library loads; in this process, hypothesis's
# plugin has loaded numpy already.) Tests that set a thread count (training's `threads`)
# still get theirs.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first, so that the two workers of ``-n 2`` (pytest-xdist
    hands tests out in this order) end together instead of one finishing a long test alone
    while the other idles. Tests marked ``gpu`` skip on a machine without a CUDA GPU (CI's):
    the only skips besides CI's real components."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: in order
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    # Each test's GPU ledgers (ecotune.energy._ledger) of its own: fake GPUs of tests
    # running at once share UUIDs, and their counters nothing else.
    monkeypatch.setenv("ECOTUNE_GPU_LEDGER_DIR", str(tmp_path / "gpu-ledger"))
    yield tmp_path
    # A test that put a fake pynvml in place leaves no probe or meter made from it behind:
    # the next test on this worker must see this machine's real NVML (monkeypatch puts
    # pynvml back right after this; the cached probe and meters are ecotune's).
    from tests import fake_nvml

    if fake_nvml.used:
        from ecotune.energy import get_meter, nvml_status

        nvml_status.cache_clear()
        get_meter.cache_clear()
        fake_nvml.used = False


def require_component(available: bool, what: str) -> None:
    """A test that needs a real component (a browser, a package, a data set): skipped
    where it is missing, but under ``CI=true`` a failure, since CI's set-up installs it."""
    if not available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must install {what} (.ci/setup does)")
        pytest.skip(f"{what} is not installed (CI installs it)")


def has_energy_counters() -> bool:
    """Whether this machine has RAPL or NVML counters (tests assert behaviour on both)."""
    from ecotune.energy import meter_status

    return meter_status("rapl").available or meter_status("nvml").available


def auto_meter_name() -> str:
    """The backend ``meter = "auto"`` picks on this machine (codecarbon without counters)."""
    from ecotune.energy import get_meter

    return get_meter("auto").name


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


TINY_SEARCH_SPACE = """
[search_space]
lr = { type = "float", low = 1e-3, high = 3e-2, log = true }
width = { type = "categorical", choices = [0.25, 0.5] }
"""


def tiny_study_toml(name: str, study: tuple[str, ...] = (),
                    training: tuple[str, ...] = ("epochs = 1",),
                    search_space: bool = True) -> str:
    """A tiny digits study file (mlp, cputime meter) as TOML text, for CLI tests.

    ``study`` and ``training`` are extra lines of those sections, in order.
    """
    lines = ["[study]", f'name = "{name}"', *study, "", "[model]", 'name = "mlp"', "",
             "[training]", *training, "", "[energy]", 'meter = "cputime"']
    return "\n".join(lines) + "\n" + (TINY_SEARCH_SPACE if search_space else "")


def run_cli(*args: str, cwd: Path | None = None, fresh: bool = False
            ) -> subprocess.CompletedProcess:
    """Run ``python -m ecotune ARGS`` in a real process: forked from tests/forkserver.py's
    interpreter with the heavy third-party packages imported (every ecotune module imports
    afresh in it), or with ``fresh``, a new interpreter (a test of its start)."""
    from tests import forkserver

    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "ecotune", *args]
    if fresh:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                              env=env)
    return forkserver.run(command, cwd=cwd, text=True, timeout=300, env=env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    """GET a JSON API as a browser would (optuna-dashboard needs ``Accept-Encoding``)."""
    import gzip
    import json
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return json.loads(body)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of its own on 127.0.0.1 for the session (see tests/pg.py).

    Skips where PostgreSQL is not installed, except under CI=true, where it fails: CI's
    set-up (.ci/setup test) installs it.
    """
    from tests.pg import postgres_bin, temporary_postgres

    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; .ci/setup test installs it under CI")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with temporary_postgres(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh, empty database on the session's PostgreSQL server, as a storage URL."""
    import hashlib
    import re

    from tests.pg import create_database

    base, admin = postgres_server
    # PostgreSQL names stop at 63 bytes: a short digest keeps long parametrized ids apart.
    digest = hashlib.sha1(request.node.name.encode()).hexdigest()[:8]
    name = "t_" + re.sub(r"\W", "_", request.node.name)[:40].lower() + "_" + digest
    create_database(admin, name)
    return f"{base}/{name}"


@pytest.fixture
def new_york() -> Iterator[None]:
    """Local time other than UTC: Optuna stores naive UTC times and reads them back as
    local time, so a read that skips its conversion shows up here."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()

"""A PostgreSQL server of its own, on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries (initdb, pg_ctl), or None."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def temporary_postgres(bin_dir: Path, password: str | None = None) -> Iterator[tuple[str, str]]:
    """Start a throw-away server (initdb in a temporary directory, loopback only); yield
    ``(storage URL without a database, psycopg connection string of the postgres
    database)``; stop it and delete its files at the end.

    Without ``password`` the server trusts every connection (any password is accepted);
    with one, user ``postgres`` must give it (scram-sha-256). The storage URL never holds
    it; the admin connection string does."""
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="ecotune-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as postgres
        shutil.chown(root, "postgres")
        root.chmod(0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    auth = ["-A", "trust"]
    if password is not None:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if prefix:
            shutil.chown(pwfile, "postgres")
        auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
    try:
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), *auth,
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(root / "log"), "-w", "start"],
                       check=True, capture_output=True)
        admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        if password is not None:
            admin += f" password={password}"
        for _ in range(50):
            try:
                psycopg.connect(admin).close()
                break
            except psycopg.OperationalError as err:
                error = err
                time.sleep(0.1)
        else:  # never a dead server: say why it did not answer
            log = root / "log"
            raise RuntimeError(f"the test PostgreSQL server on port {port} never accepted a "
                               f"connection in 5 s: {error}; its log: "
                               + (log.read_text()[-2000:] if log.exists() else "(none)"))
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}", admin
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(admin: str, name: str) -> None:
    """(Re)create an empty database ``name``."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

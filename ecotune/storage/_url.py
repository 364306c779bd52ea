"""Storage URLs as users give them: which one a command uses, how it is shown, what is
wrong with it.

A storage URL may carry a database password
(``postgresql+psycopg://user:PASSWORD@host/db``). The password is needed to connect and
nowhere else: whatever ecotune prints, writes or stores shows a URL through
:func:`redact_url`, and text that may quote one (a driver's error, an attribute stored by an
older ecotune) goes through :func:`scrub`. Better still, leave the password out of the URL:
PostgreSQL's own ``PGPASSWORD`` or ``~/.pgpass`` supply it (docs/scaling.md), and
``ECOTUNE_STORAGE`` keeps the whole URL off command lines and out of study files.

Nothing here imports Optuna: the command line checks a URL before its slow imports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, unquote_plus

__all__ = ["STORAGE_ENV", "HIDDEN", "StorageURLError", "redact_url", "scrub",
           "choose_storage", "describe_storage", "scheme_problem", "check_storage_url"]

#: Environment variable naming the storage when neither ``--storage`` nor the study file does.
STORAGE_ENV = "ECOTUNE_STORAGE"
#: What a hidden password is shown as (SQLAlchemy's choice too).
HIDDEN = "***"

# ``scheme://user:PASSWORD@`` anywhere in a text; a password ends at the first "@", as in
# SQLAlchemy's own URL pattern.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):"
                       r"(?P<password>[^@\s]*)@")
# libpq also reads a password from the query string: ``...?password=PASSWORD``.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd)=)(?P<password>[^&#\s]*)",
                             re.IGNORECASE)
# ``user:PASSWORD@host/db`` typed without a scheme.
_BARE_USERINFO = re.compile(r"^(?P<head>[^:/@\s]+):(?P<password>(?!//)[^@\s]*)@")


class StorageURLError(ValueError):
    """A storage URL that cannot work; the message says how to fix it, password hidden."""


def _passwords(url: str) -> set[str]:
    """Every form of the password(s) ``url`` holds: as typed and percent-decoded."""
    found = {m["password"] for pattern in (_USERINFO, _QUERY_PASSWORD, _BARE_USERINFO)
             for m in pattern.finditer(url)}
    found |= {unquote(p) for p in found} | {unquote_plus(p) for p in found}
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: the patterns above found what there is
        parsed = None
    if parsed is not None:
        if parsed.password:
            found.add(str(parsed.password))
        for key, value in parsed.query.items():
            if key.lower() in ("password", "passwd"):
                found.update([value] if isinstance(value, str) else value)
    return {p for p in found if p and p != HIDDEN}


def _hide_patterns(text: str) -> str:
    def userinfo(m: re.Match) -> str:
        return f"{m['head']}:{HIDDEN}@" if m["password"] else m[0]

    text = _BARE_USERINFO.sub(userinfo, _USERINFO.sub(userinfo, text))
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + HIDDEN if m["password"] else m[0], text)


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***``; a URL without one comes back unchanged.

    This is how every storage URL is printed, written and stored.

    Example:
        >>> redact_url("postgresql+psycopg://ann:s3cret@db.lab:5432/studies")
        'postgresql+psycopg://ann:***@db.lab:5432/studies'
        >>> redact_url("postgresql://ann@db.lab/studies?password=s3cret")
        'postgresql://ann@db.lab/studies?password=***'
        >>> redact_url("sqlite:///ecotune.db")
        'sqlite:///ecotune.db'
    """
    if not _passwords(url):
        return url
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads (a typo): hide what looks like a password
        shown = url
    return _hide_patterns(shown)


def scrub(text: str, *urls: str) -> str:
    """``text`` (an error message, a stored attribute) with the passwords of ``urls``, and
    of any URL written in it, replaced by ``***``.

    Every occurrence of a password is replaced, even outside a URL: a driver may quote it
    alone. A short password may therefore hide other parts of the text, never the reverse.

    Example:
        >>> scrub('connect to "db" as ann with s3cret failed',
        ...       "postgresql://ann:s3cret@db/x")
        'connect to "db" as ann with *** failed'
        >>> scrub("old run stored postgresql://ann:s3cret@db/x")
        'old run stored postgresql://ann:***@db/x'
    """
    for url in urls:
        for secret in sorted(_passwords(url), key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
    return _hide_patterns(text)


def choose_storage(flag: str | None, from_file: str | None, default: str,
                   environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The storage URL a command uses and where it came from: ``--storage``, else the study
    file's, else ``$ECOTUNE_STORAGE``, else ``default``.

    Example:
        >>> env = {"ECOTUNE_STORAGE": "postgresql://ann@db/studies"}
        >>> choose_storage(None, None, "sqlite:///ecotune.db", env)
        ('postgresql://ann@db/studies', 'ECOTUNE_STORAGE')
        >>> choose_storage(None, "sqlite:///mine.db", "sqlite:///ecotune.db", env)
        ('sqlite:///mine.db', 'the study file')
    """
    environ = os.environ if environ is None else environ
    if flag is not None:
        return flag, "--storage"
    if from_file is not None:
        return from_file, "the study file"
    if environ.get(STORAGE_ENV):
        return environ[STORAGE_ENV], STORAGE_ENV
    return default, "the default"


def describe_storage(url: str, source: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` as shown to the user, saying where it came from when ``ECOTUNE_STORAGE`` is
    set (then it matters whether that variable was used).

    Example:
        >>> env = {"ECOTUNE_STORAGE": "postgresql://ann:s3cret@db/x"}
        >>> describe_storage("postgresql://ann:s3cret@db/x", "ECOTUNE_STORAGE", env)
        'postgresql://ann:***@db/x (from ECOTUNE_STORAGE)'
        >>> describe_storage("sqlite:///a.db", "--storage", env)
        'sqlite:///a.db (from --storage, not ECOTUNE_STORAGE)'
        >>> describe_storage("sqlite:///a.db", "--storage", {})
        'sqlite:///a.db'
    """
    environ = os.environ if environ is None else environ
    shown = redact_url(url)
    if not environ.get(STORAGE_ENV):
        return shown
    if source == STORAGE_ENV:
        return f"{shown} (from {STORAGE_ENV})"
    return f"{shown} (from {source}, not {STORAGE_ENV})"


def scheme_problem(url: str) -> str | None:
    """Why ``url`` is not a storage URL at all (no ``scheme://``), with the likely fix; None
    when it has a scheme.

    Example:
        >>> scheme_problem("m.db")
        "'m.db' is not a storage URL: for a SQLite file write 'sqlite:///m.db'"
        >>> scheme_problem("sqlite:///m.db") is None
        True
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", url):
        return None
    shown = scrub(url, url)
    if "@" in url:  # user@host/db: a server without its dialect
        return (f"{shown!r} is not a storage URL: name the database, e.g. "
                f"'postgresql+psycopg://{shown}'")
    return f"{shown!r} is not a storage URL: for a SQLite file write 'sqlite:///{shown}'"


def _file_of(url: str) -> tuple[Path, str] | None:
    """The file a SQLite or journal URL names, with what kind of file it is; None for a
    server URL or an in-memory database."""
    for prefix, kind in (("sqlite:///", "database"), ("journal:///", "journal")):
        if url.startswith(prefix):
            path = url.removeprefix(prefix).split("?", 1)[0]
            return (Path(path), kind) if path not in ("", ":memory:") else None
    return None


def check_storage_url(url: str, must_exist: bool = False, label: str = "storage") -> None:
    """Refuse a storage URL that cannot work, before anything is opened or created.

    Args:
        url: the storage URL.
        must_exist: the command only reads (report, dashboard): a SQLite or journal file
            must already exist, since opening a missing one would create it.
        label: what the message calls the URL (``--storage``, ``ECOTUNE_STORAGE``).

    Raises:
        StorageURLError: no ``scheme://``; the directory of a SQLite or journal file does
            not exist; ``must_exist`` and the file does not exist.

    Example:
        >>> check_storage_url("sqlite:///no/such/dir/m.db")
        Traceback (most recent call last):
        ...
        ecotune.storage._url.StorageURLError: storage sqlite:///no/such/dir/m.db: \
no such directory 'no/such/dir' for the database file
    """
    problem = scheme_problem(url)
    if problem is not None:
        raise StorageURLError(f"{label} {problem}")
    file = _file_of(url)
    if file is None:
        return
    path, kind = file
    shown = redact_url(url)
    if not path.parent.is_dir():
        raise StorageURLError(f"{label} {shown}: no such directory {str(path.parent)!r} "
                              f"for the {kind} file")
    if must_exist and not path.is_file():
        raise StorageURLError(f"{label} {shown}: no such {kind} file {path}")

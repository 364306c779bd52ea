"""Lazy re-exports: a package's public names, imported on first use.

Every ecotune package names its public objects in one table, ``{name: defining module}``
(Optuna's convention: modules are private and never named like a name they define, so
importing a module can never replace a public name). Imported on first use, so that
``import ecotune`` and the CLI's help do not pay for torch, Optuna, plotly or pandas.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str],
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` exporting ``exports``.

    Example:
        >>> getattr_, dir_ = lazy_exports("ecotune", {"load_spec": "ecotune.spec"})
        >>> getattr_("load_spec").__name__, "load_spec" in dir_()
        ('load_spec', True)
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            vars(sys.modules[package])[name] = value  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__

"""pytest's set-up for the whole repository (the suite runs ``--doctest-modules ecotune
tests``: every module of the package is imported for its docstring examples).

The Hugging Face integration needs transformers, an optional extra: outside CI, where it
may not be installed, its module is not collected (its test skips, tests/test_transformers.py);
under ``CI=true`` it is collected, so a missing package fails, as .ci/setup installs it.
"""

import importlib.util
import os

collect_ignore = []
if os.environ.get("CI") != "true" and importlib.util.find_spec("transformers") is None:
    collect_ignore.append("ecotune/integration/_transformers.py")

"""The public API: every public name is always the documented object, whatever was
imported first; ``create_study`` takes Optuna's optional arguments."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import optuna
import pytest

import ecotune

PACKAGES = ("ecotune", "ecotune.search", "ecotune.report", "ecotune.energy",
            "ecotune.energy.hardware", "ecotune.training", "ecotune.knobs", "ecotune.models",
            "ecotune.data", "ecotune.cli", "ecotune.noise")

# Import orders that broke `ecotune.measure` before (a submodule import replaced it).
ORDERS = [
    "import ecotune; ecotune.run; import ecotune.search._objective",
    "import ecotune.search._measure; import ecotune",
    "import ecotune.search; ecotune.search.run; import ecotune",
    "import ecotune.report; import ecotune.search._runner; import ecotune",
    "import ecotune",
]

CHECK = """
import types
{order}
import ecotune, ecotune.search
bad = [f"{{pkg.__name__}}.{{n}}" for pkg in (ecotune, ecotune.search) for n in pkg.__all__
       if isinstance(getattr(pkg, n), types.ModuleType)]
assert not bad, bad
assert ecotune.measure is ecotune.search.measure and callable(ecotune.measure)
with ecotune.measure(meter="cputime") as m:
    pass
print("ok")
"""


# One process with the heavy third-party packages (seconds each) imported, no ecotune
# module among them, forks a fresh child per order: in each child every ecotune
# module imports from nothing, in that order. Each child's exit status and output come
# back through a pipe, all of them as one JSON object on the driver's stdout.
ORDERS_DRIVER = r"""
import contextlib, gc, io, json, os, sys, traceback
import codecarbon, numpy, optuna, pandas, plotly, pydantic, sqlalchemy, torch, torchvision
gc.freeze()  # as tests/forkserver.py does: the children's collections skip these objects
orders, check = json.loads(sys.stdin.read())
assert not [m for m in sys.modules if m == "ecotune" or m.startswith("ecotune.")]
results = {}
for order in orders:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        out, err, code = io.StringIO(), io.StringIO(), 1
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(check.format(order=order), "<check>", "exec"), {})
            code = 0
        except BaseException:
            err.write(traceback.format_exc())
        with os.fdopen(write_end, "w") as pipe:
            json.dump([out.getvalue(), err.getvalue()], pipe)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    out, err = json.loads(output) if output else ["", "the child wrote no result"]
    results[order] = [os.waitstatus_to_exitcode(status), out, err]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def order_results() -> dict[str, list]:
    """ORDERS' [exit status, stdout, stderr] of CHECK, each in a fresh forked child. The
    driver itself is forked from tests/forkserver.py's server (the same packages
    imported, no ecotune module: the driver asserts it)."""
    import json

    from tests import forkserver

    out = forkserver.run([sys.executable, "-c", ORDERS_DRIVER],
                         input=json.dumps([ORDERS, CHECK]), text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("order", ORDERS)
def test_public_names_are_the_documented_objects_in_any_import_order(
        order: str, order_results: dict[str, list]) -> None:
    code, out, err = order_results[order]
    assert code == 0 and out.strip() == "ok", err


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_named_like_a_public_name_of_its_package(package: str) -> None:
    pkg = importlib.import_module(package)
    modules = {info.name for info in pkgutil.iter_modules(pkg.__path__)}
    assert not modules & set(pkg.__all__), sorted(modules & set(pkg.__all__))
    for name in pkg.__all__:  # and every public name resolves to an object, not a module
        assert not isinstance(getattr(pkg, name), types.ModuleType), name


def test_import_ecotune_loads_neither_torch_nor_optuna() -> None:
    code = ("import sys, ecotune; "
            "print(sorted(m for m in ('torch', 'optuna', 'pandas', 'plotly') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


WORKER_IMPORTS = """
import sys
from ecotune.data import load_data
from ecotune.models import build_model
from ecotune.search import _objective, _runner, _study  # what a spawned worker imports
build_model("mlp", load_data("digits").input_shape, 10)
print(sorted(m for m in ("torchvision", "sklearn", "scipy", "pandas", "plotly", "codecarbon")
             if m in sys.modules))
"""


def test_a_worker_training_digits_imports_only_what_it_uses() -> None:
    """Each spawned worker pays its imports: torchvision (resnet18, mobilenet_v2) and
    scikit-learn (~2 CPU-s each) load only where used, not for digits and an mlp."""
    out = subprocess.run([sys.executable, "-c", WORKER_IMPORTS], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)


def test_create_study_takes_optunas_optional_arguments() -> None:
    study = ecotune.create_study(sampler="skopt", storage=None)
    assert study.study_name  # Optuna made one
    assert study.metric_names == ["accuracy", "energy_j"]
    other = ecotune.create_study(storage=None)
    assert other.study_name != study.study_name


def test_create_study_loads_an_existing_study_or_refuses_by_optunas_rule(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = ecotune.create_study("s", storage=url, sampler="random")
    again = ecotune.create_study("s", storage=url, sampler="random")
    assert again._study_id == first._study_id
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        ecotune.create_study("s", storage=url, load_if_exists=False)


PAIRS_CHECK = """
import itertools, sys
names = ["ecotune.search._measure", "ecotune.search._runner", "ecotune.search._study"]
for a, b in itertools.permutations(names, 2):
    for name in [m for m in sys.modules if m == "ecotune" or m.startswith("ecotune.")]:
        del sys.modules[name]  # each pair from nothing of ecotune imported
    __import__(a)
    __import__(b)
    import ecotune
    assert callable(ecotune.measure) and callable(ecotune.run), (a, b)
    assert callable(ecotune.create_study), (a, b)
    assert ecotune.measure is sys.modules["ecotune.search._measure"].measure, (a, b)
print("ok")
"""


def test_every_pair_of_orders_gives_the_same_names() -> None:
    """Within one process too: importing submodules in any order keeps the names. In a
    fresh process, each pair imported after every ecotune module is forgotten (this
    process has imported everything already, whatever the order)."""
    out = subprocess.run([sys.executable, "-c", PAIRS_CHECK], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _module_imports(root=None) -> dict[str, set[str]]:
    """Each ecotune module's imports of other ecotune modules, at module level and inside
    functions alike (``if TYPE_CHECKING:`` blocks excepted: they never run)."""
    import ast
    from pathlib import Path

    root = Path(root or Path(ecotune.__file__).parent)

    class Imports(ast.NodeVisitor):
        def __init__(self, name: str, is_package: bool) -> None:
            self.name, self.is_package, self.found = name, is_package, set()

        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            self.found |= {a.name for a in node.names}

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                pkg = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            self.found |= {base} | {f"{base}.{a.name}" for a in node.names}

    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        visitor = Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text()))
        graph[name] = {t for t in visitor.found if t.startswith("ecotune")} - {name}
    return {n: {t for t in ts if t in graph} for n, ts in graph.items()}


def test_imports_form_a_tree_without_circles() -> None:
    graph = _module_imports()
    # A package importing its own submodules (re-exports) is how packages work; a circle
    # is a module reaching itself through modules other than its own parents.
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start and not all(start.startswith(p + ".") for p in path[1:]):
                    raise AssertionError(" -> ".join((*path, nxt)))
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))


def test_the_search_layer_does_not_import_the_report_layer() -> None:
    graph = _module_imports()
    offenders = {(n, t) for n, ts in graph.items() if n.startswith("ecotune.search")
                 for t in ts if t.startswith("ecotune.report")}
    lower = {(n, t) for n, ts in graph.items()
             if n.split(".")[1:2] and n.split(".")[1] in ("energy", "knobs", "data", "models",
                                                            "training", "epochs", "names")
             for t in ts if t.startswith(("ecotune.search", "ecotune.report"))}
    assert not offenders and not lower, offenders | lower


def _private_owner(module: str) -> str | None:
    """The package whose private module ``module`` is (``ecotune.rules`` for
    ``ecotune.rules._budgets``), or None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_module_imports_another_packages_private_module() -> None:
    """A package's private modules are its own: other packages import what it exports."""
    graph = _module_imports()
    offenders = sorted((n, t) for n, ts in graph.items() for t in ts
                       if (owner := _private_owner(t)) is not None
                       and n != owner and not n.startswith(owner + "."))
    assert not offenders, offenders


def _ecotune_modules():
    """``(path, tree)`` of every ecotune module but names.py, the vocabulary itself."""
    import ast
    from pathlib import Path

    root = Path(ecotune.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path != root / "names.py":
            yield path.relative_to(root.parent), ast.parse(path.read_text())


def _literal_attribute_keys(tree) -> list[tuple[int, str]]:
    """``(line, key)`` of each trial or study user attribute named by a string literal:
    ``set_user_attr("k", ...)``, ``x.user_attrs["k"]``, ``x.user_attrs.get("k")`` (or
    ``pop``, ``setdefault``), ``"k" in x.user_attrs``."""
    import ast

    def is_user_attrs(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "user_attrs"

    def literal(node) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            else None

    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            if func.attr == "set_user_attr" or (
                    func.attr in ("get", "pop", "setdefault") and is_user_attrs(func.value)):
                key = literal(node.args[0])
        elif isinstance(node, ast.Subscript) and is_user_attrs(node.value):
            key = literal(node.slice)
        elif isinstance(node, ast.Compare) and any(is_user_attrs(c) for c in node.comparators):
            key = literal(node.left)
        if key is not None:
            found.append((node.lineno, key))
    return found


def test_attribute_keys_are_never_literals_outside_names_py() -> None:
    """Every reader and writer of an attribute names its key through ecotune.names."""
    import ast

    # The scan itself sees each form it looks for.
    sample = ast.parse('t.set_user_attr("a", 1); t.user_attrs["b"]; t.user_attrs.get("c")\n'
                       '"d" in t.user_attrs; t.set_user_attr(ATTR_X, 1)')
    assert [key for _, key in _literal_attribute_keys(sample)] == ["a", "b", "c", "d"]
    offenders = [f"{path}:{line}: {key!r}" for path, tree in _ecotune_modules()
                 for line, key in _literal_attribute_keys(tree)]
    assert not offenders, offenders


def test_no_module_renames_a_names_py_constant() -> None:
    """One name per thing: no ``X = CONSTANT`` alias of a names.py constant, no
    ``from ecotune.names import CONSTANT as X``."""
    import ast

    from ecotune import names

    vocabulary = set(names.__all__) - {"check_implements"}
    offenders = []
    for path, tree in _ecotune_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "ecotune.names":
                offenders += [f"{path}:{node.lineno}: {a.name} as {a.asname}"
                              for a in node.names if a.asname not in (None, a.name)]
        for node in tree.body:  # module level
            if isinstance(node, ast.Assign):
                value = node.value
                name = (value.id if isinstance(value, ast.Name) else value.attr
                        if isinstance(value, ast.Attribute) else None)
                if name in vocabulary:
                    offenders.append(f"{path}:{node.lineno}: = {name}")
    assert not offenders, offenders


def test_stop_reasons_are_one_vocabulary() -> None:
    from ecotune import names

    reasons = names.STOP_REASONS
    assert len(set(reasons)) == len(reasons)
    assert {getattr(names, n) for n in names.__all__ if n.startswith("STOP_")
            and n != "STOP_REASONS"} == set(reasons)
    # "early_stopping" names the energy-aware mechanism (its attribute and study-file
    # section), never patience's stop.
    assert names.STOP_PATIENCE != names.ATTR_EARLY_STOPPING
    assert names.ATTR_EARLY_STOPPING not in reasons

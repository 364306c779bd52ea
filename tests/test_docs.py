"""The docs match the code: every study-file example in docs/ is a valid study file."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import tomllib

from ecotune import load_spec
from tests import forkserver
from tests.conftest import require_component

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCKS = [(path.name, i, block)
          for path in sorted(DOCS.glob("*.md"))
          for i, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S))
          if "[study]" in block]  # whole study files, not fragments of one


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS,
                         ids=[f"{page}#{i}" for page, i, _ in BLOCKS])
def test_study_file_examples_in_the_docs_are_valid(page: str, index: int, block: str) -> None:
    raw = tomllib.loads(block)
    raw["study"].setdefault("name", "docs-example")
    load_spec(raw)


# Pages whose ```python blocks are whole programs (the others show fragments).
RUNNABLE_PAGES = ("api.md",)
PYTHON_BLOCKS = [(path.name, i, block)
                 for path in (DOCS / page for page in RUNNABLE_PAGES)
                 for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(),
                                                      re.S))]


@pytest.mark.parametrize(("page", "index", "block"), PYTHON_BLOCKS,
                         ids=[f"{page}#{i}" for page, i, _ in PYTHON_BLOCKS])
@pytest.mark.slow
def test_python_examples_in_the_docs_run(page: str, index: int, block: str,
                                         tmp_path: Path) -> None:
    """Every ```python block of those pages is a complete program that runs as written."""
    if "from transformers import" in block:
        require_component(importlib.util.find_spec("transformers") is not None,
                          "transformers and accelerate")
    # A real process forked from one that imported torch and friends already (no ecotune
    # module, nothing the blocks set before importing: tests/forkserver.py).
    out = forkserver.run([sys.executable, "-c", block], cwd=tmp_path, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def test_the_architecture_section_names_every_package_and_module() -> None:
    """docs/index.md's layout lists every package and every top-level module of ecotune/."""
    text = (DOCS / "index.md").read_text()
    layout = re.search(r"```\necotune/\n(.*?)```", text, re.S).group(1)
    listed = set(re.findall(r"^  (\S+)", layout, re.M))
    package = DOCS.parent / "ecotune"
    present = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    present |= {p.name for p in package.glob("*.py") if p.name != "__main__.py"}
    assert present == listed, (sorted(present - listed), sorted(listed - present))


def test_relative_links_in_the_docs_resolve() -> None:
    root = DOCS.parent
    pages = [*DOCS.glob("*.md"), root / "README.md", root / "benchmarks" / "README.md"]
    broken = [(page.name, link) for page in pages
              for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text())
              if not (page.parent / link).exists()]
    assert not broken, broken


def test_docstrings_cite_the_papers_or_the_docs_not_files_outside_the_repository() -> None:
    package = DOCS.parent / "ecotune"
    outside = [str(p.relative_to(package)) for p in package.rglob("*.py")
               if "METHODS.md" in p.read_text()]
    assert not outside, outside

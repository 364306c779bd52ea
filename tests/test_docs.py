"""The docs match the code: every study-file example in docs/ is a valid study file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from ecotune import load_spec

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

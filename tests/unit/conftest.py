"""Fixtures for the unit tests: a scratch SQLite knowledge base with the FakeEmbedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kb_support import ScratchKb, scratch_kb


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[ScratchKb]:
    with scratch_kb(tmp_path) as scratch:
        yield scratch

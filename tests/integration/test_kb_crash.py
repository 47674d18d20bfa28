"""A publish killed with SIGKILL at each point of its way: after a restart, the database and the index agree.

The child process (kb_crash_child.py) publishes a second entry and dies before the commit, after the commit
(before the index is saved), or in the middle of writing the index file. A fresh process then opens the
index from the same directory: its vectors are exactly the live vectors in the database, and a search
finds the second entry if and only if the database says it is published.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from knowledge_base.models import entries, vectors
from knowledge_base.search import FaqSearcher
from knowledge_base.testing import FakeEmbedder

CHILD = Path(__file__).with_name("kb_crash_child.py")


@pytest.mark.parametrize(
    ("point", "published_after_restart"),
    [("before_commit", False), ("after_commit", True), ("mid_index_write", True)],
)
def test_killed_publish_leaves_database_and_index_in_agreement(
    tmp_path: Path, point: str, published_after_restart: bool
) -> None:
    child = subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path), point], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    engine = create_engine(f"sqlite:///{tmp_path / 'kb.db'}")
    sessions = sessionmaker(engine)
    try:
        with sessions() as session:
            live_vectors = set(session.execute(select(vectors.c.id)).scalars())
            status = session.execute(select(entries.c.status).where(entries.c.slug == "pac-code")).scalar_one()
        searcher = FaqSearcher(sessions, FakeEmbedder(), index_dir=tmp_path / "index", refresh_interval_s=0)
        assert searcher.index.vector_ids() == live_vectors
        assert (status == "published") is published_after_restart
        slugs = [hit.slug for hit in searcher.search("How do I get a PAC code?", k=5).hits]
        assert ("pac-code" in slugs) is published_after_restart
        assert "restart-router" in slugs
    finally:
        engine.dispose()

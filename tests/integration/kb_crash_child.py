"""A process that publishes an FAQ entry and is killed (SIGKILL) at a named point; see test_kb_crash.py.

    python kb_crash_child.py DIRECTORY POINT    POINT: before_commit | after_commit | mid_index_write
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

import knowledge_base.index as index_module
from knowledge_base.models import create_schema
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(directory: Path, point: str) -> None:
    engine = create_engine(f"sqlite:///{directory / 'kb.db'}")
    create_schema(engine)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    searcher = FaqSearcher(sessions, embedder, index_dir=directory / "index", refresh_interval_s=0)
    first = EntryContent("restart-router", "How do I restart my router?", "Switch it off and on.", ("router frozen",))
    service.create_draft(first, author="ed")
    service.publish("restart-router", author="ed")
    searcher.refresh()
    searcher.save()  # the baseline: database and saved index agree at this KB version

    second = EntryContent("pac-code", "How do I get a PAC code?", "Text PAC to 65075.", ("leaving, need my pac",))
    service.create_draft(second, author="ed")
    if point == "before_commit":
        original_commit = Session.commit

        def commit_then_die(session: Session) -> None:
            session.flush()  # the publish's rows are written, not committed
            die()
            original_commit(session)

        Session.commit = commit_then_die  # type: ignore[method-assign]
    service.publish("pac-code", author="ed")
    if point == "after_commit":
        die()  # published in the database; the saved index still reflects the baseline
    if point == "mid_index_write":

        def write_half_then_die(path: Path, data: bytes) -> None:
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data[: len(data) // 2])
            die()

        index_module._write_atomically = write_half_then_die  # type: ignore[assignment]
    searcher.refresh()
    searcher.save()
    print("not killed", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

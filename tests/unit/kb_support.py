"""Shared helpers for the knowledge base's unit tests: a scratch SQLite knowledge base with the FakeEmbedder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge_base.models import create_schema, entries, entry_versions, kb_state, vectors
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder


def content(slug: str = "restart-router", **overrides: object) -> EntryContent:
    values: dict[str, object] = {
        "slug": slug,
        "question": f"How do I restart my {slug.replace('-', ' ')}?",
        "answer": "Switch it off, wait 30 seconds, switch it on. https://kestrel.example/help",
        "paraphrases": (f"{slug.replace('-', ' ')} frozen", f"reboot the {slug.replace('-', ' ')} please"),
        "tags": ("router",),
        "language": "en",
    }
    values.update(overrides)
    return EntryContent(**values)  # type: ignore[arg-type]


@dataclass
class ScratchKb:
    engine: Engine
    sessions: sessionmaker[Session]
    embedder: FakeEmbedder
    service: KnowledgeBaseService

    def counts(self) -> dict[str, int]:
        with self.sessions() as session:
            return {
                "entries": session.scalar(select(func.count()).select_from(entries)) or 0,
                "versions": session.scalar(select(func.count()).select_from(entry_versions)) or 0,
                "vectors": session.scalar(select(func.count()).select_from(vectors)) or 0,
                "kb_version": session.scalar(select(kb_state.c.version)) or 0,
            }


@contextmanager
def scratch_kb(directory: Path, **service_options: object) -> Iterator[ScratchKb]:
    engine = create_engine(f"sqlite:///{directory / 'kb.db'}")
    create_schema(engine)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    try:
        yield ScratchKb(engine, sessions, embedder, KnowledgeBaseService(sessions, embedder, **service_options))  # type: ignore[arg-type]
    finally:
        engine.dispose()

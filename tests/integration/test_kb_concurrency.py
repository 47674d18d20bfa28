"""Concurrent editors on PostgreSQL: publishes take turns on the KB version and on each entry, so every publish
gets its own KB version and every entry version number is used once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.db import make_engine
from knowledge_base.models import changes
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder


@pytest.mark.postgres
def test_concurrent_publishes_are_serialised(kb_postgres_url: str) -> None:
    engine = make_engine(kb_postgres_url)
    try:
        sessions = sessionmaker(engine)
        service = KnowledgeBaseService(sessions, FakeEmbedder())
        slugs = [f"entry-{n}" for n in range(6)]
        for n, slug in enumerate(slugs):
            service.create_draft(
                EntryContent(slug=slug, question=f"topic {n} question {'x' * n}", answer="A."), author="ed"
            )

        def edit_and_publish(job: tuple[str, int]) -> int:
            slug, round_ = job
            service.edit(slug, author="ed", answer=f"Answer {round_}.")
            try:
                return service.publish(slug, author="ed").version
            except Exception as exc:  # an edit by the other thread may already be published
                if "no unpublished changes" in str(exc):
                    return 0
                raise

        jobs = [(slug, round_) for round_ in range(3) for slug in slugs] * 2
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(edit_and_publish, jobs))

        with sessions() as session:
            kb_versions = session.execute(select(changes.c.kb_version).order_by(changes.c.kb_version)).scalars().all()
        assert kb_versions == list(range(1, len(kb_versions) + 1))  # one version per publish, no gaps
        for slug in slugs:
            versions = [v.version for v in service.history(slug)]
            assert versions == list(range(1, len(versions) + 1))
    finally:
        engine.dispose()

"""The knowledge base as carebot runs it: its configuration from Settings, and the service and searcher
built on carebot's database.

Until Settings grows the kb_* fields (see KbConfig), the defaults below apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from bot.db import make_engine, upgrade
from bot.settings import Settings
from knowledge_base.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService


@dataclass(frozen=True)
class KbConfig:
    embedding_model: str = DEFAULT_MODEL  # CAREBOT_KB_EMBEDDING_MODEL: a model directory or a cached name
    index_dir: Path | None = None  # CAREBOT_KB_INDEX_DIR: default $DATA_DIR/kb-index
    duplicate_threshold: float = 0.9  # CAREBOT_KB_DUPLICATE_THRESHOLD: cosine above which a question is a duplicate
    exact_limit: int = 20_000  # CAREBOT_KB_EXACT_LIMIT: vectors up to which search is exact (then HNSW)
    refresh_interval_s: float = 0.2  # CAREBOT_KB_REFRESH_INTERVAL_S: how often a searcher checks for publishes
    signature: str = "^bot"  # CAREBOT_KB_SIGNATURE: appended to every bot answer, counted in its 280
    embedding_threads: int = 1  # CAREBOT_KB_EMBEDDING_THREADS: torch CPU threads per process (0: torch's default)


def kb_config(settings: Settings) -> KbConfig:
    """The knowledge base's configuration from the settings (kb_* fields when present, else the defaults)."""
    defaults = KbConfig()
    index_dir = getattr(settings, "kb_index_dir", None) or settings.data_dir / "kb-index"
    return KbConfig(
        embedding_model=getattr(settings, "kb_embedding_model", None) or defaults.embedding_model,
        index_dir=Path(index_dir),
        duplicate_threshold=float(getattr(settings, "kb_duplicate_threshold", defaults.duplicate_threshold)),
        exact_limit=int(getattr(settings, "kb_exact_limit", defaults.exact_limit)),
        refresh_interval_s=float(getattr(settings, "kb_refresh_interval_s", defaults.refresh_interval_s)),
        signature=str(getattr(settings, "kb_signature", defaults.signature)),
        embedding_threads=int(getattr(settings, "kb_embedding_threads", defaults.embedding_threads)),
    )


def make_embedder(config: KbConfig) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(config.embedding_model, threads=config.embedding_threads or None)


@dataclass
class KnowledgeBase:
    service: KnowledgeBaseService
    searcher: FaqSearcher


@contextmanager
def open_knowledge_base(settings: Settings, *, migrate: bool = True) -> Iterator[KnowledgeBase]:
    """The service and the searcher over carebot's database (migrated first unless migrate=False)."""
    config = kb_config(settings)
    url = settings.effective_database_url
    if migrate:
        upgrade(url)
    engine = make_engine(url)
    try:
        sessions = sessionmaker(engine)
        embedder = make_embedder(config)
        service = KnowledgeBaseService(
            sessions, embedder, duplicate_threshold=config.duplicate_threshold, signature=config.signature
        )
        searcher = FaqSearcher(
            sessions, embedder, index_dir=config.index_dir, refresh_interval_s=config.refresh_interval_s,
            exact_limit=config.exact_limit,
        )  # fmt: skip
        yield KnowledgeBase(service, searcher)
    finally:
        engine.dispose()

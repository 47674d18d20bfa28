"""The knowledge base as carebot runs it: its configuration from Settings, and the service and searcher
built on carebot's database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from bot.db import make_engine, upgrade
from bot.decision.tone import BOT, default_guide
from bot.settings import Settings
from knowledge_base.embedding import DEFAULT_MODEL, CachedEmbedder, Embedder, SentenceTransformerEmbedder
from knowledge_base.onnx_embedding import OnnxEmbedder
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService

EMBEDDING_CACHE_FILE = "embeddings.sqlite3"


@dataclass(frozen=True)
class KbConfig:
    embedding_model: str
    index_dir: Path
    embedding_cache_dir: Path  # the FAQ texts' vectors by model and text (CachedEmbedder)
    duplicate_threshold: float
    exact_limit: int
    refresh_interval_s: float
    signature: str  # the bot's signature, counted in every answer's 280
    embedding_threads: int
    embedding_backend: str  # "onnx" or "torch"
    onnx_dir: Path  # the ONNX exports of embedding models, by digest of the model's files


def kb_config(settings: Settings) -> KbConfig:
    """The knowledge base's configuration: the CAREBOT_KB_* settings and the tone guide's bot signature."""
    embedding_cache_dir = settings.kb_embedding_cache_dir or settings.kb_index_dir or settings.data_dir / "kb-index"
    return KbConfig(
        embedding_model=settings.kb_embedding_model or DEFAULT_MODEL,
        index_dir=settings.kb_index_dir or settings.data_dir / "kb-index",
        embedding_cache_dir=embedding_cache_dir,
        duplicate_threshold=settings.kb_duplicate_threshold,
        exact_limit=settings.kb_exact_limit,
        refresh_interval_s=settings.kb_refresh_interval_s,
        signature=default_guide().signature(BOT),
        embedding_threads=settings.kb_embedding_threads,
        embedding_backend=settings.kb_embedding_backend,
        onnx_dir=settings.kb_onnx_dir or embedding_cache_dir / "onnx",
    )


def make_embedder(config: KbConfig) -> Embedder:
    """The embedding model as configured: in onnxruntime (the default) or in torch."""
    threads = config.embedding_threads or None
    if config.embedding_backend == "torch":
        return SentenceTransformerEmbedder(config.embedding_model, threads=threads)
    return OnnxEmbedder(config.embedding_model, export_dir=config.onnx_dir, threads=threads)


def cached(embedder: Embedder, config: KbConfig) -> CachedEmbedder:
    """The embedder for FAQ texts and out-of-scope examples: their vectors are kept on disk and shared by every
    process (tweets are embedded by the plain embedder and never kept)."""
    return cached_in(embedder, config.embedding_cache_dir)


def cached_in(embedder: Embedder, directory: Path) -> CachedEmbedder:
    """The same, with the cache file in `directory`."""
    return CachedEmbedder(embedder, directory / EMBEDDING_CACHE_FILE)


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
            sessions, cached(embedder, config), duplicate_threshold=config.duplicate_threshold,
            signature=config.signature,
        )  # fmt: skip
        searcher = FaqSearcher(
            sessions, embedder, index_dir=config.index_dir, refresh_interval_s=config.refresh_interval_s,
            exact_limit=config.exact_limit,
        )  # fmt: skip
        yield KnowledgeBase(service, searcher)
    finally:
        engine.dispose()

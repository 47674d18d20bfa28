"""A second process for test_kb_processes.py: searches until a text becomes the top hit, prints when it saw it.

    python kb_watcher.py DATABASE_URL INDEX_DIR QUERY
prints `ready` once warmed up, then `seen <unix time>` (or `timeout`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from bot.db import make_engine
from knowledge_base.embedding import SentenceTransformerEmbedder
from knowledge_base.search import FaqSearcher


def main() -> None:
    url, index_dir, query = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    engine = make_engine(url)
    searcher = FaqSearcher(sessionmaker(engine), SentenceTransformerEmbedder(), index_dir=index_dir)
    searcher.search(query)  # loads the model and the index
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        hits = searcher.search(query).hits
        if hits and hits[0].text == query:
            print(f"seen {time.time()!r}", flush=True)
            return
    print("timeout", flush=True)


if __name__ == "__main__":
    main()

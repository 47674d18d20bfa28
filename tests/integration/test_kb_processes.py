"""A publish through the service in this process is searchable in a second process within a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from knowledge_base.embedding import Embedder
from knowledge_base.io import read_file
from knowledge_base.service import KnowledgeBaseService

ROOT = Path(__file__).resolve().parents[2]
WATCHER = Path(__file__).with_name("kb_watcher.py")


def test_a_second_process_sees_a_publish_within_a_second(
    database_url: str, sessions: sessionmaker[Session], minilm: Embedder, tmp_path: Path
) -> None:
    service = KnowledgeBaseService(sessions, minilm)
    service.import_entries(read_file(ROOT / "training_data" / "faq.yml"), author="test")
    query = "can a pigeon carry my broadband bill to the depot"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(WATCHER), database_url, str(tmp_path / "index"), query],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=ROOT,
    ) as watcher:  # fmt: skip
        try:
            assert watcher.stdout is not None
            ready = watcher.stdout.readline().strip()
            assert ready == "ready", watcher.stderr.read() if watcher.stderr else ""
            time.sleep(0.5)  # it is searching in a loop now, and does not see the query as a paraphrase
            entry = service.get("paper-bills")
            service.edit("paper-bills", author="test", paraphrases=[*entry.content.paraphrases, query])
            service.publish("paper-bills", author="test")
            published_at = time.time()
            seen = watcher.stdout.readline().strip()
        finally:
            watcher.kill()
    assert seen.startswith("seen "), seen
    assert float(seen.split()[1]) - published_at < 1.0

"""NLU use cases that combine training, the server and the client: parse many texts, evaluate a model."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.nlu.client import NluClient, NluResult
from bot.nlu.evaluation import evaluate, load_examples
from bot.nlu.server import NluServer
from bot.nlu.training import train
from bot.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_private_port(settings: Settings) -> Settings:
    """A copy of the settings whose Rasa server listens on a free port of its own."""
    return settings.model_copy(update={"nlu_port": free_port(), "nlu_url": None})


def parse_many(client: NluClient, texts: Sequence[str], concurrency: int = 4) -> list[NluResult]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(client.parse, texts))


def default_test_file(settings: Settings) -> Path:
    return settings.training_data_dir / "nlu_test" / "nlu_test.yml"


def evaluate_held_out(
    settings: Settings,
    test_file: Path | None = None,
    *,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_train_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train on the training files (or reuse the cached model), serve it on a private port and score
    it on the held-out file that training never sees."""
    test_file = test_file or default_test_file(settings)
    examples = load_examples(test_file)
    on_stage("training")
    model, _ = train(settings, on_progress=on_train_progress)
    on_stage("starting Rasa")
    with NluServer(with_private_port(settings), model) as server, server.client() as client:
        on_stage("parsing")
        results = parse_many(client, [e.text for e in examples])
    report = evaluate(examples, results)
    report["model"] = model.name
    report["test_file"] = str(test_file)
    return report

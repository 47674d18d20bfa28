"""Benchmark of the Rasa NLU service: start-up time, resident memory, parse latency and throughput.

    python -m bench.nlu --json [--out FILE] [--tweets 600]

Parses the project's training and held-out texts (repeated to reach --tweets) with 1 and 4
concurrent clients against a real Rasa server started for the run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import emit, intent_examples, machine, percentile
from bot.nlu.client import NluClient
from bot.nlu.evaluation import load_examples
from bot.nlu.server import NluServer
from bot.nlu.service import default_test_file, with_private_port
from bot.nlu.training import TrainingInputs, train
from bot.settings import load_settings


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, from /proc."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending.extend(int(child) for child in children)
        except (OSError, ValueError):
            continue
    return round(total_kb / 1024, 1)


def run_load(client: NluClient, texts: list[str], concurrency: int) -> dict[str, Any]:
    def timed(text: str) -> float:
        started = time.perf_counter()
        client.parse(text)
        return (time.perf_counter() - started) * 1000

    for text in texts[:20]:  # warm-up
        client.parse(text)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(timed, texts))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(texts),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p99": round(percentile(latencies, 99), 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "throughput_per_s": round(len(texts) / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--tweets", type=int, default=600)
    args = parser.parse_args(argv)

    settings = with_private_port(load_settings())
    inputs = TrainingInputs.from_dir(settings.training_data_dir)
    train_started = time.perf_counter()
    model, trained = train(settings, inputs)
    train_s = time.perf_counter() - train_started

    texts = [e.text for path in inputs.nlu_files for e in intent_examples(path)]
    texts += [e.text for e in load_examples(default_test_file(settings))]
    texts = (texts * (args.tweets // max(len(texts), 1) + 1))[: args.tweets]

    with NluServer(settings, model) as server, server.client() as client:
        assert server.process is not None
        rss_idle = process_tree_rss_mb(server.process.pid)
        loads = [run_load(client, texts, concurrency) for concurrency in (1, 4)]
        rss_loaded = process_tree_rss_mb(server.process.pid)
        startup_s = server.started_in_s

    report = {
        "benchmark": "nlu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": model.name,
        "training_s": round(train_s, 1) if trained else None,
        "server_startup_s": round(startup_s or 0, 2),
        "server_rss_mb": {"idle": rss_idle, "after_load": rss_loaded},
        "parse": loads,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End-to-end benchmark of the X channel: customers tweet into the sandbox X at a fixed rate; the real worker
(tweepy over HTTP, the real Rasa, the real MiniLM FAQ search, SQLite) triages them and posts replies or opens
tickets. Measures sustained throughput and latency from tweet to reply posted (or ticket created), with the
resident memory of every process.

    python -m bench.throughput --json [--out FILE] [--rates 5,20,50] [--seconds 120]

Latency of one tweet: from the moment the sandbox X accepted it to the moment its reply was marked sent in the
outbox (the bot replied) or, without a bot reply, the moment it was triaged (its ticket was created then).

CPU per tweet is per tweet triaged. The sender keeps X's posting limits (100 replies per 15 minutes, also in
the sandbox's unmetered tier), so at these rates most bot replies wait in the outbox: they are counted as
`replies_waiting_for_posting_window`, and have no latency.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench.common import emit, machine, percentile
from bench.nlu import process_tree_rss_mb
from bot.channel.models import inbound_tweets, outbox
from bot.db import make_engine, upgrade
from bot.kb import kb_config
from bot.nlu.server import NluServer
from bot.nlu.service import free_port, with_private_port
from bot.nlu.training import train
from bot.processes import ChildProcess, http_ready
from bot.settings import PROJECT_ROOT, load_settings

TRAFFIC = PROJECT_ROOT / "training_data" / "traffic" / "kestrel_day.jsonl"
SETTLED_S = 15.0  # every tweet triaged and no reply sent for this long: the rest wait for X's posting window


def traffic_texts() -> list[str]:
    texts = []
    for line in TRAFFIC.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if not record.get("reply_to"):
                texts.append(record["text"])
    return texts


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            pending.extend(int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


class MemoryWatch(threading.Thread):
    """Samples the resident memory of named processes every second; keeps the peak of each."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], process_tree_rss_mb(pid))
            self.stop.wait(1.0)


def offer(sandbox_url: str, texts: list[str], rate: float, seconds: float, run: str) -> dict[str, float]:
    """Tweet `rate` tweets per second for `seconds`; returns each tweet's id and when the sandbox accepted it."""
    accepted: dict[str, float] = {}
    cycle = itertools.cycle(texts)
    started = time.monotonic()
    total = int(rate * seconds)
    with httpx.Client(timeout=10) as client:
        for n in range(total):
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            text = next(cycle)
            if "@kestrelcare" not in text.lower():
                text = f"@KestrelCare {text}"
            response = client.post(
                f"{sandbox_url}/sandbox/customer-tweets", json={"username": f"{run}c{n % 997}", "text": text}
            )
            if response.status_code == 201:
                accepted[response.json()["id"]] = time.time()
    return accepted


def completions(engine: Any, ids: set[str]) -> tuple[dict[str, float], set[str]]:
    """When each tweet was finished (its reply marked sent, or with no bot reply its triage), and every tweet
    triaged (decided), finished or with its reply still waiting in the outbox."""
    done: dict[str, float] = {}
    triaged: set[str] = set()
    with engine.connect() as conn:
        rows = conn.execute(
            select(inbound_tweets.c.tweet_id, inbound_tweets.c.triaged_at, outbox.c.state, outbox.c.sent_at)
            .outerjoin(outbox, (outbox.c.target_tweet_id == inbound_tweets.c.tweet_id) & (outbox.c.author == "bot"))
            .where(inbound_tweets.c.state == "done")
        ).all()
    for row in rows:
        if row.tweet_id not in ids:
            continue
        triaged.add(row.tweet_id)
        if row.state is None:
            finished = row.triaged_at
        elif row.state in ("sent", "failed") and row.sent_at is not None:
            finished = row.sent_at
        elif row.state == "failed":
            finished = row.triaged_at
        else:
            continue  # the reply is still on its way
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=UTC)
        done[row.tweet_id] = finished.timestamp()
    return done, triaged


def measure(
    engine: Any, sandbox_url: str, texts: list[str], rate: float, seconds: float, drain_s: float, pids: dict[str, int]
) -> dict:
    run = f"r{int(rate)}"
    cpu_before = {name: process_tree_cpu_s(pid) for name, pid in pids.items()}
    started = time.time()
    accepted = offer(sandbox_url, texts, rate, seconds, run)
    load_ended = time.time()
    deadline = time.monotonic() + drain_s
    done, triaged = completions(engine, set(accepted))
    settled_since = time.monotonic()
    while len(done) < len(accepted) and time.monotonic() < deadline:
        time.sleep(1.0)
        before = len(done)
        done, triaged = completions(engine, set(accepted))
        if len(done) != before or len(triaged) < len(accepted):
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since > SETTLED_S:
            break  # every tweet decided; the replies left wait for X's posting window
    cpu = {name: round(process_tree_cpu_s(pid) - cpu_before[name], 1) for name, pid in pids.items()}
    latencies = [done[i] - accepted[i] for i in done]
    in_window = sum(1 for t in done.values() if t <= load_ended)
    finished_at = max(done.values(), default=load_ended)
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "tweets": len(accepted),
        "completed": len(done),
        "triaged": len(triaged),
        "replies_waiting_for_posting_window": len(triaged) - len(done),
        "achieved_offered_per_s": round(len(accepted) / max(load_ended - started, 1e-9), 2),
        "throughput_per_s": round(len(done) / max(finished_at - started, 1e-9), 2),
        "completed_during_load": in_window,
        "drain_after_load_s": round(max(0.0, finished_at - load_ended), 2),
        "cpu_s": cpu,
        "cpu_ms_per_tweet": {name: round(1000 * used / max(len(triaged), 1), 1) for name, used in cpu.items()},
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3) if latencies else None,
            "p95": round(percentile(latencies, 95), 3) if latencies else None,
            "p99": round(percentile(latencies, 99), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--rates", default="5,20,50", help="offered tweets per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long each rate is offered")
    parser.add_argument("--drain", type=float, default=120.0, help="how long to wait for the backlog after a rate")
    parser.add_argument("--poll", type=float, default=0.2, help="the worker's mentions poll interval in seconds")
    args = parser.parse_args(argv)

    base = load_settings()
    run_dir = base.data_dir / "bench" / "throughput-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    settings = with_private_port(base)
    model, _ = train(settings)
    database_url = f"sqlite:///{run_dir / 'carebot.db'}"
    upgrade(database_url)
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "CAREBOT_DATA_DIR": str(run_dir), "CAREBOT_DATABASE_URL": database_url, "CAREBOT_X_API_URL": sandbox_url,
        "CAREBOT_NLU_URL": settings.effective_nlu_url, "CAREBOT_NLU_TOKEN": settings.effective_nlu_token,
        "CAREBOT_X_POLL_INTERVAL_S": str(args.poll), "CAREBOT_X_RECONCILE_AFTER_S": "2",
        "CAREBOT_X_TIER": "unmetered",  # CPU per tweet at rates above what X's read limits let one account poll
        "CAREBOT_KB_ONNX_DIR": str(kb_config(base).onnx_dir),  # the model's export outlives the run's directory
    }  # fmt: skip
    os.environ.update(env)
    logs = run_dir / "logs"
    sandbox = ChildProcess(
        "sandbox", ["sandbox", "serve", "--host", "127.0.0.1", "--port", str(sandbox_port),
                    "--store", str(run_dir / "sandbox-x.db")],
        logs / "sandbox.log", ready=http_ready(sandbox_url + "/"), env=env,
    )  # fmt: skip
    worker = ChildProcess("worker", ["worker"], logs / "worker.log", env=env)
    engine = make_engine(database_url)
    results = []
    with NluServer(settings, model, log_file=logs / "rasa.log") as rasa:
        sandbox.start()
        try:
            worker_started = time.monotonic()
            worker.start()
            from bot.channel.worker import last_heartbeat

            while last_heartbeat(engine) is None:
                if not worker.is_running():
                    raise SystemExit(f"the worker stopped:\n{worker.log_tail()}")
                time.sleep(0.2)
            worker_start_s = time.monotonic() - worker_started
            assert rasa.process and sandbox.process and worker.process
            pids = {"rasa": rasa.process.pid, "sandbox": sandbox.process.pid, "worker": worker.process.pid}
            watch = MemoryWatch(pids)
            watch.start()
            texts = traffic_texts()
            for rate in (float(r) for r in args.rates.split(",")):
                results.append(measure(engine, sandbox_url, texts, rate, args.seconds, args.drain, pids))
            watch.stop.set()
        finally:
            worker.stop()
            sandbox.stop()
            engine.dispose()
    report = {
        "benchmark": "throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": "sqlite",
        "worker_poll_interval_s": args.poll,
        "embedding_backend": base.kb_embedding_backend,
        "worker_start_s": round(worker_start_s, 1),
        "rss_peak_mb": watch.peak,
        "goal": {"throughput_per_s": 50, "latency_p95_s": 2.0},
        "rates": results,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

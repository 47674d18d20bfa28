"""Benchmark of the worker's X reads against X's per-user read limits: `carebot worker` runs for --seconds of real
time against a sandbox X that enforces the same access tier, and the sandbox counts every request.

    python -m bench.x_reads --json [--out FILE] [--tier pay-per-use] [--seconds 90]

The worker is the real one (its own process, tweepy over HTTP), with the project's knowledge base and no NLU
server: customer tweets wait for the NLU, which does not change what is read. A few customer tweets and a DM
arrive during the run. The report gives the requests per endpoint, what X's limits allow in the same time, and
how many 429 answers the worker met.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.common import emit, machine
from bot.channel.models import alerts
from bot.channel.x_limits import read_limits_for
from bot.db import make_engine, upgrade
from bot.nlu.service import free_port
from bot.sandbox.testing import running_sandbox

ROOT = Path(__file__).resolve().parent.parent


def run(tier: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="carebot-x-reads-") as scratch:
        directory = Path(scratch)
        database_url = f"sqlite:///{directory / 'carebot.db'}"
        upgrade(database_url)
        with running_sandbox(directory / "sandbox-x.db", tier=tier) as sandbox, httpx.Client(base_url=sandbox.url) as x:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
            env.update(
                CAREBOT_DATA_DIR=str(directory / "var"), CAREBOT_DATABASE_URL=database_url,
                CAREBOT_X_API_URL=sandbox.url, CAREBOT_X_TIER=tier, CAREBOT_X_SEARCH_QUERIES='["kestrel outage"]',
                CAREBOT_NLU_URL=f"http://127.0.0.1:{free_port()}", CAREBOT_NLU_TOKEN="none", CAREBOT_NLU_RETRIES="0",
                CAREBOT_NLU_TIMEOUT_S="1",
            )  # fmt: skip
            log = directory / "worker.log"
            with open(log, "wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "bot", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
                )
            try:
                started = time.monotonic()
                while x.get("/sandbox/stats").json()["requests"].get("mentions", 0) == 0:
                    if worker.poll() is not None or time.monotonic() - started > 120:
                        raise RuntimeError(f"the worker did not start reading:\n{log.read_text()[-2000:]}")
                    time.sleep(0.2)
                begun = time.monotonic()  # the run starts at the worker's first read, which it includes
                arrivals = [(seconds * share, n) for n, share in enumerate((0.1, 0.4, 0.7))]
                while (elapsed := time.monotonic() - begun) < seconds:
                    while arrivals and elapsed >= arrivals[0][0]:
                        _, n = arrivals.pop(0)
                        x.post("/sandbox/customer-tweets", json={"username": f"c{n}", "text": "@KestrelCare help"})
                        x.post("/sandbox/customer-dms", json={"username": f"c{n}", "text": "my account is locked"})
                    time.sleep(0.2)
                requests: dict[str, int] = x.get("/sandbox/stats").json()["requests"]
            finally:
                worker.terminate()
                worker.wait(timeout=30)
        engine = make_engine(database_url)
        with engine.connect() as conn:
            limited = conn.execute(select(func.count()).where(alerts.c.kind == "rate_limited")).scalar_one()
        engine.dispose()
    allowed = {
        endpoint: round(window.limit * seconds / window.length.total_seconds(), 2)
        for endpoint, window in read_limits_for(tier).items()
    }
    return {
        "benchmark": "x_reads",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "tier": tier,
        "seconds": seconds,
        "requests": {k: requests.get(k, 0) for k in ("mentions", "search", "dm_events", "users_me")},
        "allowed_in_the_same_time": allowed,
        "rate_limited_alerts": int(limited),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON (the only output)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--tier", default="pay-per-use", choices=["pay-per-use", "basic"])
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    emit(run(args.tier, args.seconds), args.out)


if __name__ == "__main__":
    main()

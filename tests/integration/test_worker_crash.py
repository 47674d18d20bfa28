"""The worker killed with SIGKILL at each named point, mid-way through its tweets, over real HTTP (tweepy against the
sandbox X), the real Rasa and the real MiniLM, on SQLite and on PostgreSQL. After a restart every customer tweet is
stored once and triaged, no tweet has two public replies from us, and every reply is sent or failed (DESIGN.md
invariants 1, 2); a tweet arriving after the restart is taken up too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from worker_support import (
    CUSTOMER_TWEETS,
    check_invariants,
    fresh_database,
    settled,
    small_training_data,
    start_worker,
    stop_worker,
    tweet,
    wait_for,
    worker_environment,
)

from bot.channel.failpoints import POINTS
from bot.sandbox.testing import running_sandbox

pytestmark = pytest.mark.rasa


# Every point on SQLite; on PostgreSQL the two that die inside a decision's or a send's bookkeeping, where the
# databases' transactions differ (the fetch and the post itself do not touch the database differently).
POSTGRESQL_POINTS = ("after_outbox_insert", "after_mark_sent")
CASES = [
    *(pytest.param("sqlite", point, id=f"sqlite-{point}") for point in POINTS),
    *(pytest.param("postgresql", point, id=f"postgresql-{point}", marks=pytest.mark.postgres)
      for point in POSTGRESQL_POINTS),
]  # fmt: skip


@pytest.fixture
def worker_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    return fresh_database(str(request.getfixturevalue("postgres_url")))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


@pytest.mark.parametrize(("worker_database", "point"), CASES, indirect=["worker_database"])
def test_a_worker_killed_at_any_point_loses_nothing_and_never_replies_twice(
    point: str, worker_database: str, sandbox: Any, rasa_server: Any, tmp_path: Path
) -> None:
    env = worker_environment(
        data_dir=tmp_path / "var", database_url=worker_database, sandbox_url=sandbox.url, rasa=rasa_server,
        training_dir=small_training_data(tmp_path / "training"),
    )  # fmt: skip
    log = tmp_path / "worker.log"
    customer_tweets = {tweet(sandbox.url, f"cust{n}", text)["id"] for n, text in enumerate(CUSTOMER_TWEETS)}
    # Small triage batches, and death the second time the point is reached: mid-way through the tweets, with some
    # already past the point. At the fetch it is the first time: the second read finds nothing new.
    nth = 1 if point == "after_fetch" else 2
    crashing = start_worker({**env, "CAREBOT_FAILPOINT": f"{point}@{nth}", "CAREBOT_WORKER_BATCH_SIZE": "3"}, log)
    try:
        assert crashing.wait(timeout=180) == -9, f"the worker did not die at {point}:\n{log.read_text()[-3000:]}"
    finally:
        stop_worker(crashing)
    worker = start_worker(env, log)
    try:
        expected = len(customer_tweets)
        wait_for(lambda: settled(worker_database, expected), 180, "the worker to settle", log, worker_database)
        # A tweet arriving after the restart is taken up from where the dead worker left off.
        customer_tweets.add(tweet(sandbox.url, "after", CUSTOMER_TWEETS[0])["id"])
        expected = len(customer_tweets)
        wait_for(lambda: settled(worker_database, expected), 180, "a new tweet to settle", log, worker_database)
    finally:
        stop_worker(worker)
    counts = check_invariants(worker_database, sandbox.url, customer_tweets)
    assert counts["stored"] == len(customer_tweets)
    faq_questions = sum("?" in text or "how do" in text for text in CUSTOMER_TWEETS)
    assert counts["sent"] >= faq_questions // 2, counts  # the bot did answer, crash or not


def test_a_fault_storm_on_every_endpoint_is_ridden_out_without_a_hot_loop(
    sandbox: Any, rasa_server: Any, tmp_path: Path
) -> None:
    # The storm tests the worker's handling of X, which is the same on both databases: SQLite only.
    database = fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    env = worker_environment(
        data_dir=tmp_path / "var", database_url=database, sandbox_url=sandbox.url, rasa=rasa_server,
        training_dir=small_training_data(tmp_path / "training"), CAREBOT_X_TIMEOUT_S="1", CAREBOT_X_MAX_RETRIES="1",
        CAREBOT_X_RATE_LIMIT_DEFAULT_WAIT_S="3",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    customer_tweets = {tweet(sandbox.url, f"storm{n}", text)["id"] for n, text in enumerate(CUSTOMER_TWEETS)}
    worker = start_worker(env, log)
    try:
        wait_for(lambda: settled(database, 0) and _requests(sandbox.url) > 0, 120, "the worker to start", log)
        for kind in ("500", "503", "429", "429_no_reset", "429_24h", "reset", "hang"):
            httpx.delete(f"{sandbox.url}/sandbox/stats")
            fault: dict[str, Any] = {"endpoint": "*", "kind": kind, "count": None, "hang_s": 3}
            if kind in ("429", "429_24h"):
                fault["reset_in_s"] = 3
            httpx.post(f"{sandbox.url}/sandbox/faults", json=fault).raise_for_status()
            more = {tweet(sandbox.url, f"{kind}x{n}", text)["id"] for n, text in enumerate(CUSTOMER_TWEETS[:3])}
            customer_tweets |= more
            time.sleep(6)
            seen = _requests(sandbox.url)
            httpx.delete(f"{sandbox.url}/sandbox/faults")
            # 6 s of storm with polls every 0.2 s and steps every 0.1 s: a hot loop makes several hundred requests.
            assert seen <= 60, f"{seen} requests to X in 6 s of {kind}"
        wait_for(lambda: settled(database, len(customer_tweets)), 240, "the worker to recover", log, database)
    finally:
        stop_worker(worker)
    check_invariants(database, sandbox.url, customer_tweets)


def _requests(sandbox_url: str) -> int:
    return int(httpx.get(f"{sandbox_url}/sandbox/stats").json()["total"])


def test_while_rasa_is_down_tweets_wait_unanswered_and_are_answered_once_it_is_back(
    sandbox: Any, rasa_server: Any, tmp_path: Path
) -> None:
    from bot.nlu.service import free_port
    from bot.nlu.testing import FakeRasaServer

    database = fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    env = worker_environment(
        data_dir=tmp_path / "var", database_url=database, sandbox_url=sandbox.url, rasa=rasa_server,
        training_dir=small_training_data(tmp_path / "training"), CAREBOT_WORKER_NLU_WAIT_S="600",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    customer_tweets = {tweet(sandbox.url, f"down{n}", text)["id"] for n, text in enumerate(CUSTOMER_TWEETS)}
    with FakeRasaServer(mode="slow", delay_s=30) as slow:
        for nlu_url in (f"http://127.0.0.1:{free_port()}", slow.url):  # nothing listening; then hanging
            nlu = {"CAREBOT_NLU_URL": nlu_url, "CAREBOT_NLU_TOKEN": slow.token, "CAREBOT_NLU_TIMEOUT_S": "1"}
            worker = start_worker({**env, **nlu}, log)
            try:
                wait_for(lambda: _states(database) == {"waiting"}, 120, "the tweets to wait for the NLU", log)
                time.sleep(3)
                assert _states(database) == {"waiting"}
            finally:
                stop_worker(worker)
    posts = httpx.get(f"{sandbox.url}/sandbox/posts").json()["data"]
    assert posts == []  # nothing was answered without the NLU
    worker = start_worker(env, log)  # the real Rasa again
    try:
        wait_for(lambda: settled(database, len(customer_tweets)), 180, "the worker to catch up", log, database)
    finally:
        stop_worker(worker)
    counts = check_invariants(database, sandbox.url, customer_tweets)
    assert counts["sent"] >= 3


def _states(database_url: str) -> set[str]:
    from sqlalchemy import select

    from bot.channel.models import inbound_tweets
    from bot.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(inbound_tweets.c.state)).scalars())
    finally:
        engine.dispose()

"""Support for the worker's integration tests: a fresh database (SQLite file or the test PostgreSQL), a small
copy of the training data (the real policy and tone guide, a few real FAQ entries, so each worker start embeds
little), the worker as a real process, customers tweeting into the sandbox X, and the invariants of DESIGN.md
checked in SQL and in the sandbox's post log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select, text

from bot.channel.models import inbound_tweets, outbox
from bot.db import all_metadata, make_engine, upgrade
from bot.settings import PROJECT_ROOT

FAQ_SLUGS = (
    "restart-router", "wifi-password-find", "esim-setup", "when-bill-arrives", "track-order",
    "roaming-charges", "puk-code", "service-status-page", "marketing-opt-out",
)  # fmt: skip

# What customers tweet in the worker tests: FAQ questions the bot answers, and tweets for people.
CUSTOMER_TWEETS = (
    "@KestrelCare how do I restart my Kestrel hub?",
    "@KestrelCare where do I find my wifi password",
    "@KestrelCare how do I set up an eSIM on my phone?",
    "@KestrelCare when does my bill arrive each month?",
    "@KestrelCare is the internet down in Leeds? nothing since 7am",
    "@KestrelCare can I talk to an actual human please",
    "@KestrelCare how do I track my order",
    "@KestrelCare my sim is asking for a PUK code, where do I find it?",
)


def fresh_database(url: str) -> str:
    """The database at `url`, migrated, with every carebot table empty."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            names = [
                t.name for metadata in all_metadata() for t in reversed(metadata.sorted_tables) if t.name != "kb_state"
            ]
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
            else:
                for name in names:
                    conn.execute(text(f"DELETE FROM {name}"))
            conn.execute(text("UPDATE kb_state SET version = 0"))
    finally:
        engine.dispose()
    return url


def small_training_data(directory: Path) -> Path:
    """The project's policy and tone guide with a few of its FAQ entries, and the texts no FAQ entry answers (the
    NLU examples and out_of_scope.yml, bot.desk.out_of_scope_texts): without them the answer model has no
    out-of-scope class and answers "broadband keeps dropping every evening" from the nearest of the few entries."""
    directory.mkdir(parents=True, exist_ok=True)
    source = PROJECT_ROOT / "training_data"
    for name in ("policy.yml", "tone.yml", "out_of_scope.yml"):
        shutil.copy(source / name, directory / name)
    shutil.copytree(source / "nlu", directory / "nlu", dirs_exist_ok=True)
    faq = yaml.safe_load((PROJECT_ROOT / "training_data" / "faq.yml").read_text())
    faq["entries"] = [e for e in faq["entries"] if e["slug"] in FAQ_SLUGS]
    (directory / "faq.yml").write_text(yaml.safe_dump(faq, allow_unicode=True, sort_keys=False))
    return directory


def worker_environment(
    *, data_dir: Path, database_url: str, sandbox_url: str, rasa: Any, training_dir: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env.update(
        CAREBOT_DATA_DIR=str(data_dir),
        CAREBOT_KB_EMBEDDING_CACHE_DIR=os.environ["CAREBOT_KB_EMBEDDING_CACHE_DIR"],
        CAREBOT_DATABASE_URL=database_url,
        CAREBOT_X_API_URL=sandbox_url,
        CAREBOT_NLU_URL=rasa.url,
        CAREBOT_NLU_TOKEN=rasa.settings.effective_nlu_token,
        CAREBOT_TRAINING_DATA_DIR=str(training_dir),
        CAREBOT_X_POLL_INTERVAL_S="0.2",
        CAREBOT_X_TIER="unmetered",  # polls every 0.2 s: the sandbox's unmetered mode, not X's read limits
        CAREBOT_X_RECONCILE_AFTER_S="0",
        CAREBOT_X_TIMEOUT_S="5",
        CAREBOT_X_BACKOFF_MAX_S="2",
        CAREBOT_KB_REFRESH_INTERVAL_S="0.2",
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT,
        )  # fmt: skip


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def tweet(sandbox_url: str, username: str, text_: str, in_reply_to: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "text": text_}
    if in_reply_to:
        body["in_reply_to_tweet_id"] = in_reply_to
    response = httpx.post(f"{sandbox_url}/sandbox/customer-tweets", json=body, timeout=10)
    response.raise_for_status()
    data = response.json()
    return data.get("data", data)


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    log_file: Path | None = None,
    database_url: str | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tail = log_file.read_text(errors="replace")[-3000:] if log_file and log_file.exists() else ""
    state = describe_state(database_url) if database_url else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{state}\n{tail}")


def describe_state(database_url: str) -> str:
    """The worker's tables in a few lines, for a failing test's message."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tweets = Counter(conn.execute(select(inbound_tweets.c.state)).scalars())
            replies = conn.execute(
                select(outbox.c.id, outbox.c.target_tweet_id, outbox.c.state, outbox.c.attempts,
                       outbox.c.next_attempt_at, outbox.c.last_error)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    unsettled = [tuple(row) for row in replies if row.state not in ("sent", "failed")]
    return f"inbound: {dict(tweets)}; outbox: {dict(Counter(r.state for r in replies))}; unsettled: {unsettled[:5]}"


def settled(database_url: str, expected_tweets: int) -> bool:
    """Every expected tweet is stored and triaged, and no reply is still on its way."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            done = conn.execute(
                select(func.count()).select_from(inbound_tweets).where(inbound_tweets.c.state == "done")
            ).scalar_one()
            open_replies = conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.state.not_in(("sent", "failed")))
            ).scalar_one()
        return done >= expected_tweets and open_replies == 0
    finally:
        engine.dispose()


def check_invariants(database_url: str, sandbox_url: str, customer_tweet_ids: set[str]) -> dict[str, int]:
    """Invariants 1 and 2, in SQL and in the sandbox's post log. Returns counts for the test's own asserts."""
    posts = httpx.get(f"{sandbox_url}/sandbox/posts", timeout=10).json()
    posts = posts.get("data", posts) if isinstance(posts, dict) else posts
    targets = [p.get("in_reply_to_tweet_id") or _replied_to(p) for p in posts]
    replies_per_target = Counter(target for target in targets if target)
    doubled = {target: n for target, n in replies_per_target.items() if n > 1}
    assert not doubled, f"tweets with more than one public reply from us: {doubled}"
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(inbound_tweets.c.tweet_id, inbound_tweets.c.state)).all()
            rows = conn.execute(select(outbox.c.target_tweet_id, outbox.c.state, outbox.c.posted_tweet_id)).all()
    finally:
        engine.dispose()
    stored_ids = [row.tweet_id for row in stored]
    assert len(stored_ids) == len(set(stored_ids))
    assert customer_tweet_ids <= set(stored_ids), f"lost tweets: {customer_tweet_ids - set(stored_ids)}"
    assert {row.state for row in stored} <= {"done"}, Counter(row.state for row in stored)
    assert {row.state for row in rows} <= {"sent", "failed"}, Counter(row.state for row in rows)
    posted_ids = {p["id"] for p in posts}
    for row in rows:
        if row.state == "sent":
            assert row.posted_tweet_id in posted_ids
            assert replies_per_target[row.target_tweet_id] == 1
    return {"stored": len(stored_ids), "replies": len(posts), "sent": sum(r.state == "sent" for r in rows)}


def _replied_to(post: dict[str, Any]) -> str | None:
    for ref in post.get("referenced_tweets") or ():
        if ref.get("type") == "replied_to":
            return str(ref["id"])
    return None

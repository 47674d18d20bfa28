"""Shared helpers for the web app's tests: the app over a migrated scratch SQLite database with the real handoff
queue and outbox, a small FAQ searched with the FakeEmbedder, accounts of every role, and escalated tweets."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import sessionmaker

from bot.channel.models import inbound_tweets, outbox
from bot.db import all_metadata, make_engine, upgrade
from bot.kb import KnowledgeBase
from bot.settings import Settings
from bot.web.accounts import RateLimit
from bot.web.app import Services, build_services, create_app
from handoff import Escalation, Handoff, transaction
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

PASSWORD = "correct horse battery"
# argon2id with small parameters: the tests check the logic, not the cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_tweet_ids = itertools.count(1_860_000_000_000_000_000)
_TEMPLATE: dict[str, Path] = {}

FAQ = (
    EntryContent(
        slug="reset-hub", question="How do I reset my Hub 4 router?",
        answer="Hold the reset button on the back of the Hub for 15 seconds until the light flashes orange.",
        paraphrases=("hub 4 factory reset", "router reset to factory settings"), tags=("router",), language="en",
    ),
    EntryContent(
        slug="pay-bill", question="How can I pay my bill?",
        answer="Pay by card or direct debit in the Kestrel app under Billing.",
        paraphrases=("ways to pay my bill", "pay the bill online"), tags=("billing",), language="en",
    ),
)  # fmt: skip


def migrated_copy(directory: Path) -> str:
    """A fresh, fully migrated SQLite database (migrated once per session, then copied)."""
    if "db" not in _TEMPLATE:
        template = directory.parent / "web-template.db"
        if not template.exists():
            upgrade(f"sqlite:///{template}")
        _TEMPLATE["db"] = template
    target = directory / "carebot.db"
    shutil.copyfile(_TEMPLATE["db"], target)
    return f"sqlite:///{target}"


@dataclass
class WebDesk:
    settings: Settings
    engine: Engine
    services: Services
    app: FastAPI
    kb: KnowledgeBase
    accounts: dict[str, int] = field(default_factory=dict)

    @property
    def handoff(self) -> Handoff:
        handoff: Handoff = self.services.handoff
        return handoff

    def add_user(self, username: str, role: str, name: str, initials: str | None = None, **agent: Any) -> int:
        agent_id = None
        if initials and role in ("agent", "lead"):
            agent_id = self.handoff.add_agent(username, name, initials, **agent).id
        account = self.services.accounts.create(
            username, PASSWORD, role=role, display_name=name, initials=initials, agent_id=agent_id
        )
        self.accounts[username] = account.id
        return account.id

    def client(self, address: str = "testclient") -> TestClient:
        """A browser; `address` is the client address the app sees (the TCP peer)."""
        return TestClient(self.app, base_url="http://testserver", follow_redirects=False, client=(address, 50000))

    def logged_in(self, username: str) -> TestClient:
        client = self.client()
        log_in(client, username)
        return client

    def escalate(self, text: str = "My broadband has been down since Monday!!", **overrides: Any) -> int:
        """A customer's tweet stored as the worker stores it, and its ticket."""
        tweet_id = str(next(_tweet_ids))
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "conversation_id": tweet_id, "tweet_id": tweet_id, "customer_id": "501", "customer_handle": "maya_k",
            "text": text, "created_at": now, "source": "mention", "band": "human",
            "reasons": ["an angry complaint"], "priority": 3, "skill": "general",
        }  # fmt: skip
        values.update(overrides)
        with transaction(self.engine) as conn:
            conn.execute(
                insert(inbound_tweets).values(
                    tweet_id=values["tweet_id"], source=values["source"], author_id=values["customer_id"],
                    author_username=values["customer_handle"], text=values["text"],
                    conversation_id=values["conversation_id"], created_at=now, fetched_at=now, state="done",
                    attempts=0,
                )  # fmt: skip
            )
            return self.handoff.escalate(conn, Escalation(**values))


    def bot_answered(self, conversation_id: str, question: str, answer: str, *, handle: str = "maya_k") -> None:
        """A thread before any ticket: the customer's question (tweet `conversation_id`) and the bot's sent
        answer to it, minutes ago, as the worker stores them."""
        now = datetime.now(UTC)
        with transaction(self.engine) as conn:
            conn.execute(
                insert(inbound_tweets).values(
                    tweet_id=conversation_id, source="mention", author_id="501", author_username=handle,
                    text=question, conversation_id=conversation_id, created_at=now - timedelta(minutes=9),
                    fetched_at=now, state="done", attempts=0,
                )
            )  # fmt: skip
            conn.execute(
                insert(outbox).values(
                    target_tweet_id=conversation_id, conversation_id=conversation_id, kind="faq_answer",
                    author="bot", text=answer, state="sent", attempts=1, posted_tweet_id=f"{conversation_id}1",
                    created_at=now - timedelta(minutes=8), updated_at=now, sent_at=now - timedelta(minutes=8),
                )
            )  # fmt: skip


def csrf_of(client: TestClient) -> str:
    response = client.get("/api/me")
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"username": username, "password": password, "login_token": token})


def emptied_postgres(url: str) -> str:
    """The test PostgreSQL database, migrated, with every carebot table empty."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            names = [t.name for metadata in all_metadata() for t in metadata.sorted_tables if t.name != "kb_state"]
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
            conn.execute(text("UPDATE kb_state SET version = 0"))
    finally:
        engine.dispose()
    return url


@contextmanager
def web_desk(
    directory: Path, *, rate_limit: RateLimit | None = None, postgres_url: str | None = None
) -> Iterator[WebDesk]:
    """The app on a scratch SQLite copy, or on the emptied test PostgreSQL database when `postgres_url` is given."""
    url = emptied_postgres(postgres_url) if postgres_url else migrated_copy(directory)
    settings = Settings(data_dir=directory / "var", database_url=url, nlu_token="test-token")
    engine = make_engine(url)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    for content in FAQ:
        service.create_draft(content, author="editor")
        service.publish(content.slug, author="editor")
    kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=0))
    services = build_services(
        settings, engine=engine, handoff=Handoff(engine, sla_minutes=60), knowledge_base=lambda: kb,
        rate_limit=rate_limit, password_hasher=FAST_HASHER, migrate=False,
    )  # fmt: skip
    app = create_app(settings, services=services)
    try:
        desk = WebDesk(settings, engine, services, app, kb)
        desk.add_user("ann", "agent", "Ann Brown", "AB")
        desk.add_user("bob", "agent", "Bob Okafor", "BO")
        desk.add_user("eve", "editor", "Eve Editor")
        desk.add_user("lee", "lead", "Lee Lead", "LL")
        yield desk
    finally:
        services.close()
        engine.dispose()

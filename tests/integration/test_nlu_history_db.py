"""The examples agents confirmed come from the desk's database (SQLite and PostgreSQL) through the training
export: resolved tickets with a kind of message, their first customer tweet cleaned, none with personal data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from worker_support import fresh_database

from bot.db import make_engine, upgrade
from bot.nlu.history import confirmed_examples, with_history
from bot.nlu.service import default_test_file
from bot.nlu.training import TrainingInputs
from bot.settings import Settings
from handoff import Escalation, transaction
from handoff.service import Handoff

_ids = itertools.count(1_890_000_000_000_000_000)


def _resolved_ticket(handoff: Handoff, engine: Engine, agent_id: int, text: str, intent: str | None) -> None:
    tweet_id = str(next(_ids))
    with transaction(engine) as conn:
        ticket_id = handoff.escalate(conn, Escalation(
            conversation_id=tweet_id, tweet_id=tweet_id, customer_id=tweet_id[-6:], customer_handle="cust",
            text=text, created_at=datetime.now(UTC), source="mention", band="human", reasons=["test"], priority=3,
            skill="general", intent=intent,
        ))  # fmt: skip
    handoff.claim(ticket_id, agent_id)
    with transaction(engine) as conn:
        handoff.record_outbound(conn, ticket_id, author="AB", text="Sorted. ^AB", outbox_id=None, kind="agent_reply")
        handoff.mark_answered(conn, ticket_id, agent_id)
    handoff.resolve(ticket_id, agent_id)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'carebot.db'}"
        upgrade(url)
    else:
        url = fresh_database(str(request.getfixturevalue("postgres_url")))
    return settings.model_copy(update={"database_url": url})


def test_the_confirmed_examples_come_from_the_desks_resolved_tickets_without_personal_data(
    desk_settings: Settings,
) -> None:
    engine = make_engine(desk_settings.effective_database_url)
    try:
        handoff = Handoff(engine, sla_minutes=60)
        agent = handoff.add_agent("ann", "Ann Agent", "AB", capacity=10, status="online")
        _resolved_ticket(
            handoff, engine, agent.id, "@KestrelCare you billed me for a router I sent back", "billing_issue"
        )
        _resolved_ticket(
            handoff, engine, agent.id, "@KestrelCare charged twice, ring me on 07700 900123", "billing_issue"
        )
        _resolved_ticket(handoff, engine, agent.id, "@KestrelCare no kind was ever given to this one", None)
    finally:
        engine.dispose()
    confirmed = confirmed_examples(desk_settings)
    assert confirmed == [("billing_issue", "you billed me for a router I sent back")]
    base = TrainingInputs.from_dir(desk_settings.training_data_dir)
    inputs, chosen = with_history(desk_settings, base, confirmed, default_test_file(desk_settings))
    assert chosen.kept == (("billing_issue", "you billed me for a router I sent back"),)
    assert "07700" not in inputs.nlu_files[-1].read_text()

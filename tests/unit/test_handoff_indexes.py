"""The queue stays fast with 10,000 open tickets because "take next", the queue view and the conversation lookups
walk indexes instead of scanning or sorting the tickets: checked on the statements the service really runs, with
SQLite's query planner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handoff_support import Desk, scratch_desk
from sqlalchemy import event

from handoff import transaction


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with scratch_desk(tmp_path) as scratch:
        yield scratch


def ticket_plans(desk: Desk, action: Any) -> list[str]:
    """The query plan of every SELECT on handoff_tickets that `action` runs."""
    statements: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM handoff_tickets" in statement:
            statements.append((statement, parameters))

    event.listen(desk.engine, "before_cursor_execute", remember)
    try:
        action()
    finally:
        event.remove(desk.engine, "before_cursor_execute", remember)
    assert statements, "the action ran no SELECT on the tickets"
    with desk.engine.connect() as conn:
        return [
            " | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements
        ]


def test_take_next_walks_the_waiting_index_in_queue_order(desk: Desk) -> None:
    desk.escalate()
    plans = ticket_plans(desk, lambda: desk.handoff.take_next(desk.ann))
    candidate = [plan for plan in plans if "ix_handoff_tickets_waiting" in plan]
    assert candidate, plans
    assert all("TEMP B-TREE" not in plan for plan in candidate)  # no sort of the waiting tickets


def test_the_queue_view_walks_the_open_index_in_queue_order(desk: Desk) -> None:
    desk.escalate()
    plans = ticket_plans(desk, lambda: desk.handoff.queue())
    assert any("ix_handoff_tickets_open" in plan and "TEMP B-TREE" not in plan for plan in plans), plans


def test_filing_a_tweet_finds_the_conversations_tickets_by_index(desk: Desk) -> None:
    def escalate() -> None:
        with transaction(desk.engine) as conn:
            desk.handoff.escalate(conn, desk.escalation("c-7"))

    plans = ticket_plans(desk, escalate)
    # The open ticket by the partial unique index, the latest closed one by the conversation index, each with the
    # ticket a DM conversation joined by its index (handoff_tickets.dm_conversation_id): no scans.
    assert len(plans) == 2 and all("SCAN handoff_tickets" not in plan for plan in plans), plans
    assert "USING INDEX uq_handoff_tickets_open_conversation" in plans[0], plans
    assert "USING INDEX ix_handoff_tickets_conversation" in plans[1], plans
    assert all("USING INDEX ix_handoff_tickets_dm_conversation" in plan for plan in plans), plans

"""The queue: escalations become tickets (one open per conversation), customers reopen closed ones, "take next"
follows priority, SLA deadline and age within the agent's skills and capacity, and the queue view shows holders,
viewers and waiting times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from handoff_support import T0, Desk, scratch_desk
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from handoff import AgentNotFound, Conflict, InvalidInput, TicketNotFound, transaction
from handoff.models import messages, tickets


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with scratch_desk(tmp_path, sla_minutes=30) as scratch:
        yield scratch


def message_count(desk: Desk) -> int:
    with desk.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages)).scalar_one()


# ------------------------------------------------------------------ escalation
def test_an_escalation_becomes_a_queued_ticket_with_its_tweet_and_a_deadline(desk: Desk) -> None:
    escalation = desk.escalation(band="approve", draft_reply="Here is how ^bot", faq_entry_id=7, intent="faq")
    with transaction(desk.engine) as conn:
        ticket_id = desk.handoff.escalate(conn, escalation)
        open_ticket = desk.handoff.open_ticket_for(conn, escalation.conversation_id)
        assert open_ticket is not None and open_ticket.id == ticket_id
    detail = desk.handoff.ticket(ticket_id)
    ticket = detail.ticket
    assert (ticket.state, ticket.agent_id, ticket.band, ticket.draft_reply) == (
        "queued",
        None,
        "approve",
        escalation.draft_reply,
    )
    assert ticket.sla_due_at == escalation.created_at + timedelta(minutes=30)
    assert ticket.reasons == ("an angry complaint",)
    assert [(m.direction, m.tweet_id, m.author, m.text) for m in detail.messages] == [
        ("in", escalation.tweet_id, "maya_k", escalation.text)
    ]
    assert [e.action for e in detail.audit] == ["created"]


def test_the_open_ticket_of_a_conversation_gets_later_tweets_and_the_higher_priority(desk: Desk) -> None:
    first = desk.escalate("c1", priority=3, reasons=["a complaint"])
    assert desk.escalate("c1", priority=1, reasons=["anger", "a complaint"]) == first
    assert desk.escalate("c1", priority=4, reasons=["a question"]) == first
    ticket = desk.handoff.ticket(first).ticket
    assert ticket.priority == 1  # raised, and never lowered again
    assert ticket.reasons == ("a complaint", "anger", "a question")
    assert len(desk.handoff.ticket(first).messages) == 3
    raised = [e for e in desk.handoff.audit(ticket_id=first) if e.action == "escalated" and "priority" in e.details]
    assert [e.details["priority"] for e in raised] == [{"from": 3, "to": 1}]


def test_escalating_the_same_tweet_again_files_it_once(desk: Desk) -> None:
    escalation = desk.escalation()
    with transaction(desk.engine) as conn:
        first = desk.handoff.escalate(conn, escalation)
    with transaction(desk.engine) as conn:
        assert desk.handoff.escalate(conn, escalation) == first
    assert message_count(desk) == 1


def test_a_customer_writing_again_reopens_the_closed_ticket_with_a_new_deadline(desk: Desk) -> None:
    ticket = desk.ticket_in("resolved")
    desk.clock.advance(hours=5)
    assert desk.escalate(ticket.conversation_id, priority=2) == ticket.id
    reopened = desk.handoff.ticket(ticket.id)
    assert (reopened.ticket.state, reopened.ticket.agent_id, reopened.ticket.priority) == ("reopened", None, 2)
    assert reopened.ticket.sla_due_at == desk.clock.now + timedelta(minutes=30)
    assert reopened.ticket.first_response_at is None and reopened.ticket.resolved_at is None
    assert [m.direction for m in reopened.messages] == ["in", "out", "in"]  # the history stays
    assert reopened.audit[-1].action == "reopened"
    # It waits in the queue like a new one.
    assert desk.take(desk.bob).id == ticket.id


def test_customer_messages_join_only_an_open_ticket(desk: Desk) -> None:
    ticket = desk.ticket_in("answered")
    assert ticket.waiting_since is None
    desk.clock.advance(minutes=3)
    with transaction(desk.engine) as conn:
        added = desk.handoff.add_customer_message(
            conn, ticket.conversation_id, tweet_id="9001", author="maya_k", text="still down", created_at=desk.clock()
        )
        assert added == ticket.id
        assert (
            desk.handoff.add_customer_message(
                conn, "no-such-conversation", tweet_id="9002", author="x", text="hi", created_at=desk.clock()
            )
            is None
        )
    after = desk.handoff.ticket(ticket.id).ticket
    assert (after.state, after.agent_id) == ("claimed", ticket.agent_id)  # the holder owes them a reply again
    assert after.waiting_since == desk.clock.now  # the customer waits again
    assert desk.handoff.audit(ticket_id=ticket.id, limit=1)[0].action == "customer_replied"
    desk.handoff.resolve(ticket.id, desk.ann)
    with transaction(desk.engine) as conn:
        closed = desk.handoff.add_customer_message(
            conn, ticket.conversation_id, tweet_id="9003", author="maya_k", text="thanks", created_at=desk.clock()
        )
        assert closed is None
        assert desk.handoff.open_ticket_for(conn, ticket.conversation_id) is None
    assert [m.tweet_id for m in desk.handoff.ticket(ticket.id).messages if m.direction == "in"][-1] == "9001"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("priority", 0, "priority must be"), ("priority", 5, "priority must be"), ("source", "email", "source must"),
     ("band", "auto", "band must"), ("conversation_id", "", "conversation_id"), ("customer_handle", "x" * 65, "65")],
)  # fmt: skip
def test_a_bad_escalation_is_refused_clearly_and_stores_nothing(
    desk: Desk, field: str, value: object, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words), transaction(desk.engine) as conn:
        desk.handoff.escalate(conn, desk.escalation(None, **{field: value}))
    assert desk.handoff.queue() == []
    assert message_count(desk) == 0


def test_the_database_holds_at_most_one_open_ticket_per_conversation(desk: Desk) -> None:
    ticket = desk.ticket_in("queued")
    with desk.engine.connect() as conn:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket.id)).mappings().one()
        second = {**row, "id": None, "state": "claimed", "agent_id": desk.ann}
        with pytest.raises(IntegrityError):
            conn.execute(insert(tickets).values(second))


# ------------------------------------------------------------------ take next
def test_take_next_follows_priority_then_sla_deadline_then_age(desk: Desk) -> None:
    routine_old = desk.escalate(priority=4)
    desk.clock.advance(minutes=1)
    urgent_late = desk.escalate(priority=1, created_at=desk.clock() + timedelta(minutes=20))
    urgent_early = desk.escalate(priority=1, created_at=desk.clock() - timedelta(minutes=20))
    normal_a = desk.escalate(priority=2)
    desk.clock.advance(seconds=1)
    normal_b = desk.escalate(priority=2, created_at=desk.escalation().created_at - timedelta(seconds=1))
    expected = [urgent_early, urgent_late, normal_a, normal_b, routine_old]
    assert [row.ticket.id for row in desk.handoff.queue()] == expected
    desk.handoff.set_capacity(desk.ann, 10, by="lead")
    taken = [desk.handoff.take_next(desk.ann) for _ in expected]
    assert [t.id for t in taken if t] == expected
    assert desk.handoff.take_next(desk.ann) is None


def test_take_next_gives_only_tickets_of_the_agents_skills_and_everything_to_generalists(desk: Desk) -> None:
    billing = desk.escalate(skill="billing", priority=4)
    mobile = desk.escalate(skill="mobile", priority=1)
    specialist = desk.handoff.add_agent("cai", "Cai Dube", "CD", skills=["billing"]).id
    assert desk.take(specialist).id == billing
    assert desk.handoff.take_next(specialist) is None  # the mobile ticket is not for them
    assert desk.take(desk.ann).id == mobile  # no skills listed: every skill


def test_nobody_takes_more_than_their_capacity(desk: Desk) -> None:
    for _ in range(4):
        desk.escalate()
    desk.handoff.set_capacity(desk.ann, 2, by="lead")
    first = desk.take(desk.ann)
    desk.handoff.take_next(desk.ann)
    with pytest.raises(Conflict, match="capacity is 2"):
        desk.handoff.take_next(desk.ann)
    waiting = [row.ticket.id for row in desk.handoff.queue(states=["queued"])]
    with pytest.raises(Conflict, match="capacity"):
        desk.handoff.claim(waiting[0], desk.ann)
    # Answered tickets still count; releasing one frees a slot.
    desk.answer(first.id, desk.ann)
    with pytest.raises(Conflict):
        desk.handoff.take_next(desk.ann)
    desk.handoff.resolve(first.id, desk.ann)
    assert desk.handoff.take_next(desk.ann) is not None
    assert [r.open_tickets for r in desk.handoff.roster() if r.agent.id == desk.ann] == [2]


def test_claim_is_refused_for_a_taken_ticket_and_for_unknown_ones(desk: Desk) -> None:
    ticket_id = desk.escalate()
    desk.handoff.claim(ticket_id, desk.bob)
    with pytest.raises(Conflict, match="already taken by Bob Okafor \\(BO\\)"):
        desk.handoff.claim(ticket_id, desk.ann)
    with pytest.raises(TicketNotFound, match="no ticket 999"):
        desk.handoff.claim(999, desk.ann)


def test_releasing_puts_the_ticket_back_for_the_next_agent(desk: Desk) -> None:
    ticket_id = desk.escalate()
    desk.handoff.take_next(desk.ann)
    released = desk.handoff.release(ticket_id, desk.ann)
    assert (released.state, released.agent_id, released.claimed_at) == ("queued", None, None)
    assert desk.take(desk.bob).id == ticket_id


# ------------------------------------------------------------------ drafts, replies, delivery
def test_rejecting_a_draft_makes_the_ticket_human_and_keeps_the_draft_in_the_audit(desk: Desk) -> None:
    ticket_id = desk.escalate(band="approve", draft_reply="Restart the router ^bot")
    with pytest.raises(Conflict, match="Take ticket"):
        desk.handoff.reject_draft(ticket_id, desk.ann)
    desk.handoff.claim(ticket_id, desk.ann)
    rejected = desk.handoff.reject_draft(ticket_id, desk.ann)
    assert (rejected.band, rejected.draft_reply, rejected.state) == ("human", None, "claimed")
    assert desk.handoff.audit(ticket_id=ticket_id, limit=1)[0].details == {"draft": "Restart the router ^bot"}
    with pytest.raises(Conflict, match="no drafted reply"):
        desk.handoff.reject_draft(ticket_id, desk.ann)


def test_replies_are_messages_whose_delivery_follows_the_outbox(desk: Desk) -> None:
    ticket_id = desk.escalate()
    desk.handoff.claim(ticket_id, desk.ann)
    with transaction(desk.engine) as conn:
        desk.handoff.record_outbound(conn, ticket_id, author="AB", text="On it ^AB", outbox_id=41, kind="agent_reply")
        desk.handoff.mark_answered(conn, ticket_id, desk.ann)
        desk.handoff.record_outbound(conn, ticket_id, author="bot", text="Ack ^bot", outbox_id=42, kind="handoff_ack")
    with transaction(desk.engine) as conn:
        desk.handoff.mark_delivery(conn, 41, "sent", "1900000000000000001")
        desk.handoff.mark_delivery(conn, 41, "sent", "1900000000000000001")  # told twice: recorded once
        desk.handoff.mark_delivery(conn, 42, "failed", None)
        desk.handoff.mark_delivery(conn, 77, "sent", "1900000000000000002")  # not a ticket's reply: ignored
        with pytest.raises(InvalidInput, match="delivery must be"):
            desk.handoff.mark_delivery(conn, 41, "lost", None)
    outbound = {m.outbox_id: m for m in desk.handoff.ticket(ticket_id).messages if m.direction == "out"}
    assert (outbound[41].delivery, outbound[41].tweet_id) == ("sent", "1900000000000000001")
    assert (outbound[42].delivery, outbound[42].tweet_id) == ("failed", None)
    actions = [(e.actor, e.action) for e in reversed(desk.handoff.audit(ticket_id=ticket_id))]
    assert actions == [
        ("bot", "created"), ("ann", "claimed"), ("ann", "replied"), ("ann", "answered"), ("bot", "replied"),
        ("bot", "delivered"), ("bot", "delivery_failed"),
    ]  # fmt: skip
    reply = desk.handoff.audit(ticket_id=ticket_id)[-3]
    assert reply.details["text"] == "On it ^AB" and reply.details["kind"] == "agent_reply"


# ------------------------------------------------------------------ the queue view
def test_the_queue_shows_holder_viewers_waiting_time_and_deadline(desk: Desk) -> None:
    held = desk.escalate(priority=1, text="first <script>alert(1)</script>")
    waiting = desk.escalate(priority=2)
    with transaction(desk.engine) as conn:
        conv = desk.handoff.ticket(waiting).ticket.conversation_id
        desk.handoff.add_customer_message(conn, conv, tweet_id="77", author="maya_k", text="hello??", created_at=T0)
    desk.handoff.claim(held, desk.ann)
    desk.handoff.record_view(waiting, desk.bob)
    desk.handoff.record_view(waiting, desk.ann)
    desk.clock.advance(seconds=40)
    desk.handoff.record_view(waiting, desk.bob)  # a second look refreshes, never duplicates
    desk.clock.advance(seconds=30)

    rows = {row.ticket.id: row for row in desk.handoff.queue()}
    holder = rows[held].holder
    assert holder is not None and holder.initials == "AB"
    assert rows[held].last_customer_text == "first <script>alert(1)</script>"  # stored as written
    assert rows[waiting].holder is None
    assert rows[waiting].viewers == ("BO",)  # Ann looked 70 s ago: no longer viewing
    assert rows[waiting].last_customer_text == "hello??"
    assert rows[waiting].waiting_seconds == 70
    assert rows[waiting].sla_seconds_left == 30 * 60 - 70
    assert not rows[waiting].sla_breached
    desk.clock.advance(minutes=30)
    assert desk.handoff.queue(states=["queued"])[0].sla_breached
    assert desk.handoff.ticket(waiting).viewers == ()
    with pytest.raises(InvalidInput, match="unknown ticket states: done"):
        desk.handoff.queue(states=["done"])


def test_the_queue_lists_only_the_states_asked_for_and_at_most_the_limit(desk: Desk) -> None:
    ids = [desk.escalate() for _ in range(5)]
    desk.handoff.claim(ids[0], desk.ann)
    assert [r.ticket.id for r in desk.handoff.queue(states=["claimed"])] == [ids[0]]
    assert len(desk.handoff.queue(limit=3)) == 3
    desk.handoff.return_to_bot(ids[1], desk.bob)
    assert ids[1] not in [r.ticket.id for r in desk.handoff.queue()]


def test_customer_history_lists_their_other_tickets_newest_first(desk: Desk) -> None:
    old = desk.escalate(customer_id="42")
    desk.clock.advance(days=1)
    other = desk.escalate(customer_id="43")
    current = desk.escalate(customer_id="42")
    desk.clock.advance(days=1)
    newest = desk.escalate(customer_id="42")
    assert [t.id for t in desk.handoff.customer_history("42", exclude_ticket=current)] == [newest, old]
    assert other not in [t.id for t in desk.handoff.customer_history("42")]


def test_a_customer_message_told_twice_is_stored_once(desk: Desk) -> None:
    ticket = desk.ticket_in("claimed")
    for _ in range(2):
        with transaction(desk.engine) as conn:
            added = desk.handoff.add_customer_message(
                conn, ticket.conversation_id, tweet_id="9100", author="maya_k", text="hello?", created_at=desk.clock()
            )
            assert added == ticket.id
    assert [m.tweet_id for m in desk.handoff.ticket(ticket.id).messages].count("9100") == 1


def test_times_without_a_zone_are_taken_as_utc(desk: Desk) -> None:
    ticket_id = desk.escalate(created_at=T0.replace(tzinfo=None))
    ticket = desk.handoff.ticket(ticket_id).ticket
    assert ticket.sla_due_at == T0 + timedelta(minutes=30)
    assert ticket.created_at.tzinfo is not None


def test_views_of_unknown_tickets_or_agents_are_refused(desk: Desk) -> None:
    ticket_id = desk.escalate()
    with pytest.raises(TicketNotFound):
        desk.handoff.record_view(12345, desk.ann)
    with pytest.raises(AgentNotFound):
        desk.handoff.record_view(ticket_id, 12345)
    with pytest.raises(TicketNotFound):
        desk.handoff.ticket(12345)

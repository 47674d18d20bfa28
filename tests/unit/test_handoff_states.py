"""The ticket state machine: every action from every state, legal ones move the ticket and are audited, illegal
ones are refused with a Conflict that says why and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from handoff_support import Desk, scratch_desk

from handoff import Conflict, Ticket, transaction
from handoff import states as sm
from handoff.incidents import Incidents


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with scratch_desk(tmp_path) as scratch:
        yield scratch


def perform(desk: Desk, action: str, ticket: Ticket) -> None:
    """Ann (who holds the held tickets) does `action`; a lead reassigns to Bob; the customer writes to reopen."""
    handoff = desk.handoff
    if action == "claim":
        handoff.claim(ticket.id, desk.ann)
    elif action == "release":
        handoff.release(ticket.id, desk.ann)
    elif action == "answer":
        desk.answer(ticket.id, desk.ann)
    elif action == "resolve":
        handoff.resolve(ticket.id, desk.ann)
    elif action == "return_to_bot":
        handoff.return_to_bot(ticket.id, desk.ann)
    elif action == "reassign":
        handoff.reassign(ticket.id, desk.bob, by="lead.lee")
    elif action == "reopen":
        desk.escalate(ticket.conversation_id)
    elif action == "resolve_incident":  # a lead resolves the incident the ticket is linked to (only open ones link)
        incidents = Incidents(desk.engine, clock=desk.clock)
        incident = incidents.create("Fibre outage, Leeds", by="lee")
        if ticket.is_open:
            incidents.link(incident.id, [ticket.id], by="lee")
        with transaction(desk.engine) as conn:
            incidents.resolve_ticket(conn, incident.id, ticket.id, by="lee")
    else:
        raise AssertionError(action)


# Claiming a ticket you already hold changes nothing; the customer writing to an open ticket only adds a message,
# except to an answered one, which then owes them a reply again.
NO_CHANGE = {("claim", "claimed"), ("claim", "answered")} | {
    ("reopen", state) for state in sm.OPEN_STATES if state != "answered"
}


@pytest.mark.parametrize("state", sm.STATES)
# requeue is no action on one ticket: disabling an agent requeues what it holds (test_handoff_roster.py).
@pytest.mark.parametrize("action", [action for action in sm.ACTIONS if action != "requeue"])
def test_every_action_from_every_state(desk: Desk, action: str, state: str) -> None:
    ticket = desk.ticket_in(state)
    events_before = len(desk.handoff.audit(ticket_id=ticket.id))
    messages_before = len(desk.handoff.ticket(ticket.id).messages)
    expected = sm.next_state(action, state)

    if (action, state) in NO_CHANGE:
        perform(desk, action, ticket)
        after = desk.handoff.ticket(ticket.id).ticket
        assert after.state == state
        assert after.agent_id == ticket.agent_id
    elif expected is None:
        with pytest.raises(Conflict) as refused:
            perform(desk, action, ticket)
        assert f"Ticket {ticket.id}" in str(refused.value)
        after = desk.handoff.ticket(ticket.id).ticket
        assert (after.state, after.version, after.agent_id) == (state, ticket.version, ticket.agent_id)
        assert len(desk.handoff.audit(ticket_id=ticket.id)) == events_before
        assert len(desk.handoff.ticket(ticket.id).messages) == messages_before  # a refused reply is not kept
    else:
        perform(desk, action, ticket)
        after = desk.handoff.ticket(ticket.id).ticket
        assert after.state == expected
        assert after.version > ticket.version
        newest = desk.handoff.audit(ticket_id=ticket.id, limit=1)[0]
        if (action, state) == ("answer", "answered"):
            assert newest.action == "replied"  # a further reply: audited as a reply, the state stays
        else:
            assert (newest.details.get("from"), newest.details.get("to")) == (state, expected)
        if expected in sm.HELD_STATES:
            assert after.agent_id == (desk.bob if action == "reassign" else desk.ann)
        if expected in sm.CLAIMABLE_STATES:
            assert after.agent_id is None


def test_the_table_only_names_known_states_and_open_states_are_the_ones_a_human_owns() -> None:
    for (action, from_state), to_state in sm.TRANSITIONS.items():
        assert {from_state, to_state} <= set(sm.STATES)
        assert action in sm.ACTION_WORDS
    assert set(sm.OPEN_STATES) | set(sm.CLOSED_STATES) == set(sm.STATES)
    assert not set(sm.OPEN_STATES) & set(sm.CLOSED_STATES)
    # Only a returning customer takes a closed ticket out of its closed state.
    leaving_closed = {action for (action, state) in sm.TRANSITIONS if state in sm.CLOSED_STATES}
    assert leaving_closed == {"reopen"}


def test_refusals_read_as_sentences_for_agents() -> None:
    assert sm.refusal("resolve", "claimed", 12) == "Ticket 12 cannot be resolved: it is taken and not yet answered."


def test_a_ticket_held_by_somebody_else_cannot_be_claimed_released_answered_resolved_or_returned(desk: Desk) -> None:
    claimed = desk.ticket_in("claimed", agent_id=desk.bob)
    for attempt in (
        lambda: desk.handoff.claim(claimed.id, desk.ann),
        lambda: desk.handoff.release(claimed.id, desk.ann),
        lambda: desk.answer(claimed.id, desk.ann),
        lambda: desk.handoff.return_to_bot(claimed.id, desk.ann),
    ):
        with pytest.raises(Conflict, match="Bob Okafor \\(BO\\)"):
            attempt()
    answered = desk.ticket_in("answered", agent_id=desk.bob)
    with pytest.raises(Conflict, match="held by Bob Okafor"):
        desk.handoff.resolve(answered.id, desk.ann)
    assert desk.handoff.ticket(claimed.id).ticket.agent_id == desk.bob
    assert desk.handoff.ticket(answered.id).ticket.state == "answered"


def test_any_agent_may_return_a_waiting_ticket_to_the_bot(desk: Desk) -> None:
    ticket = desk.ticket_in("queued")
    returned = desk.handoff.return_to_bot(ticket.id, desk.bob)
    assert returned.state == "returned_to_bot"
    assert desk.handoff.audit(ticket_id=ticket.id, limit=1)[0].actor == "bob"


def test_answering_sets_the_first_response_once_and_stops_the_wait(desk: Desk) -> None:
    ticket = desk.ticket_in("claimed")
    assert ticket.waiting_since is not None
    desk.clock.advance(minutes=10)
    desk.answer(ticket.id, desk.ann)
    first = desk.handoff.ticket(ticket.id).ticket
    assert first.first_response_at == desk.clock.now
    assert first.waiting_since is None
    desk.clock.advance(minutes=5)
    desk.answer(ticket.id, desk.ann, "And a second reply")
    second = desk.handoff.ticket(ticket.id).ticket
    assert second.state == "answered"
    assert second.first_response_at == first.first_response_at


def test_the_partial_indexes_name_the_same_states_as_the_state_machine() -> None:
    from handoff.models import OPEN_CONDITION, WAITING_CONDITION

    def listed(condition: str) -> tuple[str, ...]:
        return tuple(part.strip(" '") for part in condition.split("(", 1)[1].rstrip(")").split(","))

    assert listed(OPEN_CONDITION) == sm.OPEN_STATES
    assert listed(WAITING_CONDITION) == sm.CLAIMABLE_STATES

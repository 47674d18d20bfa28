"""Incidents in the handoff queue (handoff/incidents.py), on SQLite and PostgreSQL: creating and editing one (audited),
linking tickets (one incident per ticket, open tweets addressed to us only), the similar tickets it offers, an
update marking its tickets answered, and resolving it: every open ticket resolved from whatever state it is in,
the incident only once none is open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from handoff_support import Clock, Desk, migrated_copy
from sqlalchemy import func, select
from web_support import emptied_postgres

from bot.db import make_engine
from handoff import Conflict, Handoff, InvalidInput, transaction
from handoff.incidents import IncidentNotFound, Incidents, keyword_list, words_of
from handoff.models import audit_events, incident_tickets

LEEDS = "@KestrelCare no internet in Leeds since 7am, fibre light is red"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "postgresql":
        url = emptied_postgres(request.getfixturevalue("postgres_url"))
    else:
        url = migrated_copy(tmp_path)
    engine = make_engine(url)
    clock = Clock()
    handoff = Handoff(engine, clock=clock)
    try:
        scratch = Desk(engine, handoff, clock)
        scratch.ann = handoff.add_agent("ann", "Ann Brown", "AB", capacity=5).id
        scratch.bob = handoff.add_agent("bob", "Bob Okafor", "BO", capacity=5).id
        yield scratch
    finally:
        engine.dispose()


@pytest.fixture
def incidents(desk: Desk) -> Incidents:
    return Incidents(desk.engine, clock=desk.clock)


def _events(desk: Desk, action: str) -> list[dict[str, object]]:
    with desk.engine.connect() as conn:
        rows = conn.execute(select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.id))
        return [{"actor": r.actor, "ticket_id": r.ticket_id, **dict(r.details)} for r in rows]


def test_an_incident_is_created_and_edited_with_every_change_audited(desk: Desk, incidents: Incidents) -> None:
    made = incidents.create(" Fibre outage, Leeds ", status_note="Engineers on site.", keywords="Leeds, fibre,, leeds",
                            by="lee")  # fmt: skip
    assert (made.title, made.state, made.keywords, made.status_note) == (
        "Fibre outage, Leeds", "open", ("Leeds", "fibre"), "Engineers on site."
    )  # fmt: skip
    assert _events(desk, "incident_created") == [
        {"actor": "lee", "ticket_id": None, "incident_id": made.id, "title": "Fibre outage, Leeds",
         "keywords": ["Leeds", "fibre"]}
    ]  # fmt: skip
    desk.clock.advance(minutes=5)
    edited = incidents.edit(made.id, by="lee", status_note="Fix expected by 18:00.", keywords=["leeds", "LS6"])
    assert edited.status_note == "Fix expected by 18:00." and edited.keywords == ("leeds", "LS6")
    assert edited.updated_at == desk.clock.now
    (note,) = _events(desk, "incident_note_changed")
    assert (note["from"], note["to"]) == ("Engineers on site.", "Fix expected by 18:00.")
    assert len(_events(desk, "incident_keywords_changed")) == 1
    incidents.edit(made.id, by="lee", status_note="Fix expected by 18:00.")  # the same note: nothing to audit
    assert len(_events(desk, "incident_note_changed")) == 1


@pytest.mark.parametrize(
    ("title", "keywords", "message"),
    [
        ("   ", "", "title must not be empty"),
        ("x" * 121, "", "at most 120"),
        ("Outage \u202eLeeds", "", "invisible formatting"),
        ("Outage", ",".join(f"word{n}" for n in range(21)), "at most 20 keywords"),
        ("Outage", "fine, \u200bhidden", "invisible formatting"),
        ("Outage", "y" * 41, "longer than 40"),
        ("Outage", "!!!", "no letters or digits"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    desk: Desk, incidents: Incidents, title: str, keywords: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        incidents.create(title, keywords=keywords, by="lee")
    assert incidents.overview() == []


def test_words_and_keywords_are_matched_without_case_or_width_differences() -> None:
    assert words_of("NO Internet in ＬＥＥＤＳ… it’s down!!") == ["no", "internet", "in", "leeds", "it's", "down"]
    assert keyword_list(["Leeds", "leeds ", "no  internet"]) == ("Leeds", "no internet")


def test_open_mention_tickets_are_linked_and_the_rest_refused_with_reasons(desk: Desk, incidents: Incidents) -> None:
    incident = incidents.create("Fibre outage, Leeds", keywords=["leeds"], by="lee")
    other = incidents.create("Mobile outage, York", by="lee")
    queued = desk.escalate(text=LEEDS)
    claimed = desk.ticket_in("claimed").id
    resolved = desk.ticket_in("resolved").id
    dm = desk.escalate(source="dm", text="no internet in Leeds")
    search = desk.escalate(source="search", text="Kestrel down in Leeds again")
    elsewhere = desk.escalate(text="no signal in York")
    assert incidents.link(other.id, [elsewhere], by="lee").linked == [elsewhere]

    result = incidents.link(incident.id, [queued, claimed, resolved, dm, search, elsewhere, queued, 999_999], by="lee")
    assert result.linked == [queued, claimed]
    assert "resolved: only open tickets" in result.refused[resolved]
    assert "a direct message" in result.refused[dm] and "a keyword-search hit" in result.refused[search]
    assert f"in incident {other.id} already" in result.refused[elsewhere]
    assert result.refused[999_999] == "There is no ticket 999999."
    again = incidents.link(incident.id, [queued], by="lee")
    assert again.linked == [] and "in this incident already" in again.refused[queued]
    assert [event["ticket_id"] for event in _events(desk, "incident_linked")] == [elsewhere, queued, claimed]
    assert incidents.incident_of(queued) == incidents.get(incident.id)
    assert [t.ticket.id for t in incidents.tickets(incident.id)] == [queued, claimed]
    assert incidents.tickets(incident.id)[0].customer_text == LEEDS

    incidents.unlink(incident.id, claimed, by="lee")
    assert [t.ticket.id for t in incidents.tickets(incident.id)] == [queued]
    assert _events(desk, "incident_unlinked")[0]["ticket_id"] == claimed
    with pytest.raises(Conflict, match=f"Ticket {claimed} is not in incident"):
        incidents.unlink(incident.id, claimed, by="lee")
    assert incidents.link(other.id, [claimed], by="lee").linked == [claimed]  # free for another incident now
    with pytest.raises(IncidentNotFound):
        incidents.link(424242, [queued], by="lee")


def test_a_ticket_is_in_one_incident_at_most_even_when_the_database_is_asked_directly(desk: Desk) -> None:
    incidents = Incidents(desk.engine, clock=desk.clock)
    first, second = (incidents.create(name, by="lee") for name in ("One", "Two"))
    ticket = desk.escalate(text=LEEDS)
    incidents.link(first.id, [ticket], by="lee")
    with pytest.raises(Exception, match="(?i)unique|duplicate"), transaction(desk.engine) as conn:
        conn.execute(
            incident_tickets.insert().values(
                incident_id=second.id, ticket_id=ticket, linked_by="x", linked_at=desk.clock.now
            )
        )
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incident_tickets)).scalar_one() == 1


def test_similar_open_tickets_are_offered_by_keyword_and_by_the_words_linked_tickets_share(
    desk: Desk, incidents: Incidents
) -> None:
    incident = incidents.create("Fibre outage, Leeds", keywords=["leeds", "no internet", "outage"], by="lee")
    linked = [
        desk.escalate(text="@KestrelCare fibre down in LS6, Leeds, router light red"),
        desk.escalate(text="@KestrelCare LS6 fibre not working, red router light"),
        desk.escalate(text="@KestrelCare Leeds: LS6 fibre gone"),
    ]
    incidents.link(incident.id, linked, by="lee")
    assert set(incidents.shared_words(incident.id)) >= {"fibre", "ls6"}
    by_keyword = desk.escalate(text="@KestrelCare NO INTERNET at all today")
    plural = desk.escalate(text="@KestrelCare any news on the outages?")
    by_shared = desk.escalate(text="@KestrelCare my fibre in LS6 dropped again")
    one_shared = desk.escalate(text="@KestrelCare how do I upgrade to fibre")
    unrelated = desk.escalate(text="@KestrelCare how do I pay my bill")
    closed = desk.ticket_in("resolved").id  # "broadband … down since Monday": no match anyway
    dm = desk.escalate(source="dm", text="no internet in Leeds")

    found = {s.ticket.id: s for s in incidents.suggestions(incident.id)}
    assert set(found) == {by_keyword, plural, by_shared}
    assert found[by_keyword].keywords == ("no internet",)
    assert found[plural].keywords == ("outage",)
    assert found[by_shared].keywords == () and set(found[by_shared].shared) == {"fibre", "ls6"}
    assert not {one_shared, unrelated, closed, dm, *linked} & set(found)
    assert found[by_keyword].customer_text == "@KestrelCare NO INTERNET at all today"
    incidents.link(incident.id, [by_keyword, plural], by="lee")
    assert {s.ticket.id for s in incidents.suggestions(incident.id)} == {by_shared}


def test_an_update_stops_the_wait_and_keeps_each_ticket_where_it_is(desk: Desk, incidents: Incidents) -> None:
    incident = incidents.create("Outage", by="lee")
    queued = desk.escalate(text=LEEDS)
    claimed = desk.ticket_in("claimed", agent_id=desk.bob).id
    incidents.link(incident.id, [queued, claimed], by="lee")
    desk.clock.advance(minutes=12)
    with transaction(desk.engine) as conn:
        for ticket_id in (queued, claimed):
            incidents.mark_replied(conn, incident.id, ticket_id, by="lee")
    for ticket_id, state, holder in ((queued, "queued", None), (claimed, "claimed", desk.bob)):
        ticket = desk.handoff.ticket(ticket_id).ticket
        assert (ticket.state, ticket.holder_id) == (state, holder)
        assert ticket.first_response_at == desk.clock.now and ticket.waiting_since is None
    desk.clock.advance(minutes=5)
    with transaction(desk.engine) as conn:
        incidents.mark_replied(conn, incident.id, queued, by="lee")
    assert desk.handoff.ticket(queued).ticket.first_response_at == desk.clock.now - timedelta(minutes=5)
    unlinked = desk.escalate(text=LEEDS)
    with pytest.raises(Conflict, match="not in incident"), transaction(desk.engine) as conn:
        incidents.mark_replied(conn, incident.id, unlinked, by="lee")


def test_resolving_resolves_every_open_ticket_from_any_state_and_then_the_incident(
    desk: Desk, incidents: Incidents
) -> None:
    incident = incidents.create("Outage", by="lee")
    tickets = {state: desk.ticket_in(state, agent_id=desk.bob).id for state in ("queued", "claimed", "answered",
                                                                               "reopened")}  # fmt: skip
    incidents.link(incident.id, tickets.values(), by="lee")
    lee = desk.handoff.add_agent("lee", "Lee Lead", "LL", capacity=0).id
    with pytest.raises(Conflict, match="still has 4 open ticket"):
        incidents.finish(incident.id, by="lee")
    desk.clock.advance(minutes=30)
    for state, ticket_id in tickets.items():
        with transaction(desk.engine) as conn:
            resolved = incidents.resolve_ticket(conn, incident.id, ticket_id, by="lee", agent_id=lee)
        assert resolved.state == "resolved" and resolved.resolved_at == desk.clock.now
        assert resolved.agent_id == (desk.bob if state in ("claimed", "answered") else lee)
        newest = desk.handoff.audit(ticket_id=ticket_id, limit=1)[0]
        assert (newest.action, newest.actor) == ("resolved", "lee")
        assert newest.details == {"incident_id": incident.id, "from": state, "to": "resolved"}
    with pytest.raises(Conflict, match="cannot be resolved with its incident: it is resolved"):
        with transaction(desk.engine) as conn:
            incidents.resolve_ticket(conn, incident.id, tickets["queued"], by="lee")
    assert [s.open_tickets for s in incidents.overview()] == [0]
    done = incidents.finish(incident.id, by="lee")
    assert done.state == "resolved" and done.resolved_at == desk.clock.now
    assert incidents.finish(incident.id, by="lee") == done  # again: nothing changes
    assert _events(desk, "incident_resolved")[0]["tickets"] == 4
    assert [e.action for e in incidents.audit(incident.id)][:1] == ["incident_resolved"]
    with pytest.raises(Conflict, match="resolved"):
        incidents.link(incident.id, [desk.escalate(text=LEEDS)], by="lee")
    assert incidents.suggestions(incident.id) == []


def test_a_ticket_changed_meanwhile_is_not_resolved_and_its_transaction_changes_nothing(
    desk: Desk, incidents: Incidents
) -> None:
    incident = incidents.create("Outage", by="lee")
    ticket_id = desk.escalate(text=LEEDS)
    incidents.link(incident.id, [ticket_id], by="lee")
    events = len(desk.handoff.audit(ticket_id=ticket_id))
    with pytest.raises(RuntimeError), transaction(desk.engine) as conn:
        incidents.resolve_ticket(conn, incident.id, ticket_id, by="lee")
        raise RuntimeError("the closing reply could not be queued")
    ticket = desk.handoff.ticket(ticket_id).ticket
    assert ticket.state == "queued" and len(desk.handoff.audit(ticket_id=ticket_id)) == events

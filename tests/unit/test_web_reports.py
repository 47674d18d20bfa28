"""The reports (/reports): every figure of every chart against a direct SQL count or a hand computation over seeded
rows, on SQLite and PostgreSQL; the CSV downloads equal the charts' tables; roles (editors see the FAQ part only);
percentiles in SQL on PostgreSQL equal those computed in Python.

The history is seeded through the real handoff service (its clock set to each moment) and the real reply path, so
the audit events are the ones carebot writes: two days ago, day D, with tickets answered, resolved and reopened.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, delete, func, insert, select, update

try:
    from web_support import WebDesk, web_desk
except ImportError:  # imported by the browser test, from tests/
    from unit.web_support import WebDesk, web_desk

from bot.channel.models import inbound_tweets, outbox
from bot.channel.replies import queue_agent_reply
from bot.db import MIGRATIONS_DIR
from bot.web.report_pages import chart_csv
from bot.web.reports import CHARTS, ReportError, ReportService, percentile_cont, period
from handoff import Escalation, Handoff, transaction
from handoff.models import (
    REPORT_ACTIONS,
    audit_events,
    csat_surveys,
    incident_tickets,
    incidents,
    report_agent_days,
    report_events,
    report_rollup,
    tickets,
)

_spec = importlib.util.spec_from_file_location("report_rollups", MIGRATIONS_DIR / "versions" / "0014_report_rollups.py")
assert _spec is not None and _spec.loader is not None
migration = importlib.util.module_from_spec(_spec)  # migration 0014: its fill of old rows
_spec.loader.exec_module(migration)
_spec = importlib.util.spec_from_file_location("report_flags", MIGRATIONS_DIR / "versions" / "0017_report_flags.py")
assert _spec is not None and _spec.loader is not None
migration_0017 = importlib.util.module_from_spec(_spec)  # migration 0017: its fill of old rows
_spec.loader.exec_module(migration_0017)

_ids = itertools.count(1_890_000_000_000_000_000)
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
D = TODAY - timedelta(days=2)  # the seeded day


def at(hour: int, minute: int = 0) -> datetime:
    return D + timedelta(hours=hour, minutes=minute)


class History:
    """Seeds day D through the real handoff service and reply path, its clock set to each moment."""

    def __init__(self, desk: WebDesk) -> None:
        self.desk = desk
        self.now = at(0)
        self.handoff = Handoff(desk.engine, sla_minutes=60, clock=lambda: self.now)
        self.agents = {a.initials: a for a in (row.agent for row in desk.handoff.roster())}

    def tweet(self, when: datetime, *, band: str | None, reason: str | None = None, conversation: str | None = None,
              slug: str | None = None, ticket_id: int | None = None, text: str = "hello") -> str:  # fmt: skip
        tweet_id = str(next(_ids))
        decision = {"decision": {"band": band, "faq": {"entry_id": 1, "slug": slug, "score": 0.9} if slug else None}}
        with transaction(self.desk.engine) as conn:
            conn.execute(insert(inbound_tweets).values(
                tweet_id=tweet_id, source="mention", author_id="501", author_username="maya_k", text=text,
                conversation_id=conversation or tweet_id, created_at=when, fetched_at=when,
                state="done" if band else "new", attempts=1 if band else 0, band=band, ignore_reason=reason,
                decision=decision if band else None, ticket_id=ticket_id, triaged_at=when if band else None,
            ))  # fmt: skip
        return tweet_id

    def bot_answer(self, when: datetime, slug: str) -> str:
        """A customer's question the bot answered from the FAQ entry `slug` (the outbox row sent a minute later)."""
        question = self.tweet(when, band="auto", slug=slug)
        with transaction(self.desk.engine) as conn:
            conn.execute(insert(outbox).values(
                target_tweet_id=question, conversation_id=question, kind="faq_answer", author="bot",
                text=f"The answer from {slug} ^bot", state="sent", attempts=1, posted_tweet_id=question + "9",
                faq_slug=slug,  # as the worker writes it (bot/channel/processing.py)
                created_at=when + timedelta(minutes=1), updated_at=when + timedelta(minutes=1),
                sent_at=when + timedelta(minutes=1),
            ))  # fmt: skip
        return question

    def escalate(self, when: datetime, *, band: str = "human", conversation: str | None = None,
                 draft: str | None = None) -> int:  # fmt: skip
        self.now = when
        tweet_id = self.tweet(when, band=band, conversation=conversation, text="my broadband is down again")
        with transaction(self.desk.engine) as conn:
            ticket_id = self.handoff.escalate(conn, Escalation(
                conversation_id=conversation or tweet_id, tweet_id=tweet_id, customer_id="501",
                customer_handle="maya_k", text="my broadband is down again", created_at=when, source="mention",
                band=band, reasons=["an outage report"], priority=2, skill="general", draft_reply=draft,
            ))  # fmt: skip
            conn.execute(update(inbound_tweets).where(inbound_tweets.c.tweet_id == tweet_id)
                         .values(ticket_id=ticket_id))  # fmt: skip
            # As the worker does (bot/channel/processing.py): the bot's earlier answers in the conversation came back.
            conn.execute(update(outbox).where(outbox.c.conversation_id == (conversation or tweet_id),
                                              outbox.c.kind == "faq_answer", outbox.c.created_at < when)
                         .values(came_back=True))  # fmt: skip
        return ticket_id

    def claim(self, when: datetime, ticket_id: int, initials: str) -> None:
        self.now = when
        self.handoff.claim(ticket_id, self.agents[initials].id)

    def reply(self, when: datetime, ticket_id: int, initials: str, body: str) -> None:
        self.now = when
        with transaction(self.desk.engine) as conn:
            queue_agent_reply(conn, self.handoff, ticket_id, self.agents[initials], f"{body} ^{initials}", now=when)

    def resolve(self, when: datetime, ticket_id: int, initials: str) -> None:
        self.now = when
        self.handoff.resolve(ticket_id, self.agents[initials].id)

    def reject(self, when: datetime, ticket_id: int, initials: str) -> None:
        self.now = when
        self.handoff.reject_draft(ticket_id, self.agents[initials].id)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL (CAREBOT_TEST_POSTGRES_URL)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def seed(desk: WebDesk) -> dict[str, Any]:
    """Day D: volume in three bands and two ignore reasons, three bot answers (one the customer came back
    after), four tickets (answered, resolved, reopened, a draft approved and one rejected), CSAT, an incident."""
    h = History(desk)
    for hour, band, reason in [
        (8, "auto", None),
        (8, "auto", None),
        (9, "ignore", "spam"),
        (9, "ignore", "spam"),
        (9, "ignore", "duplicate"),
        (9, "ignore", "own_tweet"),
        (10, None, None),
    ]:
        h.tweet(at(hour, 5), band=band, reason=reason)  # fmt: skip
    helped = h.bot_answer(at(9), "reset-hub")
    h.bot_answer(at(9, 10), "reset-hub")
    h.bot_answer(at(9, 20), "reset-hub")
    h.bot_answer(at(11), "pay-bill")
    # A: came back to a person after the bot's answer (09:00): created 09:30, first reply 09:50, resolved 10:30;
    # then reopened at 12:00, answered by BO at 14:00 (past the 60-minute SLA), resolved 15:00.
    a = h.escalate(at(9, 30), conversation=helped)
    h.claim(at(9, 35), a, "AB")
    h.reply(at(9, 50), a, "AB", "Sorry about the outage, we are checking your line now.")
    h.reply(at(10, 0), a, "AB", "Your line is back up, please restart the Hub.")
    h.resolve(at(10, 30), a, "AB")
    assert h.escalate(at(12), conversation=helped) == a  # the customer wrote again: reopened
    h.claim(at(13), a, "BO")
    h.reply(at(14), a, "BO", "We have booked an engineer for tomorrow morning.")
    h.resolve(at(15), a, "BO")
    # B: an approve-band draft, sent by AB at 10:40 (10 minutes); C: BO rejects the draft and writes his own.
    b = h.escalate(at(10, 30), band="approve", draft="Hold the reset button for 15 seconds. ^bot")
    h.claim(at(10, 35), b, "AB")
    h.reply(at(10, 40), b, "AB", "Hold the reset button for 15 seconds.")
    c = h.escalate(at(11), band="approve", draft="Pay by card in the app. ^bot")
    h.claim(at(11, 5), c, "BO")
    h.reject(at(11, 10), c, "BO")
    h.reply(at(11, 30), c, "BO", "I have sent you a link to the payment page in DM.")
    h.resolve(at(16), c, "BO")
    # D: still waiting, never answered.
    d = h.escalate(at(16, 30))
    with transaction(desk.engine) as conn:
        for n, (score, state) in enumerate([(5, "answered"), (4, "answered"), (2, "answered"), (None, "asked")]):
            conn.execute(insert(csat_surveys).values(
                ticket_id=(a, b, c, d)[n], conversation_id=f"csat-{n}", customer_id="501", agent_id=None,
                state=state, score=score, created_at=at(17), asked_at=at(17),
                answered_at=at(18 + n) if state == "answered" else None,
            ))  # fmt: skip
        incident = conn.execute(insert(incidents).values(
            title="Fibre outage, Leeds", state="resolved", status_note="fixed", keywords=["fibre"],
            created_by="lee", created_at=at(9, 40), updated_at=at(15), resolved_at=at(15),
        ).returning(incidents.c.id)).scalar_one()  # fmt: skip
        for ticket_id in (a, d):
            conn.execute(insert(incident_tickets).values(incident_id=incident, ticket_id=ticket_id, linked_by="lee",
                                                         linked_at=at(16, 40)))  # fmt: skip
    return {"a": a, "b": b, "c": c, "d": d}


def day(service: ReportService, bucket: str = "hour") -> Any:
    return service.period("custom", bucket, D.date(), D.date())


def row_at(chart: Any, hour: int) -> dict[str, Any]:
    label = f"{D:%Y-%m-%d}T{hour:02d}:00"
    return next(r for r in chart.rows if r["bucket"] == label)


def service_of(desk: WebDesk, **kwargs: Any) -> ReportService:
    return ReportService(desk.engine, sla_minutes=60, **kwargs)


def test_volume_counts_every_band_and_ignore_reason(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    chart = service.chart("volume", day(service))
    assert len(chart.rows) == 24
    with desk.engine.connect() as conn:
        grouped = conn.execute(select(inbound_tweets.c.band, inbound_tweets.c.ignore_reason, func.count())
                               .group_by(inbound_tweets.c.band, inbound_tweets.c.ignore_reason)).all()  # fmt: skip
    direct = {reason or band or "waiting": int(count) for band, reason, count in grouped}
    totals = chart.totals
    assert totals["auto"] == direct["auto"] == 6  # two tweets and four answered questions
    assert totals["human"] == direct["human"] == 3 and totals["approve"] == direct["approve"] == 2
    assert totals["ignore_spam"] == direct["spam"] == 2 and totals["ignore_duplicate"] == 1
    assert totals["ignore_own_tweet"] == 1 and totals["waiting"] == 1 and totals["ignore_other"] == 0
    assert totals["total"] == sum(direct.values()) == 16
    assert row_at(chart, 9)["ignore_spam"] == 2 and row_at(chart, 9)["auto"] == 3 and row_at(chart, 9)["human"] == 1
    by_day = service.chart("volume", day(service, "day"))
    assert [r["total"] for r in by_day.rows] == [16]


def test_deflection_and_the_precision_agents_imply(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    chart = service.chart("deflection", day(service))
    t = chart.totals
    assert t["auto"] == 6 and t["answerable"] == 11 and t["deflection"] == round(100 * 6 / 11, 1)
    assert t["drafts_approved"] == 1 and t["drafts_rejected"] == 1 and t["draft_precision"] == 50.0
    # Four bot answers; after the 09:00 one the customer came back to a person (ticket A).
    assert t["bot_answers"] == 4 and t["didnt_help"] == 1 and t["helped"] == 75.0
    assert row_at(chart, 9)["bot_answers"] == 3 and row_at(chart, 9)["didnt_help"] == 1
    assert row_at(chart, 10)["drafts_approved"] == 1 and row_at(chart, 11)["drafts_rejected"] == 1
    with desk.engine.connect() as conn:
        rejected = conn.execute(select(func.count()).where(audit_events.c.action == "draft_rejected")).scalar_one()
        sent = conn.execute(select(func.count()).where(outbox.c.kind == "faq_answer")).scalar_one()
    assert (rejected, sent) == (1, 4)


def test_first_response_time_per_episode_with_the_sla(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    chart = service.chart("first-response", day(service))
    # A: 20 min (09:30 → 09:50), A reopened: 120 min (12:00 → 14:00), B: 10 min, C: 30 min (rejected, then own).
    minutes = [20.0, 120.0, 10.0, 30.0]
    assert chart.totals["responses"] == 4
    assert chart.totals["p50"] == round(percentile_cont(minutes, 0.5) or 0, 1) == 25.0
    assert chart.totals["p90"] == round(percentile_cont(minutes, 0.9) or 0, 1) == 93.0
    assert chart.totals["sla_met"] == 75.0
    assert row_at(chart, 9) | {} == {"bucket": row_at(chart, 9)["bucket"], "responses": 1, "p50": 20.0, "p90": 20.0,
                                     "sla_met": 100.0}  # fmt: skip
    assert row_at(chart, 14)["sla_met"] == 0.0 and row_at(chart, 14)["p50"] == 120.0
    assert row_at(chart, 13)["responses"] == 0 and row_at(chart, 13)["p50"] is None


def test_time_to_resolve_and_reopen_rate(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    resolution = service.chart("resolution", day(service))
    # A: 09:30 → 10:30 (1 h); A again: 12:00 → 15:00 (3 h); C: 11:00 → 16:00 (5 h).
    assert resolution.totals == {"resolved": 3, "p50": 3.0, "p90": round(percentile_cont([1, 3, 5], 0.9) or 0, 2)}
    assert row_at(resolution, 10)["p50"] == 1.0 and row_at(resolution, 16)["p50"] == 5.0
    reopens = service.chart("reopens", day(service))
    assert reopens.totals == {"resolved": 3, "reopened": 1, "rate": round(100 / 3, 1)}
    assert row_at(reopens, 10) | {} == {"bucket": row_at(reopens, 10)["bucket"], "resolved": 1, "reopened": 1,
                                        "rate": 100.0}  # fmt: skip
    with desk.engine.connect() as conn:
        counts = dict(conn.execute(select(audit_events.c.action, func.count())
                                   .where(audit_events.c.action.in_(["resolved", "reopened"]))
                                   .group_by(audit_events.c.action)).all())  # fmt: skip
    assert counts == {"resolved": 3, "reopened": 1}


def test_work_per_agent(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    chart = service.chart("agents", day(service))
    rows = {r["initials"]: r for r in chart.rows}
    # AB: resolved A once, three replies (two on A, the approved draft on B), first responses 20 and 10 minutes.
    assert rows["AB"] == {"agent": "Ann Brown", "initials": "AB", "handled": 1, "replies": 3, "first_responses": 2,
                          "p50": 15.0, "p90": 19.0}  # fmt: skip
    # BO: resolved A (reopened) and C, two replies, first responses 120 and 30 minutes.
    assert rows["BO"] == {"agent": "Bob Okafor", "initials": "BO", "handled": 2, "replies": 2, "first_responses": 2,
                          "p50": 75.0, "p90": 111.0}  # fmt: skip
    assert [r["initials"] for r in chart.rows] == ["BO", "AB"]
    with desk.engine.connect() as conn:
        replies = conn.execute(
            select(func.count()).where(audit_events.c.action == "replied", audit_events.c.actor.in_(["ann", "bob"]))
        ).scalar_one()
    assert replies == chart.totals["replies"] == 5


def test_faq_entries_busiest_and_least_helpful(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    busiest = service.chart("faq-busiest", day(service))
    assert [(r["entry"], r["answers"], r["didnt_help"]) for r in busiest.rows] == [
        ("reset-hub", 3, 1),
        ("pay-bill", 1, 0),
    ]
    assert busiest.rows[0]["question"] == "How do I reset my Hub 4 router?"
    unhelpful = service.chart("faq-unhelpful", day(service))
    assert [(r["entry"], r["rate"]) for r in unhelpful.rows] == [("reset-hub", round(100 / 3, 1))]


def test_customer_satisfaction_and_incidents(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    csat = service.chart("csat", day(service))
    assert csat.totals == {"answered": 3, "average": round(11 / 3, 2), "happy": round(200 / 3, 1)}
    assert row_at(csat, 20) | {} == {"bucket": row_at(csat, 20)["bucket"], "answered": 1, "average": 2.0, "happy": 0.0}
    with desk.engine.connect() as conn:
        answered = conn.execute(select(func.count(), func.avg(csat_surveys.c.score))
                                .where(csat_surveys.c.state == "answered")).one()  # fmt: skip
    assert answered[0] == 3 and round(float(answered[1]), 2) == csat.totals["average"]
    chart = service.chart("incidents", day(service))
    assert chart.totals == {"opened": 1, "resolved": 1, "linked": 2}
    assert row_at(chart, 9)["opened"] == 1 and row_at(chart, 15)["resolved"] == 1 and row_at(chart, 16)["linked"] == 2


def test_nothing_outside_the_range_is_counted(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    yesterday = service.period("custom", "day", (D + timedelta(days=1)).date(), (D + timedelta(days=1)).date())
    for spec in CHARTS:
        chart = service.chart(spec.name, yesterday)
        numbers = [v for r in chart.rows for k, v in r.items() if isinstance(v, int | float) and k != "bucket"]
        assert not any(numbers), spec.name
    week = service.chart("volume", service.period("7d"))
    assert len(week.rows) == 7 and week.totals["total"] == 16


def test_percentiles_in_sql_equal_those_in_python(desk: WebDesk) -> None:
    seed(desk)
    in_sql = service_of(desk)
    in_python = service_of(desk, sql_percentiles=False)
    for name in ("first-response", "resolution", "agents"):
        assert in_sql.chart(name, day(in_sql)).rows == in_python.chart(name, day(in_python)).rows, name
    assert percentile_cont([], 0.5) is None and percentile_cont([7.0], 0.9) == 7.0
    assert percentile_cont([1, 2, 3, 4], 0.5) == 2.5 and percentile_cont([0, 10], 0.9) == 9.0


def _same_figures(rolled: ReportService, raw: ReportService, span: Any) -> None:
    for spec in CHARTS:
        a, b = rolled.chart(spec.name, span), raw.chart(spec.name, span)
        assert (a.rows, a.totals) == (b.rows, b.totals), spec.name


def test_the_rollup_equals_the_audit_log_also_after_late_events(desk: WebDesk) -> None:
    ids = seed(desk)
    rolled, raw = service_of(desk), service_of(desk, rollups=False)
    copied = rolled.refresh()  # day D and the day after are closed: copied once
    with desk.engine.connect() as conn:
        charted = conn.execute(select(func.count()).where(audit_events.c.action.in_(REPORT_ACTIONS))).scalar_one()
        assert conn.execute(select(func.count()).select_from(report_events)).scalar_one() == copied == charted
    assert rolled.refresh() == 0
    week = rolled.period("7d")
    _same_figures(rolled, raw, week)
    # Today, after D was rolled up: A (resolved on D at 15:00) is reopened, answered and resolved; B (answered
    # on D) is resolved. D's resolution of A is now one that was reopened; today's figures are read live.
    h = History(desk)
    with desk.engine.connect() as conn:
        conversation = conn.execute(select(tickets.c.conversation_id).where(tickets.c.id == ids["a"])).scalar_one()
    h.now = TODAY + timedelta(minutes=5)
    assert h.escalate(TODAY + timedelta(minutes=5), conversation=conversation) == ids["a"]
    h.claim(TODAY + timedelta(minutes=10), ids["a"], "AB")
    h.reply(TODAY + timedelta(minutes=25), ids["a"], "AB", "The engineer is on the way now.")
    h.resolve(TODAY + timedelta(minutes=40), ids["a"], "AB")
    h.resolve(TODAY + timedelta(minutes=45), ids["b"], "AB")
    _same_figures(rolled, raw, week)
    reopens = rolled.chart("reopens", day(rolled, "day"))
    assert reopens.totals == {"resolved": 3, "reopened": 2, "rate": round(200 / 3, 1)}
    resolution = rolled.chart("resolution", rolled.period("today"))
    assert resolution.totals["resolved"] == 2  # B: from 10:30 on D, two days and more
    # Tomorrow today is closed too: copied once, and the figures stay the same.
    tomorrow = service_of(desk, clock=lambda: TODAY + timedelta(days=1, hours=2))
    assert tomorrow.refresh() == 5 and tomorrow.refresh() == 0  # reopened, replied, answered, resolved twice
    both = tomorrow.period("custom", "day", D.date(), TODAY.date())
    _same_figures(tomorrow, service_of(desk, rollups=False, clock=tomorrow.clock), both)
    _same_figures(tomorrow, raw, week)


def test_the_migration_fills_the_rollup_and_the_faq_entries_of_old_rows(desk: WebDesk) -> None:
    seed(desk)
    raw = service_of(desk, rollups=False)
    expected = {spec.name: raw.chart(spec.name, day(raw)) for spec in CHARTS}
    # As a database was before migration 0014: no FAQ entries on the outbox rows, nothing copied.
    with transaction(desk.engine) as conn:
        conn.execute(update(outbox).values(faq_slug=None))
        conn.execute(delete(report_events))
        conn.execute(delete(report_rollup))
        migration.fill(conn)
    with desk.engine.connect() as conn:
        slugs = conn.execute(select(outbox.c.faq_slug).where(outbox.c.kind == "faq_answer")).scalars().all()
        assert sorted(slugs) == ["pay-bill", "reset-hub", "reset-hub", "reset-hub"]
        charted = conn.execute(select(func.count()).where(audit_events.c.action.in_(REPORT_ACTIONS))).scalar_one()
        assert conn.execute(select(func.count()).select_from(report_events)).scalar_one() == charted
    rolled = service_of(desk)
    assert rolled.refresh() == 0  # the migration copied every closed day
    for name, chart in expected.items():
        again = rolled.chart(name, day(rolled))
        assert (again.rows, again.totals) == (chart.rows, chart.totals), name


def _agent_days(desk: WebDesk) -> dict[tuple[str, str], tuple[int, int]]:
    with desk.engine.connect() as conn:
        rows = conn.execute(select(report_agent_days)).all()
    return {(r.day.isoformat(), r.actor): (r.resolved, r.replied) for r in rows}


def _recounted_agent_days(desk: WebDesk, until: datetime) -> dict[tuple[str, str], tuple[int, int]]:
    """Resolutions and replies per UTC day and actor, counted straight from the audit log, for the days before
    `until`."""
    found: dict[tuple[str, str], tuple[int, int]] = {}
    a = audit_events.c
    with desk.engine.connect() as conn:
        rows = conn.execute(select(a.at, a.actor, a.action).where(a.action.in_(["resolved", "replied"]))).all()
    for moment, actor, action in rows:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if moment < until:
            resolved, replied = found.get((moment.date().isoformat(), actor), (0, 0))
            found[(moment.date().isoformat(), actor)] = (resolved + (action == "resolved"),
                                                         replied + (action == "replied"))  # fmt: skip
    return found


def _recounted_came_back(desk: WebDesk) -> list[str]:
    """The bot answers after which a later tweet of the conversation went to a ticket, by a direct join."""
    o, t = outbox.c, inbound_tweets.c
    with desk.engine.connect() as conn:
        joined = select(o.target_tweet_id).distinct().join_from(outbox, inbound_tweets, and_(
            t.conversation_id == o.conversation_id, t.ticket_id.is_not(None), t.fetched_at > o.created_at,
        )).where(o.kind == "faq_answer")  # fmt: skip
        return sorted(conn.execute(joined).scalars())


def _flagged(desk: WebDesk) -> list[str]:
    with desk.engine.connect() as conn:
        return sorted(conn.execute(select(outbox.c.target_tweet_id).where(outbox.c.came_back)).scalars())


def test_the_fast_path_equals_a_recount_over_an_open_day_and_one_that_closes(desk: WebDesk) -> None:
    ids = seed(desk)
    h = History(desk)
    late = h.bot_answer(at(20), "pay-bill")  # day D: the customer comes back only today
    rolled, raw = service_of(desk), service_of(desk, rollups=False)
    rolled.refresh()
    midnight_after_d = D + timedelta(days=1)
    assert _agent_days(desk) == _recounted_agent_days(desk, TODAY) != {}
    assert {day for day, _ in _agent_days(desk)} == {D.date().isoformat()}
    # Today (open, read live): a bot answer the customer comes back after, D's late one coming back, and work by
    # both agents on tickets of D and today.
    start = TODAY + timedelta(minutes=1)
    today_answer = h.bot_answer(start, "reset-hub")
    e = h.escalate(start + timedelta(minutes=9), conversation=today_answer)
    f = h.escalate(start + timedelta(minutes=12), conversation=late)
    h.claim(start + timedelta(minutes=14), e, "BO")
    h.reply(start + timedelta(minutes=20), e, "BO", "Let us look at your hub together.")
    h.resolve(start + timedelta(minutes=30), e, "BO")
    h.claim(start + timedelta(minutes=15), f, "AB")
    h.reply(start + timedelta(minutes=22), f, "AB", "The bill is paid, thank you.")
    h.resolve(start + timedelta(minutes=35), ids["b"], "AB")
    assert _flagged(desk) == _recounted_came_back(desk) and len(_flagged(desk)) == 3
    spans = [rolled.period("7d"), rolled.period("today"), day(rolled), day(rolled, "day"),
             rolled.period("custom", "day", D.date(), TODAY.date())]  # fmt: skip
    for span in spans:
        _same_figures(rolled, raw, span)
    deflection = rolled.chart("deflection", day(rolled, "day"))
    assert (deflection.totals["bot_answers"], deflection.totals["didnt_help"]) == (5, 2)
    assert rolled.chart("deflection", rolled.period("today")).totals["didnt_help"] == 1
    agents = {r["initials"]: r for r in rolled.chart("agents", rolled.period("7d")).rows}
    assert (agents["AB"]["handled"], agents["AB"]["replies"]) == (2, 4)
    assert (agents["BO"]["handled"], agents["BO"]["replies"]) == (3, 3)
    # Tomorrow, today has closed: its events are copied and counted per agent once, the figures stay the same.
    clock = lambda: TODAY + timedelta(days=1, hours=2)  # noqa: E731
    tomorrow, tomorrow_raw = service_of(desk, clock=clock), service_of(desk, rollups=False, clock=clock)
    assert tomorrow.refresh() > 0 and tomorrow.refresh() == 0
    assert _agent_days(desk) == _recounted_agent_days(desk, TODAY + timedelta(days=1))
    assert {day for day, _ in _agent_days(desk)} == {D.date().isoformat(), TODAY.date().isoformat()}
    with desk.engine.connect() as conn:
        until = conn.execute(select(report_rollup.c.rolled_until).where(report_rollup.c.name == "agent_days"))
        assert until.scalar_one().replace(tzinfo=UTC) == TODAY + timedelta(days=1)
    for span in [*spans, tomorrow.period("7d"), tomorrow.period("custom", "day", D.date(), midnight_after_d.date())]:
        _same_figures(tomorrow, tomorrow_raw, span)


def test_migration_0017_flags_old_answers_and_counts_the_copied_days(desk: WebDesk) -> None:
    seed(desk)
    rolled = service_of(desk)
    rolled.refresh()
    raw = service_of(desk, rollups=False)
    expected = {spec.name: raw.chart(spec.name, rolled.period("7d")) for spec in CHARTS}
    counted = _agent_days(desk)
    assert counted and _flagged(desk) == _recounted_came_back(desk) != []
    # As a database was before migration 0017: no answer flagged, no day counted per agent.
    with transaction(desk.engine) as conn:
        conn.execute(update(outbox).values(came_back=False))
        conn.execute(delete(report_agent_days))
        conn.execute(delete(report_rollup).where(report_rollup.c.name == "agent_days"))
        migration_0017.fill(conn)
    assert _flagged(desk) == _recounted_came_back(desk) and _agent_days(desk) == counted
    for name, chart in expected.items():
        again = rolled.chart(name, rolled.period("7d"))
        assert (again.rows, again.totals) == (chart.rows, chart.totals), name


def test_periods() -> None:
    now = datetime(2026, 12, 2, 13, 20, tzinfo=UTC)
    today = period("today", None, now=now)
    assert today.bucket == "hour" and len(today.labels()) == 24 and today.start == datetime(2026, 12, 2, tzinfo=UTC)
    assert today.end == datetime(2026, 12, 3, tzinfo=UTC) and today.labels()[13] == "2026-12-02T13:00"
    week = period("7d", None, now=now)
    assert week.bucket == "day" and week.labels()[0] == "2026-11-26" and week.labels()[-1] == "2026-12-02"
    custom = period("custom", "day", now.date() - timedelta(days=364), now.date(), now=now)
    assert len(custom.labels()) == 365 and custom.end == datetime.combine(now.date(), time(), UTC) + timedelta(days=1)
    for bad in [("year", None, None, None), ("custom", None, None, None), ("custom", "day", now.date(),
                now.date() - timedelta(days=1)), ("30d", "minute", None, None), ("custom", "hour",
                now.date() - timedelta(days=40), now.date())]:  # fmt: skip
        with pytest.raises(ReportError):
            period(*bad, now=now)


# ---------------------------------------------------------------------------------------------- over HTTP
def _query() -> dict[str, str]:
    return {"range": "custom", "from": D.date().isoformat(), "to": D.date().isoformat(), "bucket": "hour"}


def test_every_csv_equals_its_chart_table_and_json(desk: WebDesk) -> None:
    seed(desk)
    service = service_of(desk)
    lead = desk.logged_in("lee")
    for spec in CHARTS:
        chart = service.chart(spec.name, day(service))
        response = lead.get(f"/reports/{spec.name}.csv", params=_query())
        assert response.status_code == 200, (spec.name, response.text)
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        cells = list(csv.reader(io.StringIO(response.text)))
        table = chart.table()
        assert cells == [["" if v is None else str(v) for v in row] for row in table], spec.name
        assert response.text == chart_csv(chart)
        data = lead.get(f"/api/reports/{spec.name}", params=_query()).json()
        assert data["rows"] == chart.rows and data["totals"] == chart.totals, spec.name
        assert [c["label"] for c in data["columns"]] == table[0]


def test_a_csv_cell_that_looks_like_a_formula_is_neutralised(desk: WebDesk) -> None:
    h = History(desk)
    h.bot_answer(at(9), '=HYPERLINK("http://evil")')
    response = desk.logged_in("eve").get("/reports/faq-busiest.csv", params=_query())
    assert response.status_code == 200
    cells = list(csv.reader(io.StringIO(response.text)))
    assert cells[1][0] == '\'=HYPERLINK("http://evil")' and cells[1][2] == "1"


def test_the_page_shows_every_chart_to_a_lead_and_the_faq_part_to_an_editor(desk: WebDesk) -> None:
    seed(desk)
    page = desk.logged_in("lee").get("/reports", params=_query())
    assert page.status_code == 200
    for spec in CHARTS:
        assert f'id="{spec.name}"' in page.text and f"/reports/{spec.name}.csv?" in page.text
    assert page.text.count('<svg class="chart"') == len(CHARTS) and page.text.count("<table") == len(CHARTS)
    assert 'href="/reports"' in page.text
    editor = desk.logged_in("eve")
    faq_page = editor.get("/reports", params=_query())
    assert faq_page.status_code == 200
    assert 'id="faq-busiest"' in faq_page.text and 'id="faq-unhelpful"' in faq_page.text
    assert 'id="volume"' not in faq_page.text and 'id="agents"' not in faq_page.text
    assert editor.get("/reports/agents.csv", params=_query()).status_code == 403
    assert editor.get("/api/reports/csat", params=_query()).status_code == 403
    assert editor.get("/api/reports/faq-busiest", params=_query()).status_code == 200
    assert desk.logged_in("ann").get("/reports").status_code == 403


def test_a_bad_range_is_a_clear_error(desk: WebDesk) -> None:
    lead = desk.logged_in("lee")
    page = lead.get("/reports", params={"range": "custom", "from": "2026-12-02"})
    assert page.status_code == 400 and "needs both dates" in page.text
    api = lead.get("/api/reports/volume", params={"range": "decade"})
    assert api.status_code == 400 and "Choose a range" in api.json()["error"]["detail"]
    bad_day = lead.get("/api/reports/volume", params={"range": "custom", "from": "x", "to": "2026-12-02"})
    assert bad_day.status_code == 400 and "YYYY-MM-DD" in bad_day.json()["error"]["detail"]
    assert lead.get("/reports", params={"range": "today", "from": "", "to": "", "bucket": ""}).status_code == 200


def test_the_openapi_lists_every_report(desk: WebDesk) -> None:
    spec = desk.logged_in("lee").get("/api/openapi.json").json()
    for chart in CHARTS:
        operation = spec["paths"][f"/api/reports/{chart.name}"]["get"]
        assert operation["summary"] == chart.summary and operation["tags"] == ["reports"]

"""Who is asked after a resolution, and how their answer is kept (bot/csat.py, handoff/csat.py), on SQLite and
PostgreSQL: one DM question per conversation through the outbox, the reasons for skipping, the DM share, the
answer stored instead of triaged, opt-outs; and the public close after a DM resolution."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update
from web_support import emptied_postgres

from bot.channel.models import inbound_tweets, opt_outs, outbox
from bot.channel.replies import queue_agent_reply
from bot.csat import CLOSE_KIND, CLOSES, DM_SHARE, QUESTION_KIND, ResolutionFollowUp, absorb_survey_reply
from bot.db import make_engine, upgrade
from bot.decision.tone import BOT, check
from handoff import csat as store
from handoff.models import audit_events, csat_surveys, tickets
from handoff.service import Escalation, Handoff, transaction

_ids = itertools.count(1_890_000_000_000_000_000)


@dataclass
class Scene:
    engine: Engine
    handoff: Handoff
    follow_up: ResolutionFollowUp
    now: datetime
    agent_id: int = 0

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(*where)).all())

    def inbound(self, customer: str, text: str, *, dm: bool, conversation: str | None = None, state: str = "done",
                at: datetime | None = None) -> Any:  # fmt: skip
        """A customer's tweet or DM stored as intake stores it."""
        raw = str(next(_ids))
        tweet_id = f"dm-{raw}" if dm else raw
        with transaction(self.engine) as conn:
            conn.execute(
                insert(inbound_tweets).values(
                    tweet_id=tweet_id,
                    source="dm" if dm else "mention",
                    author_id=customer,
                    author_username=f"user{customer}",
                    text=text,
                    conversation_id=f"dm-{customer}" if dm else (conversation or tweet_id),
                    created_at=at or self.now,
                    fetched_at=at or self.now,
                    state=state,
                    attempts=0,
                )  # fmt: skip
            )
        return self.rows(inbound_tweets, inbound_tweets.c.tweet_id == tweet_id)[0]

    def ticket(
        self, customer: str, text: str = "my bill is wrong", *, dm: bool = False, conversation: str | None = None,
        source: str | None = None, intent: str | None = "billing_issue",
    ) -> int:  # fmt: skip
        tweet = self.inbound(customer, text, dm=dm, conversation=conversation)
        with transaction(self.engine) as conn:
            return self.handoff.escalate(
                conn,
                Escalation(
                    conversation_id=tweet.conversation_id, tweet_id=tweet.tweet_id, customer_id=customer,
                    customer_handle=f"user{customer}", text=text, created_at=self.now,
                    source=source or ("dm" if dm else "mention"), band="human", reasons=["a billing question"],
                    priority=3, skill="general", intent=intent,
                ),
            )  # fmt: skip

    def reply(self, ticket_id: int, body: str, *, kind: str = "agent_reply", sent: bool = True) -> int:
        """The agent's reply, queued as the console queues it and, with `sent`, posted."""
        self.handoff.claim(ticket_id, self.agent_id) if self._state(ticket_id) in ("queued", "reopened") else None
        agent = self.handoff.agent(self.agent_id)
        with transaction(self.engine) as conn:
            text = f"{body} (ticket {ticket_id}) ^AB"
            queued = queue_agent_reply(conn, self.handoff, ticket_id, agent, text, kind=kind, now=self.now)  # type: ignore[arg-type]
            if sent:
                posted = str(next(_ids))
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == queued.outbox_id)
                    .values(state="sent", posted_tweet_id=posted, sent_at=self.now)
                )
                self.handoff.mark_delivery(conn, queued.outbox_id, "sent", posted)
        return queued.outbox_id

    def _state(self, ticket_id: int) -> str:
        return str(self.rows(tickets, tickets.c.id == ticket_id)[0].state)

    def resolve(self, ticket_id: int) -> None:
        if self._state(ticket_id) in ("queued", "reopened"):
            self.handoff.claim(ticket_id, self.agent_id)
        self.handoff.resolve(ticket_id, self.agent_id)

    def resolved_dm_ticket(self, customer: str, text: str = "my bill is wrong") -> int:
        ticket_id = self.ticket(customer, text, dm=True)
        self.reply(ticket_id, "Sorted: the refund is on its way.")
        self.resolve(ticket_id)
        return ticket_id

    def survey(self, ticket_id: int) -> Any:
        found = self.rows(csat_surveys, csat_surveys.c.ticket_id == ticket_id)
        return found[0] if found else None

    def skip_reason(self, ticket_id: int) -> str | None:
        events = self.rows(audit_events, audit_events.c.ticket_id == ticket_id, audit_events.c.action == "csat_skipped")
        return events[-1].details["reason"] if events else None

    def deliver(self, outbox_id: int) -> str:
        """The sender posted the row (as it would): its DM or tweet id."""
        posted = str(next(_ids))
        with transaction(self.engine) as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id)
                .values(state="sent", posted_tweet_id=posted, sent_at=self.now)
            )
        return posted

    def set(self, **values: Any) -> None:
        with transaction(self.engine) as conn:
            current = store.read_settings(conn)
            store.write_settings(conn, store.CsatSettings(**{**current.to_dict(), **values}), by="lee", now=self.now)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'carebot.db'}"
        upgrade(url)
    else:
        url = emptied_postgres(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    now = datetime.now(UTC)
    clock = {"now": now}
    handoff = Handoff(engine, sla_minutes=60)
    follow_up = ResolutionFollowUp(engine, handoff, clock=lambda: clock["now"], every_s=0)
    agent = handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=50)
    try:
        yield Scene(engine, handoff, follow_up, now, agent.id)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- asking
def test_a_resolved_ticket_gets_one_question_by_dm_through_the_outbox(scene: Scene) -> None:
    ticket_id = scene.resolved_dm_ticket("601")
    report = scene.follow_up.run_once()
    assert (report.asked, report.skipped) == (1, 0)
    survey = scene.survey(ticket_id)
    assert (survey.state, survey.customer_id, survey.agent_id) == ("asked", "601", scene.agent_id)
    [question] = scene.rows(outbox, outbox.c.kind == QUESTION_KIND)
    assert question.id == survey.outbox_id and question.ticket_id == ticket_id
    assert question.target_tweet_id == f"dm-csat-{survey.id}" and question.conversation_id == "dm-601"
    assert question.author == "bot" and question.text.endswith(" ^bot") and question.state == "pending"
    assert check(question.text, BOT, dm=True) == []
    assert "1" in question.text and "5" in question.text
    # Found again on every later pass, it is never asked twice, even when the ticket is reopened and resolved again.
    assert scene.follow_up.run_once().asked == 0
    scene.inbound("601", "one more thing", dm=True)
    with transaction(scene.engine) as conn:
        conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(resolved_at=scene.now))
    assert scene.follow_up.run_once().asked == 0
    assert len(scene.rows(outbox, outbox.c.kind == QUESTION_KIND)) == 1
    assert [e.action for e in scene.rows(audit_events, audit_events.c.ticket_id == ticket_id)][-1] == "csat_asked"


def test_a_public_tickets_customer_is_asked_in_their_dm_conversation_when_they_have_one(scene: Scene) -> None:
    scene.inbound("602", "hello, earlier question", dm=True)  # they wrote to us by DM before
    public = scene.ticket("602", "@KestrelCare my bill is wrong")
    scene.reply(public, "Sorry about that, it's fixed now.")
    scene.resolve(public)
    never_dmed = scene.ticket("603", "@KestrelCare my bill is wrong too")
    scene.reply(never_dmed, "Sorry about that, we've fixed it.")
    scene.resolve(never_dmed)
    scene.follow_up.run_once()
    assert scene.survey(public).state == "asked"
    [question] = scene.rows(outbox, outbox.c.kind == QUESTION_KIND)
    assert question.conversation_id == "dm-602"
    assert scene.survey(never_dmed).state == "skipped"
    assert scene.skip_reason(never_dmed) == "no_dm_conversation"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("switched_off", "switched_off"),
        ("sample_0", "sample"),
        ("opted_out", "opted_out"),
        ("spam", "spam_or_opt_out"),
        ("no_reply", "no_contact"),
        ("search", "keyword_search"),
        ("open_ticket", "open_ticket"),
    ],
)
def test_who_is_not_asked(scene: Scene, case: str, reason: str) -> None:
    if case == "switched_off":
        scene.set(enabled=False)
    if case == "sample_0":
        scene.set(sample_percent=0)
    if case == "opted_out":
        with transaction(scene.engine) as conn:
            conn.execute(insert(opt_outs).values(author_id="610", tweet_id="1", created_at=scene.now))
    if case in ("spam", "no_reply", "search"):
        scene.inbound("610", "earlier", dm=True)
        ticket_id = scene.ticket(
            "610", "buy followers", intent="spam_offtopic" if case == "spam" else "billing_issue",
            source="search" if case == "search" else None,
        )  # fmt: skip
        if case != "no_reply":
            scene.reply(ticket_id, "We've looked into this for you.")
        scene.resolve(ticket_id)
    else:
        ticket_id = scene.resolved_dm_ticket("610")
    if case == "open_ticket":
        scene.ticket("610", "@KestrelCare and my router is broken")
    report = scene.follow_up.run_once()
    assert (report.asked, report.skipped) == (0, 1)
    assert scene.survey(ticket_id).state == "skipped"
    assert scene.skip_reason(ticket_id) == reason
    assert scene.rows(outbox, outbox.c.kind == QUESTION_KIND) == []


def test_a_customer_asked_in_the_last_7_days_is_not_asked_again(scene: Scene) -> None:
    first = scene.resolved_dm_ticket("620")
    scene.follow_up.run_once()
    public = scene.ticket("620", "@KestrelCare another thing")
    scene.reply(public, "Done, all fixed now.")
    scene.resolve(public)
    scene.follow_up.run_once()
    assert scene.survey(first).state == "asked"
    assert (scene.survey(public).state, scene.skip_reason(public)) == ("skipped", "asked_recently")


def test_questions_take_at_most_a_share_of_the_dm_budget_and_the_rest_wait(scene: Scene) -> None:
    ids = [scene.resolved_dm_ticket(str(700 + n)) for n in range(DM_SHARE + 2)]
    assert scene.follow_up.run_once().asked == DM_SHARE
    assert [scene.survey(i) is not None for i in ids] == [True] * DM_SHARE + [False, False]
    scene.follow_up.clock = lambda: scene.now + timedelta(minutes=16)
    assert scene.follow_up.run_once().asked == 2
    assert len(scene.rows(outbox, outbox.c.kind == QUESTION_KIND)) == DM_SHARE + 2


def test_old_resolutions_are_not_followed_up_when_surveys_are_switched_on(scene: Scene) -> None:
    ticket_id = scene.resolved_dm_ticket("630")
    with transaction(scene.engine) as conn:
        conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(resolved_at=scene.now - timedelta(days=2)))
    assert scene.follow_up.run_once() == type(scene.follow_up.run_once())()
    assert scene.survey(ticket_id) is None


# ---------------------------------------------------------------------------------------------- the answer
def _asked(scene: Scene, customer: str) -> tuple[int, Any]:
    ticket_id = scene.resolved_dm_ticket(customer)
    scene.follow_up.run_once()
    survey = scene.survey(ticket_id)
    scene.deliver(survey.outbox_id)
    return ticket_id, survey


def test_an_answer_is_stored_with_the_ticket_and_agent_and_never_triaged(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "640")
    answer = scene.inbound("640", "4 - quick and friendly", dm=True, state="new")
    tickets_before = len(scene.rows(tickets))
    assert absorb_survey_reply(scene.engine, answer, scene.now)
    stored = scene.survey(ticket_id)
    assert (stored.state, stored.score, stored.comment, stored.agent_id) == ("answered", 4, "quick and friendly",
                                                                             scene.agent_id)  # fmt: skip
    [row] = scene.rows(inbound_tweets, inbound_tweets.c.tweet_id == answer.tweet_id)
    assert (row.state, row.band, row.ignore_reason, row.ticket_id) == ("done", "ignore", "csat_answer", None)
    assert len(scene.rows(tickets)) == tickets_before
    assert scene.rows(tickets, tickets.c.id == ticket_id)[0].state == "resolved"  # not reopened
    # A second score is no answer any more: it is triaged like any DM.
    again = scene.inbound("640", "5", dm=True, state="new")
    assert not absorb_survey_reply(scene.engine, again, scene.now)
    assert scene.survey(ticket_id).score == 4


def test_a_low_score_that_names_a_problem_is_stored_and_triaged_too(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "645")
    answer = scene.inbound("645", "1 - still no signal since Monday", dm=True, state="new")
    assert not absorb_survey_reply(scene.engine, answer, scene.now)  # triage has it: a person sees the problem
    stored = scene.survey(ticket_id)
    assert (stored.state, stored.score, stored.comment) == ("answered", 1, "still no signal since Monday")
    [row] = scene.rows(inbound_tweets, inbound_tweets.c.tweet_id == answer.tweet_id)
    assert (row.state, row.ignore_reason) == ("new", None)


@pytest.mark.parametrize("text", ["2 thanks", "1", "3 ok", "5 - sorted in minutes"])
def test_a_bare_low_score_or_a_high_one_with_a_comment_is_only_an_answer(scene: Scene, text: str) -> None:
    _asked(scene, "646")
    answer = scene.inbound("646", text, dm=True, state="new")
    assert absorb_survey_reply(scene.engine, answer, scene.now)
    [row] = scene.rows(inbound_tweets, inbound_tweets.c.tweet_id == answer.tweet_id)
    assert (row.state, row.ignore_reason) == ("done", "csat_answer")


def test_what_is_not_an_answer_goes_to_triage(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "650")
    for text in ("4 days and my internet is still down", "why?", "not bad"):
        assert not absorb_survey_reply(scene.engine, scene.inbound("650", text, dm=True, state="new"), scene.now)
    public = scene.inbound("650", "5", dm=False, state="new")  # a public tweet is never a survey answer
    assert not absorb_survey_reply(scene.engine, public, scene.now)
    assert scene.survey(ticket_id).state == "asked"


def test_an_answer_before_the_question_arrived_or_after_three_days_is_not_one(scene: Scene) -> None:
    ticket_id = scene.resolved_dm_ticket("660")
    scene.follow_up.run_once()
    early = scene.inbound("660", "5", dm=True, state="new")
    assert not absorb_survey_reply(scene.engine, early, scene.now)  # the question is not sent yet
    scene.deliver(scene.survey(ticket_id).outbox_id)
    assert not absorb_survey_reply(scene.engine, early, scene.now)  # written before the question
    late = scene.inbound("660", "5", dm=True, state="new")
    assert not absorb_survey_reply(scene.engine, late, scene.now + timedelta(days=3, minutes=1))
    scene.follow_up.clock = lambda: scene.now + timedelta(days=3, minutes=1)
    scene.follow_up.monotonic = lambda: time.monotonic() + 61  # expiry runs once a minute
    assert scene.follow_up.run_once().expired == 1
    assert scene.survey(ticket_id).state == "expired"


def test_while_a_person_talks_with_the_customer_a_number_is_theirs(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "670")
    scene.ticket("670", "my router is broken now", dm=True)  # the DM conversation's ticket is open again
    assert not absorb_survey_reply(scene.engine, scene.inbound("670", "2", dm=True, state="new"), scene.now)
    assert scene.survey(ticket_id).state == "asked"


def test_stop_is_the_opt_out_it_is(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "680")
    stop = scene.inbound("680", "STOP", dm=True, state="new")
    assert absorb_survey_reply(scene.engine, stop, scene.now)
    assert scene.survey(ticket_id).state == "expired"
    assert [r.author_id for r in scene.rows(opt_outs)] == ["680"]
    [row] = scene.rows(inbound_tweets, inbound_tweets.c.tweet_id == stop.tweet_id)
    assert (row.state, row.ignore_reason) == ("done", "opt_out")
    # No further survey for this customer.
    later = scene.ticket("680", "@KestrelCare another problem")
    scene.reply(later, "That's fixed for you now.")
    scene.resolve(later)
    scene.follow_up.run_once()
    assert (scene.survey(later).state, scene.skip_reason(later)) == ("skipped", "opted_out")


def test_an_opt_out_with_a_problem_is_recorded_and_still_triaged(scene: Scene) -> None:
    ticket_id, survey = _asked(scene, "690")
    text = "stop messaging me, my bill is still wrong"
    assert not absorb_survey_reply(scene.engine, scene.inbound("690", text, dm=True, state="new"), scene.now)
    assert scene.survey(ticket_id).state == "expired"
    assert [r.author_id for r in scene.rows(opt_outs)] == ["690"]


# ---------------------------------------------------------------------------------------------- settings
def test_settings_default_then_stored_and_audited(scene: Scene) -> None:
    with scene.engine.connect() as conn:
        assert store.read_settings(conn) == store.CsatSettings(enabled=True, sample_percent=100, public_close=True)
    scene.set(sample_percent=25, public_close=False)
    with scene.engine.connect() as conn:
        assert store.read_settings(conn) == store.CsatSettings(enabled=True, sample_percent=25, public_close=False)
    [event] = scene.rows(audit_events, audit_events.c.action == "desk_settings")
    assert event.actor == "lee"
    assert event.details == {"sample_percent": {"from": 100, "to": 25}, "public_close": {"from": True, "to": False}}
    with pytest.raises(store.InvalidInput), transaction(scene.engine) as conn:
        store.write_settings(conn, store.CsatSettings(sample_percent=101), by="lee", now=scene.now)


# ---------------------------------------------------------------------------------------------- the public close
def _moved_to_dm(scene: Scene, customer: str) -> tuple[int, int]:
    """A public ticket moved to DM (the agent's dm_handover reply), then the customer's DM ticket, answered."""
    public = scene.ticket(customer, f"@KestrelCare my account {customer} is locked")
    handover = "Happy to look into this. Please send us a DM and we'll take it from there."
    scene.reply(public, handover, kind="dm_handover")
    dm = scene.ticket(customer, "hi, about my locked account", dm=True)
    scene.reply(dm, "Unlocked now, you can log in again.")
    return public, dm


def test_the_public_thread_gets_one_close_after_the_dm_resolution(scene: Scene) -> None:
    public, dm = _moved_to_dm(scene, "801")
    scene.resolve(dm)
    assert scene.follow_up.run_once().closed == 0  # the public ticket is still open: a person owns the thread
    scene.resolve(public)
    assert scene.follow_up.run_once().closed == 1
    [close] = scene.rows(outbox, outbox.c.kind == CLOSE_KIND)
    [thread] = scene.rows(tickets, tickets.c.id == public)
    assert close.conversation_id == thread.conversation_id and close.ticket_id == public
    [handover] = scene.rows(outbox, outbox.c.kind == "dm_handover")
    assert close.target_tweet_id == handover.posted_tweet_id  # under our own newest reply: no tweet gets two
    assert close.author == "bot" and close.text.endswith(" ^bot") and "DM" in close.text
    assert check(close.text, BOT) == []
    assert scene.follow_up.run_once().closed == 0  # once per public conversation
    recorded = scene.handoff.ticket(public).messages
    assert recorded[-1].text == close.text


def test_closes_are_worded_differently_and_follow_the_setting(scene: Scene) -> None:
    texts = []
    for customer in ("811", "812", "813"):
        public, dm = _moved_to_dm(scene, customer)
        scene.resolve(public)
        scene.resolve(dm)
        scene.follow_up.run_once()
        texts = [r.text for r in scene.rows(outbox, outbox.c.kind == CLOSE_KIND)]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert all(t.removesuffix(" ^bot") in CLOSES for t in texts)
    scene.set(public_close=False)
    public, dm = _moved_to_dm(scene, "814")
    scene.resolve(public)
    scene.resolve(dm)
    assert scene.follow_up.run_once().closed == 0


def test_no_close_without_a_move_to_dm_or_for_another_customer(scene: Scene) -> None:
    public = scene.ticket("821", "@KestrelCare my account is locked")
    scene.reply(public, "Sorry, looking into it now.")
    scene.resolve(public)
    dm = scene.ticket("821", "unrelated question by DM", dm=True)
    scene.reply(dm, "Here is the answer.")
    scene.resolve(dm)
    other_public, _ = _moved_to_dm(scene, "822")
    scene.resolve(other_public)
    assert scene.follow_up.run_once().closed == 0  # 822's DM ticket is still open; 821 never moved to DM


def test_no_public_close_for_a_customer_who_opted_out(scene: Scene) -> None:
    public, dm = _moved_to_dm(scene, "831")
    scene.resolve(public)
    scene.resolve(dm)
    with transaction(scene.engine) as conn:
        conn.execute(insert(opt_outs).values(author_id="831", tweet_id="2", created_at=scene.now))
    assert scene.follow_up.run_once().closed == 0
    with transaction(scene.engine) as conn:
        conn.execute(opt_outs.delete())
    assert scene.follow_up.run_once().closed == 1


# ---------------------------------------------------------------------------------------------- a joined DM
def _joined(scene: Scene, customer: str) -> int:
    """A public ticket moved to DM, whose customer's DM joined it (as triage joins it: handoff's join_dm)."""
    public = scene.ticket(customer, f"@KestrelCare my account {customer} is locked")
    handover = "Happy to look into this. Please send us a DM and we'll take it from there."
    scene.reply(public, handover, kind="dm_handover")
    dm = scene.inbound(customer, "hi, about my locked account", dm=True)
    with transaction(scene.engine) as conn:
        joined = scene.handoff.join_dm(
            conn, public, dm_conversation_id=dm.conversation_id, tweet_id=dm.tweet_id, author=f"user{customer}",
            text=dm.text, created_at=scene.now,
        )  # fmt: skip
    assert joined == public
    scene.reply(public, "Unlocked now, you can log in again.")  # by DM: the customer has written by DM
    return public


def test_a_joined_ticket_gets_one_public_close_and_one_survey_in_the_dm(scene: Scene) -> None:
    public = _joined(scene, "841")
    [answer] = scene.rows(outbox, outbox.c.kind == "agent_reply")
    assert answer.target_tweet_id.startswith("dm-") and answer.conversation_id == "dm-841"
    assert scene.follow_up.run_once().closed == 0  # still open: a person owns the thread
    scene.resolve(public)
    assert scene.follow_up.run_once().closed == 1
    [close] = scene.rows(outbox, outbox.c.kind == CLOSE_KIND)
    [handover] = scene.rows(outbox, outbox.c.kind == "dm_handover")
    [thread] = scene.rows(tickets, tickets.c.id == public)
    assert close.conversation_id == thread.conversation_id and close.target_tweet_id == handover.posted_tweet_id
    assert scene.follow_up.run_once().closed == 0
    survey = scene.survey(public)
    assert survey is not None and survey.state in ("pending", "asked")  # once per ticket
    [question] = scene.rows(outbox, outbox.c.kind == QUESTION_KIND)
    assert question.ticket_id == public and question.conversation_id == "dm-841"


def test_while_a_joined_ticket_is_open_a_number_by_dm_is_the_agents(scene: Scene) -> None:
    earlier, _ = _asked(scene, "851")
    _joined(scene, "851")
    answer = scene.inbound("851", "5", dm=True, state="new")
    assert absorb_survey_reply(scene.engine, answer, scene.now) is False  # a person is talking with them by DM
    assert scene.survey(earlier).state == "asked"

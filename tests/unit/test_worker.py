"""The worker against an in-memory X: intake stores each tweet once, triage writes decisions, tickets and outbox rows
in one transaction, the sender never posts twice to one tweet and looks on X before any re-send, and failures of X
or the NLU lose nothing. (The same paths over real HTTP, with crashes: tests/integration/test_worker_*.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channel_support import ACCOUNT, FakeX, made_at
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import sessionmaker

from bot.channel.errors import XOutcomeUnknown, XRateLimited, XRejected, XUnavailable
from bot.channel.intake import Intake
from bot.channel.models import alerts, checkpoints, inbound_tweets, opt_outs, outbox
from bot.channel.processing import TweetProcessor
from bot.channel.sender import Sender
from bot.channel.store import get_checkpoint, id_at, set_checkpoint
from bot.channel.worker import Worker
from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from bot.nlu.client import NluResult, NluUnavailable, parse_response
from bot.nlu.testing import canned_parse
from handoff.models import tickets
from handoff.service import Handoff
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

POLICY = Path(__file__).resolve().parent.parent / "data" / "policy.yml"
RESTART = "How do I restart my Kestrel hub?"


class KeywordNlu:
    """Stands in for Rasa: the message kind from keywords; `down` makes every parse fail as a dead server would."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def parse(self, text: str) -> NluResult:
        self.calls += 1
        if self.down:
            raise NluUnavailable("the NLU server is unavailable: cannot connect")
        lowered = text.lower()
        rules = [
            ("restart", "product_question"), ("outage", "outage_report"), ("human", "request_human"),
            ("stop replying", "opt_out"), ("didn't help", "answer_not_helpful"), ("bill", "billing_issue"),
        ]  # fmt: skip
        intent = next((name for word, name in rules if word in lowered), "greeting")
        return parse_response(canned_parse(text, intent, 0.95), text)


@dataclass
class Desk1:
    engine: Engine
    x: FakeX
    nlu: KeywordNlu
    handoff: Handoff
    worker: Worker

    def rows(self, table: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table)).all())

    def outbox_by_target(self) -> dict[str, Any]:
        return {row.target_tweet_id: row for row in self.rows(outbox)}

    def run(self, steps: int = 3) -> None:
        for _ in range(steps):
            self.worker.step()

    def set_outbox(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).values(**values))


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk1]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    service.create_draft(
        EntryContent(
            slug="restart-hub", question=RESTART, answer="Hold the reset button for 10 seconds, then wait 2 minutes.",
            paraphrases=("my hub is frozen how do I reboot it",), tags=("hub",), language="en",
        ),  # fmt: skip
        author="editor",
    )
    service.publish("restart-hub", author="editor")
    kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=0))
    nlu = KeywordNlu()
    x = FakeX()
    handoff = Handoff(engine, sla_minutes=60)
    the_desk = Desk(nlu, kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    worker = Worker(
        engine=engine,
        intake=Intake(engine, x),
        processor=TweetProcessor(engine, the_desk, handoff, account_id=ACCOUNT.id, nlu_wait_s=60),
        sender=Sender(engine, x, handoff, reconcile_after_s=0),
        search_queries=("kestrel broken",),
        poll_interval_s=0,
    )
    try:
        yield Desk1(engine, x, nlu, handoff, worker)
    finally:
        engine.dispose()


def test_a_question_the_faq_answers_gets_one_public_reply_signed_by_the_bot(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("ann", f"@KestrelCare {RESTART}")
    desk.run()
    replies = desk.x.replies_to(tweet.id)
    assert len(replies) == 1
    assert replies[0].text.endswith("^bot") and "reset button" in replies[0].text
    row = desk.outbox_by_target()[tweet.id]
    assert (row.state, row.posted_tweet_id, row.author) == ("sent", replies[0].id, "bot")
    [stored] = desk.rows(inbound_tweets)
    assert (stored.state, stored.band) == ("done", "auto")
    desk.run()
    assert len(desk.x.replies_to(tweet.id)) == 1  # nothing happens twice


def test_tweets_fetched_again_are_stored_once(desk: Desk1) -> None:
    for n in range(5):
        desk.x.customer_tweet(f"c{n}", f"@KestrelCare hello number {n}")
    desk.worker.intake.read_mentions()
    with desk.engine.begin() as conn:  # as after a crash before the checkpoint moved: read everything again
        conn.execute(update(inbound_tweets).values(state="new"))
    from bot.channel.models import checkpoints

    with desk.engine.begin() as conn:
        conn.execute(checkpoints.delete())
    desk.worker.intake.read_mentions()
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbound_tweets)).scalar_one() == 5


def test_two_customers_asking_the_same_question_get_different_wording(desk: Desk1) -> None:
    first = desk.x.customer_tweet("ann", f"@KestrelCare {RESTART}")
    second = desk.x.customer_tweet("bob", f"@KestrelCare {RESTART}")
    desk.run()
    texts = [desk.x.replies_to(first.id)[0].text, desk.x.replies_to(second.id)[0].text]
    assert texts[0] != texts[1]


def test_an_outage_report_is_acknowledged_and_becomes_a_ticket(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("cat", "@KestrelCare outage in Leeds again, nothing works")
    desk.run()
    [stored] = desk.rows(inbound_tweets)
    assert stored.band == "human" and stored.ticket_id is not None
    [ticket] = desk.rows(tickets)
    assert ticket.conversation_id == tweet.id and ticket.state == "queued"
    assert len(desk.x.replies_to(tweet.id)) == 1  # the acknowledgement


def test_while_a_person_owns_the_thread_the_bot_stays_silent(desk: Desk1) -> None:
    first = desk.x.customer_tweet("dan", "@KestrelCare can I talk to a human please")
    desk.run()
    ack = desk.x.replies_to(first.id)[0]
    follow_up = desk.x.customer_tweet("dan", f"@KestrelCare also {RESTART}", in_reply_to=ack.id)
    desk.run()
    assert desk.x.replies_to(follow_up.id) == []
    [ticket] = desk.rows(tickets)
    stored = {row.tweet_id: row for row in desk.rows(inbound_tweets)}
    assert stored[follow_up.id].ticket_id == ticket.id


def test_keyword_search_hits_go_to_people_only(desk: Desk1) -> None:
    hit = desk.x.customer_tweet("eve", f"kestrel broken again. {RESTART}")  # not addressed to us
    desk.run()
    stored = {row.tweet_id: row for row in desk.rows(inbound_tweets)}
    assert stored[hit.id].source == "search" and stored[hit.id].band == "human"
    assert desk.x.replies_to(hit.id) == []


def _set_checkpoint(desk: Desk1, name: str, since_id: str) -> None:
    with desk.engine.begin() as conn:
        conn.execute(checkpoints.delete().where(checkpoints.c.name == name))
        set_checkpoint(conn, name, since_id)


def _checkpoint(desk: Desk1, name: str) -> str | None:
    with desk.engine.connect() as conn:
        return get_checkpoint(conn, name)


def test_a_keyword_search_not_read_for_8_days_is_read_again_inside_xs_7_days(desk: Desk1) -> None:
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    _set_checkpoint(desk, "search:kestrel broken", id_at(eight_days_ago))  # e.g. the worker was off for 8 days
    older = desk.x.customer_tweet("ivy", "kestrel broken since last month", at=eight_days_ago + timedelta(hours=1))
    inside = [
        desk.x.customer_tweet("una", "kestrel broken for days", at=datetime.now(UTC) - timedelta(days=6)),
        desk.x.customer_tweet("val", "kestrel broken this morning"),
    ]
    desk.worker.step()
    first, again = desk.x.search_calls[:2]
    assert first["since_id"] == id_at(eight_days_ago) and again["since_id"] is None
    start = again["start_time"]
    assert isinstance(start, datetime) and timedelta(days=6, hours=23) < datetime.now(UTC) - start < timedelta(days=7)
    stored = {row.tweet_id: row for row in desk.rows(inbound_tweets)}
    assert {t.id for t in inside} <= set(stored) and older.id not in stored  # beyond X's reach: no error, no loop
    (alert,) = [a for a in desk.rows(alerts) if a.kind == "search_window"]
    assert "'kestrel broken'" in alert.message and "(2 found)" in alert.message
    moved = _checkpoint(desk, "search:kestrel broken")
    assert moved is not None and made_at(moved) > datetime.now(UTC) - timedelta(days=1)
    later = desk.x.customer_tweet("wes", "kestrel broken again tonight")
    desk.x.search_calls.clear()
    desk.worker.step()
    assert [call["since_id"] for call in desk.x.search_calls] == [moved]  # accepted: asked once
    assert later.id in {row.tweet_id for row in desk.rows(inbound_tweets)}
    assert len(desk.rows(inbound_tweets)) == len(stored) + 1  # nothing stored twice
    assert [a.kind for a in desk.rows(alerts)].count("search_window") == 1


def test_a_keyword_without_hits_for_a_week_is_not_refused_on_every_poll(desk: Desk1) -> None:
    _set_checkpoint(desk, "search:kestrel broken", id_at(datetime.now(UTC) - timedelta(days=7, minutes=1)))
    desk.worker.step()
    assert desk.x.calls["search"] == 2  # refused, then read from inside the 7 days: nothing there
    moved = _checkpoint(desk, "search:kestrel broken")
    assert moved is not None and datetime.now(UTC) - made_at(moved) < timedelta(minutes=6)
    for _ in range(3):
        desk.worker.step()
    assert desk.x.calls["search"] == 5 and desk.worker.polls["search:kestrel broken"].failures == 0
    hit = desk.x.customer_tweet("xan", "kestrel broken after all")
    desk.worker.step()
    assert hit.id in {row.tweet_id for row in desk.rows(inbound_tweets)}


def test_a_mention_gap_after_more_than_7_days_is_backfilled_from_inside_them(desk: Desk1) -> None:
    _set_checkpoint(desk, "mentions", id_at(datetime.now(UTC) - timedelta(days=9)))
    storm = [desk.x.customer_tweet(f"s{n}", f"@KestrelCare outage here {n}") for n in range(900)]
    report = desk.worker.intake.read_mentions()
    assert report.gap and report.reanchored
    assert {t.id for t in storm} == {row.tweet_id for row in desk.rows(inbound_tweets)}
    sources = [row.source for row in desk.rows(inbound_tweets)]
    assert sources.count("mention") == 800 and sources.count("backfill") == 100
    (alert,) = desk.rows(alerts)
    assert alert.kind == "mention_gap" and "100 were backfilled" in alert.message and "7 days" in alert.message
    assert _checkpoint(desk, "mentions") == storm[-1].id


def test_a_mention_gap_entirely_older_than_7_days_is_reported_not_retried_forever(desk: Desk1) -> None:
    _set_checkpoint(desk, "mentions", id_at(datetime.now(UTC) - timedelta(days=12)))
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    storm = [
        desk.x.customer_tweet(f"s{n}", f"@KestrelCare outage here {n}", at=ten_days_ago + timedelta(seconds=n))
        for n in range(900)
    ]
    desk.worker.step()
    assert desk.worker.polls["mentions"].failures == 0
    assert len(desk.rows(inbound_tweets)) == 800  # the newest 800; the 100 before them are beyond search's reach
    (alert,) = [a for a in desk.rows(alerts) if a.kind == "mention_gap"]
    assert "0 were backfilled" in alert.message and alert.details["beyond_search"] is True
    assert _checkpoint(desk, "mentions") == storm[-1].id
    fresh = desk.x.customer_tweet("yul", "@KestrelCare still down")
    desk.worker.step()
    assert fresh.id in {row.tweet_id for row in desk.rows(inbound_tweets)}


def test_an_opt_out_is_remembered_and_silences_the_bot(desk: Desk1) -> None:
    desk.x.customer_tweet("fay", "@KestrelCare please stop replying to me")
    desk.run()
    assert [row.author_id for row in desk.rows(opt_outs)] == [desk.x.users["fay"]]
    later = desk.x.customer_tweet("fay", f"@KestrelCare {RESTART}")
    desk.run()
    assert desk.x.replies_to(later.id) == []


def test_a_dm_becomes_a_ticket_and_is_never_answered_in_public(desk: Desk1) -> None:
    desk.x.customer_dm("gus", "my bill is wrong, account KT-12345678")
    desk.run()
    [stored] = desk.rows(inbound_tweets)
    assert stored.source == "dm" and stored.band in ("human", "approve")
    assert stored.author_username == "gus"  # the ticket shows @gus, not the sender's numeric id
    assert desk.x.our_replies() == []


def test_when_the_nlu_is_down_tweets_wait_and_are_never_auto_answered(desk: Desk1) -> None:
    desk.nlu.down = True
    tweet = desk.x.customer_tweet("hal", f"@KestrelCare {RESTART}")
    desk.run()
    [stored] = desk.rows(inbound_tweets)
    assert stored.state == "waiting" and desk.x.our_replies() == []
    desk.nlu.down = False
    desk.worker.processor.nlu_retry_at = None  # the time to try again has come
    with desk.engine.begin() as conn:
        conn.execute(update(inbound_tweets).values(next_attempt_at=stored.fetched_at))
    desk.run()
    assert len(desk.x.replies_to(tweet.id)) == 1


def test_a_dead_nlu_is_not_asked_again_for_every_tweet(desk: Desk1) -> None:
    desk.nlu.down = True
    for n in range(20):
        desk.x.customer_tweet(f"w{n}", f"@KestrelCare {RESTART} ({n})")
    desk.run(10)
    assert desk.nlu.calls == 1  # the first parse found it down; the batch and the next steps did not ask
    assert {row.state for row in desk.rows(inbound_tweets)} == {"waiting"}
    desk.nlu.down = False
    desk.worker.processor.nlu_retry_at = None
    with desk.engine.begin() as conn:
        conn.execute(update(inbound_tweets).values(next_attempt_at=None))
    desk.run(3)
    assert len(desk.x.our_replies()) == 20


def test_after_waiting_too_long_for_the_nlu_tweets_go_to_people(desk: Desk1) -> None:
    desk.nlu.down = True
    desk.worker.processor.nlu_wait = desk.worker.processor.nlu_wait * 0
    tweet = desk.x.customer_tweet("ida", f"@KestrelCare {RESTART}")
    desk.run()
    [stored] = desk.rows(inbound_tweets)
    assert stored.state == "done" and stored.band == "human"
    assert desk.x.replies_to(tweet.id) == [] or desk.outbox_by_target()[tweet.id].kind != "faq_answer"


def test_more_mentions_than_x_serves_raise_an_alert_and_are_backfilled(desk: Desk1) -> None:
    desk.x.customer_tweet("first", "@KestrelCare hello")
    desk.worker.intake.read_mentions()
    storm = [desk.x.customer_tweet(f"s{n}", f"@KestrelCare outage here {n}") for n in range(900)]
    report = desk.worker.intake.read_mentions()
    assert report.gap
    with desk.engine.connect() as conn:
        stored = set(conn.execute(select(inbound_tweets.c.tweet_id)).scalars())
        assert conn.execute(select(alerts.c.kind)).scalars().all() == ["mention_gap"]
    assert {t.id for t in storm} <= stored


def test_a_reply_in_doubt_is_found_on_x_and_not_posted_again(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("jo", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", desk.x.post_then_drop(tweet.id))
    desk.run(4)
    assert len(desk.x.replies_to(tweet.id)) == 1
    row = desk.outbox_by_target()[tweet.id]
    assert row.state == "sent" and row.posted_tweet_id == desk.x.replies_to(tweet.id)[0].id


def test_a_reply_in_doubt_that_never_reached_x_is_sent_once(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("kim", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", XOutcomeUnknown("read timed out", endpoint="create_tweet"))
    desk.run(4)
    assert len(desk.x.replies_to(tweet.id)) == 1
    assert desk.x.calls["create_tweet"] == 2 and desk.x.calls["user_tweets"] >= 1


def test_rows_left_sending_by_a_crash_are_reconciled_before_any_resend(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("lee", f"@KestrelCare {RESTART}")
    desk.worker.intake.read_mentions()
    desk.worker.processor.step()
    [row] = desk.rows(outbox)
    desk.x.create_reply(row.text, tweet.id)  # the crashed run had posted it …
    desk.set_outbox(state="sending")  # … but died before marking it sent
    posts = desk.x.calls["create_tweet"]
    desk.worker.sender.recover()
    desk.run()
    assert desk.x.calls["create_tweet"] == posts
    assert len(desk.x.replies_to(tweet.id)) == 1 and desk.outbox_by_target()[tweet.id].state == "sent"


def test_a_rate_limit_pauses_posting_until_the_reset_without_a_hot_loop(desk: Desk1) -> None:
    import time

    for n in range(3):
        desk.x.customer_tweet(f"m{n}", f"@KestrelCare {RESTART} ({n})")
    desk.x.fail(
        "create_tweet",
        XRateLimited("too many requests", endpoint="create_tweet", reset_at=time.time() + 3600, limit="window"),
    )
    desk.run(10)
    assert desk.x.calls["create_tweet"] == 1
    assert {row.state for row in desk.rows(outbox)} == {"pending"}
    desk.worker.sender.paused_until = None
    desk.set_outbox(next_attempt_at=None)
    desk.run()
    assert len(desk.x.our_replies()) == 3


def test_x_unavailable_backs_off_and_then_posts(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("ned", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", XUnavailable("HTTP 503", endpoint="create_tweet"))
    desk.run(5)
    assert desk.x.calls["create_tweet"] == 1  # backing off, not hammering
    desk.set_outbox(next_attempt_at=None)
    desk.run()
    assert len(desk.x.replies_to(tweet.id)) == 1


def test_a_reply_x_refuses_fails_and_the_tweet_goes_to_a_person(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("ola", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", XRejected("forbidden", endpoint="create_tweet", status=403, detail="not allowed"))
    desk.run()
    row = desk.outbox_by_target()[tweet.id]
    assert row.state == "failed" and row.ticket_id is not None
    assert [t.conversation_id for t in desk.rows(tickets)] == [tweet.id]
    assert "reply_failed" in {a.kind for a in desk.rows(alerts)}


def test_reading_mentions_backs_off_when_x_is_down(desk: Desk1) -> None:
    desk.worker.polls["mentions"].interval_s = 1.0
    desk.x.fail("mentions", *[XUnavailable("HTTP 500", endpoint="mentions") for _ in range(20)])
    for _ in range(20):
        desk.worker.step()
    assert desk.x.calls["mentions"] == 1


def test_a_rate_limit_on_looking_for_our_replies_is_respected(desk: Desk1) -> None:
    import time

    tweet = desk.x.customer_tweet("pat", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", XOutcomeUnknown("read timed out", endpoint="create_tweet"))
    limited = XRateLimited("too many requests", endpoint="user_tweets", reset_at=time.time() + 3600, limit="window")
    desk.x.fail("user_tweets", limited)
    desk.run(10)
    assert desk.x.calls["user_tweets"] == 1  # not asked again before the reset
    assert desk.outbox_by_target()[tweet.id].state == "unknown" and desk.x.replies_to(tweet.id) == []
    desk.worker.sender.lookups_paused_until = None
    desk.run()
    assert len(desk.x.replies_to(tweet.id)) == 1


def test_replies_in_doubt_wait_while_x_cannot_be_asked(desk: Desk1) -> None:
    desk.x.customer_tweet("quin", f"@KestrelCare {RESTART}")
    desk.x.fail("create_tweet", XOutcomeUnknown("read timed out", endpoint="create_tweet"))
    desk.x.fail("user_tweets", *[XUnavailable("HTTP 503", endpoint="user_tweets") for _ in range(10)])
    desk.run(10)
    assert desk.x.calls["user_tweets"] == 1
    assert desk.x.calls["create_tweet"] == 1


def test_the_same_question_twice_in_one_batch_gets_two_different_replies(desk: Desk1) -> None:
    asked = [desk.x.customer_tweet(f"twin{n}", f"@KestrelCare {RESTART}") for n in range(6)]
    desk.run()
    texts = [r.text for t in asked for r in desk.x.replies_to(t.id)]
    assert len(texts) == 6 and len(set(texts)) == 6


def test_a_reply_x_refuses_as_duplicate_is_not_sent_again_and_goes_to_a_person(desk: Desk1) -> None:
    first = desk.x.customer_tweet("uma", f"@KestrelCare {RESTART}")
    desk.run()
    second = desk.x.customer_tweet("vic", "@KestrelCare hello there")
    desk.worker.intake.read_mentions()
    desk.worker.processor.step()
    with desk.engine.begin() as conn:  # as if the wording had come out the same as our first reply
        conn.execute(
            update(outbox).where(outbox.c.target_tweet_id == second.id).values(text=desk.x.replies_to(first.id)[0].text)
        )
    posts = desk.x.calls["create_tweet"]
    desk.run(10)
    assert desk.x.calls["create_tweet"] == posts + 1  # one refused attempt, no loop
    row = desk.outbox_by_target()[second.id]
    assert row.state == "failed" and row.ticket_id is not None


def test_many_greetings_over_many_steps_never_repeat_a_wording(desk: Desk1) -> None:
    desk.worker.processor.batch_size = 7
    greetings = [desk.x.customer_tweet(f"hi{n}", "@KestrelCare hello!") for n in range(60)]
    desk.run(15)
    texts = [r.text for t in greetings for r in desk.x.replies_to(t.id)]
    assert len(texts) == 60 and len(set(texts)) == 60  # X would refuse any repeat
    assert {row.state for row in desk.rows(outbox)} == {"sent"}


# ---------------------------------------------------------------- errors nobody foresaw


def test_a_read_that_raises_something_unexpected_is_logged_backed_off_and_read_again(
    desk: Desk1, caplog: pytest.LogCaptureFixture
) -> None:
    desk.worker.polls["mentions"].interval_s = 1.0
    tweet = desk.x.customer_tweet("una", f"@KestrelCare {RESTART}")
    desk.x.fail("mentions", ValueError("year 33717 is out of range"))
    desk.run(5)
    assert desk.x.calls["mentions"] == 1  # backing off, not hammering
    assert desk.x.calls["dm_events"] >= 1  # the other endpoints go on
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert record.exc_info is not None and "mentions" in record.getMessage()
    desk.worker.polls["mentions"].next_at = 0.0
    desk.run()
    assert len(desk.x.replies_to(tweet.id)) == 1


def test_a_post_that_raises_something_unexpected_is_in_doubt_and_never_posted_twice(
    desk: Desk1, caplog: pytest.LogCaptureFixture
) -> None:
    posted = desk.x.customer_tweet("val", f"@KestrelCare {RESTART} (1)")
    lost = desk.x.customer_tweet("wes", f"@KestrelCare {RESTART} (2)")

    def post_then_break() -> None:
        desk.x._post("(posted just before the error) ^bot", posted.id)
        raise RuntimeError("something nobody foresaw")

    desk.x.fail("create_tweet", post_then_break, TypeError("nor this"))
    desk.worker.intake.read_mentions()
    desk.worker.processor.step()
    report = desk.worker.sender.send_due()
    assert report.unknown == 2 and {r.state for r in desk.rows(outbox)} == {"unknown"}
    assert len([r for r in caplog.records if r.exc_info and "unexpected error while sending" in r.getMessage()]) == 2
    desk.run(4)
    assert [len(desk.x.replies_to(t.id)) for t in (posted, lost)] == [1, 1]
    assert {r.state for r in desk.rows(outbox)} == {"sent"}


def test_rows_an_error_left_sending_are_in_doubt_on_the_next_step(desk: Desk1) -> None:
    tweet = desk.x.customer_tweet("xia", f"@KestrelCare {RESTART}")
    desk.worker.intake.read_mentions()
    desk.worker.processor.step()
    [row] = desk.rows(outbox)
    desk.x.create_reply(row.text, tweet.id)  # posted, then the database failed before the row was settled
    desk.set_outbox(state="sending")
    desk.worker.sender.in_flight.add(row.id)
    posts = desk.x.calls["create_tweet"]
    desk.run()
    assert desk.x.calls["create_tweet"] == posts
    assert len(desk.x.replies_to(tweet.id)) == 1 and desk.outbox_by_target()[tweet.id].state == "sent"


def test_the_worker_loop_logs_an_unexpected_error_backs_off_and_goes_on(
    desk: Desk1, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import bot.channel.worker as worker_module

    monkeypatch.setattr(worker_module, "START_BACKOFF_S", 0.01)
    tweet = desk.x.customer_tweet("yan", f"@KestrelCare {RESTART}")
    real_step, calls = desk.worker.processor.step, []

    def step() -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("the database went away")
        return real_step()

    monkeypatch.setattr(desk.worker.processor, "step", step)
    stop = threading.Event()
    runner = threading.Thread(target=desk.worker.run, args=(stop,), kwargs={"idle_sleep_s": 0.01})
    runner.start()
    try:
        for _ in range(500):
            if desk.x.replies_to(tweet.id):
                break
            stop.wait(0.01)
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive() and len(desk.x.replies_to(tweet.id)) == 1
    failures = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


def test_spent_credits_on_reads_wait_ten_minutes_with_an_alert_instead_of_retrying_every_minute(desk: Desk1) -> None:
    from bot.channel.errors import XCreditsDepleted

    desk.x.customer_tweet("una", f"@KestrelCare {RESTART}")
    desk.x.fail("mentions", XCreditsDepleted("HTTP 402: credits spent", endpoint="mentions"))
    desk.run(5)
    assert desk.x.calls["mentions"] == 1  # not hammering a paid endpoint that refuses
    assert desk.rows(inbound_tweets) == []
    [alert] = [row for row in desk.rows(alerts) if row.kind == "credits_depleted"]
    assert "credits are spent" in alert.message and "mentions" in alert.message
    poll = desk.worker.polls["mentions"]
    assert poll.next_at - desk.worker.monotonic() > 500

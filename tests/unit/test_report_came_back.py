"""The worker flags a bot FAQ answer when a later tweet of its conversation goes to a ticket (x_outbox.came_back), so
the reports' "didn't help" needs no join: through the real worker against an in-memory X, the flag is on exactly the
answers a direct join finds, and the charts read from it equal the recount."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, and_, select
from test_worker import RESTART, Desk1, desk  # noqa: F401 (the worker fixture)

from bot.channel.models import inbound_tweets, outbox
from bot.web.reports import ReportService


def _flagged(engine: Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.target_tweet_id, outbox.c.came_back).where(outbox.c.kind == "faq_answer"))
        return {target: bool(flag) for target, flag in rows}


def _joined(engine: Engine) -> set[str]:
    o, t = outbox.c, inbound_tweets.c
    with engine.connect() as conn:
        joined = select(o.target_tweet_id).join_from(outbox, inbound_tweets, and_(
            t.conversation_id == o.conversation_id, t.ticket_id.is_not(None), t.fetched_at > o.created_at,
        )).where(o.kind == "faq_answer")  # fmt: skip
        return set(conn.execute(joined).scalars())


def test_a_customer_who_comes_back_to_a_person_flags_the_bot_answer_before(desk: Desk1) -> None:  # noqa: F811
    came_back = desk.x.customer_tweet("ann", f"@KestrelCare {RESTART}")
    helped = desk.x.customer_tweet("bea", f"@KestrelCare {RESTART}")
    desk.run()
    assert _flagged(desk.engine) == {came_back.id: False, helped.id: False}
    answer = desk.x.replies_to(came_back.id)[0]
    desk.x.customer_tweet("ann", "@KestrelCare that didn't help, outage still, I want a human", in_reply_to=answer.id)
    desk.run()
    with desk.engine.connect() as conn:
        escalated = conn.execute(select(inbound_tweets.c.ticket_id).where(inbound_tweets.c.ticket_id.is_not(None)))
        assert len(escalated.all()) == 1
    assert _flagged(desk.engine) == {came_back.id: True, helped.id: False}
    assert _joined(desk.engine) == {came_back.id}
    now = datetime.now(UTC)
    fast, recount = ReportService(desk.engine, clock=lambda: now), ReportService(desk.engine, rollups=False)
    span = fast.period("today")
    for name in ("deflection", "faq-busiest", "faq-unhelpful"):
        a, b = fast.chart(name, span), recount.chart(name, span)
        assert (a.rows, a.totals) == (b.rows, b.totals), name
    totals = fast.chart("deflection", span).totals
    assert (totals["bot_answers"], totals["didnt_help"]) == (2, 1)

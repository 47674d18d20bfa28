"""The live terminal of `carebot up`: each triaged tweet on one line with its band; a follow-up that joined a
person's ticket reads as joined (with the ticket), not as ignored, and an ignored tweet says why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import insert, update
from web_support import web_desk

from bot.channel.models import inbound_tweets
from bot.up import DecisionFeed
from handoff import transaction


def test_the_feed_says_joined_for_a_follow_up_and_why_a_tweet_was_ignored(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        ticket_id = desk.escalate("my broadband is down", tweet_id="5001", conversation_id="5001")
        now = datetime.now(UTC)
        with transaction(desk.engine) as conn:
            conn.execute(update(inbound_tweets).values(band="human", triaged_at=now))
            for tweet_id, text, band, reason in (
                ("5002", "DM sent, thanks Ann", "ignore", None),
                ("5003", "win a free iphone, click here", "ignore", "spam"),
            ):
                conn.execute(
                    insert(inbound_tweets).values(
                        tweet_id=tweet_id, source="mention", author_id="501", author_username="maya_k", text=text,
                        conversation_id="5001" if tweet_id == "5002" else tweet_id, created_at=now, fetched_at=now,
                        state="done", attempts=1, band=band, ignore_reason=reason, triaged_at=now,
                    )
                )  # fmt: skip
            desk.handoff.add_customer_message(
                conn, "5001", tweet_id="5002", author="maya_k", text="DM sent, thanks Ann", created_at=now
            )
        console = Console(record=True, width=200, color_system=None)
        assert DecisionFeed(desk.engine, console).poll() == 3
        lines = console.export_text().splitlines()
        [follow_up] = [line for line in lines if "DM sent" in line]
        [spam] = [line for line in lines if "free iphone" in line]
        assert follow_up.split()[0] == "joined" and f"#{ticket_id}" in follow_up
        assert spam.split()[0] == "ignore" and "(spam)" in spam

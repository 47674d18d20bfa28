"""An agent's reply to a ticket, on its way to X through the same outbox as the bot's (one reply per target tweet,
reconciled after crashes).

`queue_agent_reply` checks the signed text against the tone guide, picks the tweet to reply to, inserts the outbox
row and records the outbound message on the ticket, all in the caller's transaction. The reply goes under the
customer's newest tweet that has no reply of ours yet; when we have answered all of them (the bot acknowledged
the last one, say), under our own newest reply in the thread, so the thread stays one conversation and no tweet
ever gets two replies from us. DM tickets are answered by DM; a public ticket that a customer's DM joined
(`dm_conversation_id`) is answered by DM by default (`channel`), or in the public thread when the agent chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from bot.channel.models import inbound_tweets, outbox
from bot.channel.store import id_key, utcnow
from bot.decision.tone import Author, ToneGuide, check
from handoff.models import tickets
from handoff.service import Handoff


class ReplyError(Exception):
    """The reply cannot be sent as it is; the message says why, for the agent."""


class Replier(Protocol):
    id: int
    initials: str


@dataclass(frozen=True)
class QueuedReply:
    outbox_id: int
    target_tweet_id: str


RECENT = 200


def reply_target(conn: Connection, conversation_id: str, *, dm: bool, ticket_id: int) -> str:
    """The tweet an agent's reply in this conversation goes under (or a fresh DM target)."""
    if dm:
        sent = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.conversation_id == conversation_id)
        ).scalar_one()
        return f"dm-t{ticket_id}-{sent + 1}"
    replied = set(
        conn.execute(select(outbox.c.target_tweet_id).where(outbox.c.conversation_id == conversation_id)).scalars()
    )
    customer_tweets = conn.execute(
        select(inbound_tweets.c.tweet_id).where(inbound_tweets.c.conversation_id == conversation_id)
    ).scalars()
    for tweet_id in sorted(customer_tweets, key=id_key, reverse=True):
        if tweet_id not in replied:
            return str(tweet_id)
    ours = conn.execute(
        select(outbox.c.posted_tweet_id).where(
            outbox.c.conversation_id == conversation_id, outbox.c.state == "sent", outbox.c.posted_tweet_id.is_not(None)
        )
    ).scalars()
    for posted in sorted(ours, key=id_key, reverse=True):
        if posted not in replied:
            return str(posted)
    raise ReplyError("Our last reply in this thread is still being posted. Send yours again in a moment.")


def reply_channels(source: str, dm_conversation_id: str | None) -> tuple[str, ...]:
    """Where an agent may answer a ticket: a DM ticket by DM; a public ticket in public, and also by DM once the
    customer's DM joined it."""
    if source == "dm":
        return ("dm",)
    return ("dm", "public") if dm_conversation_id else ("public",)


def default_channel(source: str, dm_conversation_id: str | None) -> str:
    """By DM once the customer has written by DM (a DM ticket, or a public ticket their DM joined); else public."""
    return reply_channels(source, dm_conversation_id)[0]


def recent_reply_texts(conn: Connection) -> list[str]:
    """The texts of our latest replies (bot and agents): X refuses a text identical to a recent one."""
    return list(conn.execute(select(outbox.c.text).order_by(outbox.c.id.desc()).limit(RECENT)).scalars())


def queue_agent_reply(
    conn: Connection,
    handoff: Handoff,
    ticket_id: int,
    agent: Replier,
    text: str,
    *,
    kind: str = "agent_reply",
    guide: ToneGuide | None = None,
    now: datetime | None = None,
    channel: str | None = None,
) -> QueuedReply:
    """Queue `text` (already signed with the agent's initials by the server) as the agent's reply to a ticket.
    `channel` (dm | public; None: reply_channel's default) says where it goes."""
    ticket = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
    if ticket is None:
        raise ReplyError(f"There is no ticket {ticket_id}.")
    channel = channel or default_channel(ticket.source, ticket.dm_conversation_id)
    if channel not in reply_channels(ticket.source, ticket.dm_conversation_id):
        raise ReplyError("This ticket has no DM conversation: the reply goes in public." if channel == "dm" else
                         "A DM ticket has no public thread: the reply goes by DM.")  # fmt: skip
    dm = channel == "dm"
    recent = recent_reply_texts(conn)
    # A public reply may carry no personal data; a DM may (never card details): bot.decision.tone.check.
    problems = check(text, Author.agent(agent.initials), recent_replies=recent, guide=guide, dm=dm)
    if problems:
        raise ReplyError(" ".join(problem.message for problem in problems))
    now = now or utcnow()
    # A joined ticket's DMs go to the customer's DM conversation (the sender finds the recipient from it).
    conversation = ticket.dm_conversation_id if dm and ticket.source != "dm" else ticket.conversation_id
    target = reply_target(conn, conversation, dm=dm, ticket_id=ticket_id)
    try:
        with conn.begin_nested():  # a reply racing ours to the same tweet must not abort the caller's transaction
            outbox_id = conn.execute(
                insert(outbox)
                .values(
                    target_tweet_id=target, conversation_id=conversation, kind=kind, author=agent.initials,
                    text=text, state="pending", attempts=0, ticket_id=ticket_id, created_at=now, updated_at=now,
                )  # fmt: skip
                .returning(outbox.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise ReplyError("Someone else has just replied to this tweet. Reload the ticket to see it.") from exc
    handoff.record_outbound(
        conn, ticket_id, author=agent.initials, text=text, outbox_id=outbox_id, kind=kind, channel=channel
    )
    handoff.mark_answered(conn, ticket_id, agent.id)
    return QueuedReply(outbox_id, target)

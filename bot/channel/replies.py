"""An agent's reply to a ticket, on its way to X through the same outbox as the bot's (one reply per target tweet,
reconciled after crashes).

`queue_agent_reply` checks the signed text against the tone guide, picks the tweet to reply to, inserts the outbox
row and records the outbound message on the ticket, all in the caller's transaction. The reply goes under the
customer's newest tweet that summons the care account and has no reply of ours yet: X lets a self-serve app reply
only under a tweet whose author @mentioned the replying account or quoted one of its posts (since 2026-02-23,
docs.x.com/x-api/posts/manage-tweets/integrate), so never under a keyword-search hit that never mentioned us. A
tweet whose bot reply failed (and was never posted) takes the agent's reply instead. When each of the customer's
tweets that summon us has our reply (the bot acknowledged the last one, say), the reply goes under our own newest
reply in the thread: X's documented rule does not name a reply under the account's own tweet, developers report
that X takes it, and if X refuses it the sender marks it failed with the reason (XReplyNotAllowed). In a thread
with no tweet that summons us, none is queued: NoPublicReply says why and what the agent can do instead (a DM, or
a new tweet that mentions the customer). No tweet ever gets two replies from us. DM tickets are answered by DM; a public
ticket that a customer's DM joined (`dm_conversation_id`) is answered by DM by default (`channel`), or in the
public thread when the agent chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.channel.models import inbound_tweets, outbox
from bot.channel.store import id_key, utcnow
from bot.decision.tone import Author, ToneGuide, check
from handoff.models import messages, tickets
from handoff.service import Handoff

# Inbound tweets that summon the care account in the sense of X's reply restriction: read from the mentions
# timeline (X lists a tweet there when it @mentions us, a reply under one of ours included), a gap backfill of
# those, or a keyword-search hit that mentions us or replies to us (bot.channel.intake.Intake.read_search).
# A "search" hit never mentioned us: X refuses a reply under it.
SUMMONING_SOURCES = ("mention", "backfill")
# The start of the reason an outbox row failed when X's reply restriction refused or would refuse it.
NO_REPLY_HERE = "X allows no reply here"


class ReplyError(Exception):
    """The reply cannot be sent as it is; the message says why, for the agent."""


class NoPublicReply(ReplyError):
    """X allows no public reply in this thread now (its reply restriction): the message says why and offers what
    the agent can do instead."""


def alternatives(handle: str | None) -> str:
    """What an agent can do where X allows no reply: the words shown with NoPublicReply and failed replies."""
    who = f"@{handle}" if handle else "the customer"
    return f"Answer {who} by DM if their DMs are open, or in a new tweet that mentions {who}."


def no_reply_reason(handle: str | None, why: str) -> str:
    """The agent's sentence for a reply X does not allow: NO_REPLY_HERE, `why`, and the alternatives."""
    return f"{NO_REPLY_HERE}: {why}. {alternatives(handle)}"


class Replier(Protocol):
    id: int
    initials: str


@dataclass(frozen=True)
class QueuedReply:
    outbox_id: int
    target_tweet_id: str


RECENT = 200


def reply_target(
    conn: Connection, conversation_id: str, *, dm: bool, ticket_id: int, reuse_failed: bool = False,
    own_replies: bool = True,
) -> str:  # fmt: skip
    """The tweet a reply in this conversation goes under (or a fresh DM target): the customer's newest tweet that
    summons us (SUMMONING_SOURCES) with no reply of ours; with `reuse_failed`, also one whose only reply is a
    failed bot reply (reusable_failed_reply). With `own_replies`, when each of those has our reply, under our own
    newest reply: X's documented rule does not name a reply under the account's own tweet, which developers report
    X takes (a thread of one's own); when X refuses it, the sender marks it failed with the reason
    (XReplyNotAllowed). NoPublicReply when there is no such tweet, or no tweet in the thread summons us at all."""
    if dm:
        sent = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.conversation_id == conversation_id)
        ).scalar_one()
        return f"dm-t{ticket_id}-{sent + 1}"
    replied = {
        row.target_tweet_id: row
        for row in conn.execute(
            select(outbox.c.id, outbox.c.target_tweet_id, outbox.c.state).where(
                outbox.c.conversation_id == conversation_id
            )
        )
    }
    customer_tweets = conn.execute(
        select(inbound_tweets.c.tweet_id, inbound_tweets.c.source, inbound_tweets.c.author_username).where(
            inbound_tweets.c.conversation_id == conversation_id
        )
    ).all()
    summoning = sorted((t for t in customer_tweets if t.source in SUMMONING_SOURCES), key=lambda t: id_key(t.tweet_id))
    for tweet in reversed(summoning):
        ours = replied.get(tweet.tweet_id)
        if ours is None or (reuse_failed and reusable_failed_reply(conn, ours.id) is not None):
            return str(tweet.tweet_id)
    if own_replies and summoning:
        ours_sent = conn.execute(
            select(outbox.c.posted_tweet_id).where(
                outbox.c.conversation_id == conversation_id, outbox.c.state == "sent",
                outbox.c.posted_tweet_id.is_not(None),
            )
        ).scalars()  # fmt: skip
        for posted in sorted(ours_sent, key=id_key, reverse=True):
            if posted not in replied:
                return str(posted)
    handle = next((t.author_username for t in reversed(customer_tweets) if t.author_username), None)
    if not summoning:
        raise NoPublicReply(no_reply_reason(handle, _never_mentioned(handle)))
    if any(replied[t.tweet_id].state in ("pending", "sending", "unknown") for t in summoning):
        raise ReplyError("Our last reply in this thread is still being posted. Send yours again in a moment.")
    raise NoPublicReply(
        no_reply_reason(handle, "X takes a reply only under the customer's tweets that mention us, and each of "
                                "them has had a reply of ours (sent, or failed: see the thread)")
    )  # fmt: skip


def _never_mentioned(handle: str | None) -> str:
    who = f"@{handle}" if handle else "the customer"
    return f"{who} never mentioned us in this thread (a keyword-search hit), and X takes a reply only under a tweet " \
           "that mentions us"  # fmt: skip


def reusable_failed_reply(conn: Connection, outbox_id: int) -> int | None:
    """The outbox row `outbox_id` when it is a failed bot reply that no ticket message shows and that X's reply
    restriction did not refuse: it was never posted, so an agent's reply may take its place under the same tweet."""
    row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).first()
    if row is None or row.state != "failed" or row.author != "bot" or (row.last_error or "").startswith(NO_REPLY_HERE):
        return None
    shown = conn.execute(select(messages.c.id).where(messages.c.outbox_id == outbox_id).limit(1)).first()
    return None if shown is not None else int(row.id)


def reply_channels(source: str, dm_conversation_id: str | None, *, public_allowed: bool = True) -> tuple[str, ...]:
    """Where an agent may answer a ticket: a DM ticket by DM; a public ticket in public, and also by DM once the
    customer's DM joined it. Where X allows no public reply in the thread (`public_allowed` False: its reply
    restriction), by DM to the customer (X refuses it if their DMs are closed to us)."""
    if source == "dm":
        return ("dm",)
    if dm_conversation_id:
        return ("dm", "public")
    return ("public",) if public_allowed else ("dm",)


def default_channel(source: str, dm_conversation_id: str | None, *, public_allowed: bool = True) -> str:
    """By DM once the customer has written by DM (a DM ticket, or a public ticket their DM joined), or where X
    allows no public reply; else public."""
    return reply_channels(source, dm_conversation_id, public_allowed=public_allowed)[0]


def public_reply_allowed(conn: Connection, ticket_id: int, conversation_id: str) -> bool:
    """Whether X's reply restriction leaves a tweet in this thread for a public reply (reply_target)."""
    try:
        reply_target(conn, conversation_id, dm=False, ticket_id=ticket_id, reuse_failed=True)
    except NoPublicReply:
        return False
    except ReplyError:
        return True  # our last reply is still being posted: the thread takes one
    return True


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
    public = (
        ticket.source == "dm"
        or ticket.dm_conversation_id is not None
        or public_reply_allowed(conn, ticket_id, ticket.conversation_id)
    )
    channels = reply_channels(ticket.source, ticket.dm_conversation_id, public_allowed=public)
    channel = channel or channels[0]
    if channel == "public" and not public:
        reply_target(conn, ticket.conversation_id, dm=False, ticket_id=ticket_id, reuse_failed=True)  # says why
    if channel not in channels:
        raise ReplyError("This ticket has no DM conversation: the reply goes in public." if channel == "dm" else
                         "A DM ticket has no public thread: the reply goes by DM.")  # fmt: skip
    dm = channel == "dm"
    recent = recent_reply_texts(conn)
    # A public reply may carry no personal data; a DM may (never card details): bot.decision.tone.check.
    problems = check(text, Author.agent(agent.initials), recent_replies=recent, guide=guide, dm=dm)
    if problems:
        raise ReplyError(" ".join(problem.message for problem in problems))
    now = now or utcnow()
    # A joined ticket's DMs go to the customer's DM conversation (the sender finds the recipient from it); where X
    # allows no public reply, to the DM conversation the customer would have with us (dm-<their id>, intake's name).
    conversation = (
        (ticket.dm_conversation_id or f"dm-{ticket.customer_id}") if dm and ticket.source != "dm"
        else ticket.conversation_id
    )  # fmt: skip
    target = reply_target(conn, conversation, dm=dm, ticket_id=ticket_id, reuse_failed=not dm)
    values = {
        "target_tweet_id": target, "conversation_id": conversation, "kind": kind, "author": agent.initials,
        "text": text, "state": "pending", "attempts": 0, "ticket_id": ticket_id, "created_at": now,
        "updated_at": now,
    }  # fmt: skip
    failed = conn.execute(select(outbox.c.id).where(outbox.c.target_tweet_id == target)).scalar()
    if failed is not None and reusable_failed_reply(conn, failed) is not None:
        # The bot's reply to this tweet failed and was never posted: the agent's reply takes its row (one per tweet).
        reset = dict.fromkeys(("next_attempt_at", "posted_tweet_id", "last_error", "sent_at", "faq_slug"))
        claimed = conn.execute(
            update(outbox).where(outbox.c.id == failed, outbox.c.state == "failed").values(**values, **reset)
        ).rowcount
        if claimed != 1:
            raise ReplyError("Someone else has just replied to this tweet. Reload the ticket to see it.")
        outbox_id = failed
    else:
        try:
            with conn.begin_nested():  # a reply racing ours to the same tweet must not abort the caller's transaction
                outbox_id = conn.execute(insert(outbox).values(**values).returning(outbox.c.id)).scalar_one()
        except IntegrityError as exc:
            raise ReplyError("Someone else has just replied to this tweet. Reload the ticket to see it.") from exc
    handoff.record_outbound(
        conn, ticket_id, author=agent.initials, text=text, outbox_id=outbox_id, kind=kind, channel=channel
    )
    handoff.mark_answered(conn, ticket_id, agent.id)
    return QueuedReply(outbox_id, target)

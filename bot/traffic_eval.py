"""`carebot eval traffic`: replay labelled conversations through the worker's own decision path, in a scratch
database, and measure what the bot would have said in public.

Each conversation's turns go in order. A customer turn is stored as an inbound tweet (a mention, or a DM for a DM
conversation) replying to the turn before it, and the worker's TweetProcessor triages it exactly as it triages
live tweets: context from the database, the NLU, the FAQ search and the answer model, the policy, tickets and
outbox rows. Our side's turns are taken as given: a bot turn is a reply the bot posted, an agent turn a reply
an agent posted on a ticket they hold. The conversations advance together, one turn each per step, so that the
worker triages in batches as it does live.

It needs no running server: with no NLU answering at the configured address, it trains the model (or reuses the
cached one) and serves it on a private port, as `carebot eval clinc150` does. The FAQ is a file (by default
training_data/faq.yml) imported into the scratch knowledge base.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from bot.channel.models import inbound_tweets, outbox
from bot.channel.processing import TweetProcessor
from bot.channel.store import utcnow
from bot.db import make_engine, upgrade
from bot.decision.policy import Policy, load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk, nlu_client, out_of_scope_texts
from bot.kb import KnowledgeBase, cached, kb_config, make_embedder
from bot.nlu.client import NluClient, NluError
from bot.nlu.server import NluServer
from bot.nlu.service import with_private_port
from bot.nlu.training import train
from bot.settings import Settings
from bot.traffic import Conversation, TurnOutcome, figures
from handoff.service import Escalation, Handoff
from knowledge_base.io import read_file
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService

OUR_ACCOUNT = "100"  # the care account's user id in the scratch database
FIRST_ID = 1_000_000_000_000_000_000
AGENT_CAPACITY = 1000
Stage = Callable[[str], None]


@contextmanager
def nlu_for_eval(settings: Settings, on_stage: Stage = lambda stage: None) -> Iterator[tuple[NluClient, str]]:
    """The NLU server at the configured address when one answers there, else a model trained (or taken from
    the cache) and served on a private port for the run. Yields the client and where it came from."""
    running = nlu_client(settings)
    try:
        running.parse("hello")
    except NluError:
        running.close()
    else:
        try:
            yield running, f"the NLU server at {settings.effective_nlu_url}"
        finally:
            running.close()
        return
    on_stage("training the NLU model (or reusing the cached one)")
    model, _ = train(settings)
    on_stage("starting Rasa on a private port")
    with NluServer(with_private_port(settings), model) as server, server.client() as client:
        yield client, f"model {model.name}, served for this run"


@dataclass
class _Replay:
    """The scratch world: ids handed out, and which turn is which tweet."""

    engine: Engine
    handoff: Handoff
    next_id: int = FIRST_ID
    tweet_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (conversation, turn id) → tweet id
    last_customer: dict[str, str] = field(default_factory=dict)  # conversation → its last customer tweet id
    agents: list[int] = field(default_factory=list)
    held: dict[int, int] = field(default_factory=dict)  # agent id → tickets held

    customers: dict[str, str] = field(default_factory=dict)  # conversation → its customer's user id

    def customer_id(self, conversation: str) -> str:
        return self.customers.setdefault(conversation, str(FIRST_ID // 1000 + len(self.customers) + 1))

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


def _agent_for(replay: _Replay) -> tuple[int, str]:
    """A replay agent with room for one more ticket (a new one every AGENT_CAPACITY conversations)."""
    for agent_id in replay.agents:
        if replay.held.get(agent_id, 0) < AGENT_CAPACITY:
            return agent_id, replay.handoff.agent(agent_id).initials
    n = len(replay.agents)
    initials = "R" + chr(ord("A") + n % 26) + (chr(ord("A") + n // 26) if n >= 26 else "")
    agent = replay.handoff.add_agent(
        f"replay-agent-{n + 1}", f"Replay agent {n + 1}", initials, capacity=AGENT_CAPACITY, status="online"
    )
    replay.agents.append(agent.id)
    return agent.id, initials


def _store_customer_turn(replay: _Replay, conversation: Conversation, index: int, now: Any) -> str:
    turn = conversation.turns[index]
    tweet_id = replay.new_id()
    replay.tweet_ids[(conversation.id, turn.id)] = tweet_id
    previous = replay.tweet_ids.get((conversation.id, conversation.turns[index - 1].id)) if index else None
    root = replay.tweet_ids[(conversation.id, conversation.turns[0].id)] if index else tweet_id
    with replay.engine.begin() as conn:
        conn.execute(
            inbound_tweets.insert().values(
                tweet_id=tweet_id, source="dm" if conversation.channel == "dm" else "mention",
                author_id=replay.customer_id(conversation.id), author_username=replay.customer_id(conversation.id),
                text=turn.text, conversation_id=root, in_reply_to_tweet_id=previous, created_at=now, fetched_at=now,
                state="new", attempts=0,
            )
        )  # fmt: skip
    replay.last_customer[conversation.id] = tweet_id
    return tweet_id


def _store_our_turn(replay: _Replay, conversation: Conversation, index: int, now: Any) -> None:
    """A reply our side posted in the recorded conversation: the bot's, or an agent's on a ticket they hold."""
    turn = conversation.turns[index]
    tweet_id = replay.new_id()
    replay.tweet_ids[(conversation.id, turn.id)] = tweet_id
    root = replay.tweet_ids[(conversation.id, conversation.turns[0].id)] if index else tweet_id
    if turn.author == "other":
        return
    row = {
        "target_tweet_id": f"r{tweet_id}", "conversation_id": root, "text": turn.text, "state": "sent",
        "attempts": 1, "posted_tweet_id": tweet_id, "created_at": now, "updated_at": now,
    }  # fmt: skip
    if turn.author == "bot":
        with replay.engine.begin() as conn:
            conn.execute(outbox.insert().values(kind="faq_answer", author="bot", **row))
        return
    agent_id, initials = _agent_for(replay)
    customer_tweet = replay.last_customer.get(conversation.id)
    ticket_id: int | None = None
    if customer_tweet is not None:
        with replay.engine.begin() as conn:
            ticket = replay.handoff.open_ticket_for(conn, root)
            if ticket is None:
                text = next(t.text for t in conversation.turns if replay.tweet_ids.get((conversation.id, t.id))
                            == customer_tweet)  # fmt: skip
                ticket_id = replay.handoff.escalate(conn, Escalation(
                    conversation_id=root, tweet_id=customer_tweet, customer_id="replay", customer_handle=None,
                    text=text, created_at=now, source="dm" if conversation.channel == "dm" else "mention",
                    band="human", reasons=["An agent replied here in the recorded conversation."], priority=3,
                    skill="general",
                ))  # fmt: skip
            else:
                ticket_id = ticket.id
        holder = replay.handoff.ticket(ticket_id).ticket.holder_id if ticket_id is not None else None
        if ticket_id is not None and holder is None:
            replay.handoff.claim(ticket_id, agent_id)
            replay.held[agent_id] = replay.held.get(agent_id, 0) + 1
        elif holder is not None:
            agent_id, initials = holder, replay.handoff.agent(holder).initials
    with replay.engine.begin() as conn:
        outbox_id = conn.execute(
            outbox.insert().values(kind="agent_reply", author=initials, **row).returning(outbox.c.id)
        ).scalar_one()
        if ticket_id is not None:
            replay.handoff.record_outbound(
                conn, ticket_id, author=initials, text=turn.text, outbox_id=outbox_id, kind="agent_reply"
            )
            replay.handoff.mark_delivery(conn, outbox_id, "sent", tweet_id)
            replay.handoff.mark_answered(conn, ticket_id, agent_id)


def _outcome(conversation: Conversation, index: int, row: Any) -> TurnOutcome:
    turn = conversation.turns[index]
    kept = row.decision or {}
    decision = kept.get("decision") or {}
    faq = decision.get("faq") or {}
    posts = kept.get("reply_status") == "bot_posts"
    return TurnOutcome(
        conversation=conversation.id, id=turn.id, band=row.band or "human", faq_slug=faq.get("slug"),
        reply_kind=decision.get("reply_kind") if posts else None, reply=kept.get("reply") if posts else None,
        position=decision.get("position", "opener"), intent=decision.get("intent"),
        confidence=float(decision.get("confidence") or 0.0),
        ignore_reason=decision.get("ignore_reason"), reasons=tuple(decision.get("reasons") or ()),
        answer=decision.get("answer"), expected=turn.expected,
    )  # fmt: skip


def replay_conversations(
    conversations: Sequence[Conversation], desk: Desk, engine: Engine, *, on_progress: Stage = lambda s: None
) -> list[TurnOutcome]:
    """Replay the conversations through a TweetProcessor on `engine` (a migrated, empty database)."""
    handoff = Handoff(engine, sla_minutes=60)
    processor = TweetProcessor(engine, desk, handoff, account_id=OUR_ACCOUNT, batch_size=64, nlu_wait_s=0)
    replay = _Replay(engine, handoff)
    outcomes: dict[tuple[str, str], TurnOutcome] = {}
    longest = max(len(c.turns) for c in conversations)
    started = utcnow()
    for step in range(longest):
        now = started + timedelta(minutes=step)
        waiting: list[tuple[Conversation, int, str]] = []
        for conversation in conversations:
            if step < len(conversation.turns) and conversation.turns[step].author == "customer":
                waiting.append((conversation, step, _store_customer_turn(replay, conversation, step, now)))
        while processor.step().triaged:
            pass
        with engine.connect() as conn:
            for conversation, index, tweet_id in waiting:
                row = conn.execute(select(inbound_tweets).where(inbound_tweets.c.tweet_id == tweet_id)).one()
                outcomes[(conversation.id, conversation.turns[index].id)] = _outcome(conversation, index, row)
        for conversation in conversations:
            if step < len(conversation.turns) and conversation.turns[step].author != "customer":
                _store_our_turn(replay, conversation, step, now)
        on_progress(f"step {step + 1} of {longest}: {len(outcomes)} customer turns decided")
    # Replies the bot queued are never sent here: mark them so nothing looks pending to a reader of the database.
    with engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.state == "pending").values(state="sent"))
    return [
        outcomes[(c.id, t.id)] for c in conversations for t in c.turns if (c.id, t.id) in outcomes
    ]


def run_traffic_eval(
    settings: Settings,
    conversations: Sequence[Conversation],
    *,
    faq_file: Path | None = None,
    policy: Policy | None = None,
    on_stage: Stage = lambda stage: None,
) -> tuple[list[TurnOutcome], dict[str, Any]]:
    """Replay the conversations in a scratch database (the FAQ from `faq_file`) and measure the outcomes."""
    began = time.perf_counter()
    policy = policy or load_policy(settings.training_data_dir / "policy.yml")
    guide = ToneGuide.load(settings.training_data_dir / "tone.yml")
    faq_file = faq_file or settings.training_data_dir / "faq.yml"
    records = read_file(faq_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = kb_config(settings)
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix="traffic-eval-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'carebot.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            sessions = sessionmaker(engine)
            embedder = make_embedder(config)
            on_stage(f"importing {len(records)} FAQ entries from {faq_file}")
            service = KnowledgeBaseService(
                sessions, cached(embedder, config), duplicate_threshold=config.duplicate_threshold,
                signature=config.signature,
            )  # fmt: skip
            service.import_entries(records, author="eval", source=str(faq_file))
            kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=3600))
            with nlu_for_eval(settings, on_stage) as (client, nlu_source):
                desk = Desk(
                    client, kb, policy, guide, max_chars=settings.nlu_max_chars,
                    out_of_scope=out_of_scope_texts(settings.training_data_dir, policy),
                    out_of_scope_cache=config.embedding_cache_dir,
                )  # fmt: skip
                desk.answer_model()  # fit before the clock of the replay starts
                on_stage("replaying")
                replay_began = time.perf_counter()
                outcomes = replay_conversations(conversations, desk, engine, on_progress=on_stage)
                replay_s = time.perf_counter() - replay_began
        finally:
            engine.dispose()
    report = {
        "conversations": len(conversations),
        "nlu": nlu_source,
        "faq_file": str(faq_file),
        "faq_entries": len(records),
        "policy_version": policy.version,
        **figures(outcomes),
        "answer_model_fit_s": [round(s, 3) for s in desk.answers.fit_seconds],
        "timings": {"replay_s": round(replay_s, 1), "total_s": round(time.perf_counter() - began, 1)},
    }
    return outcomes, report


def write_decisions(outcomes: Sequence[TurnOutcome], path: Path) -> None:
    """One JSON line per customer turn (written whole, then moved into place)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.to_dict(), ensure_ascii=False) + "\n")
    temporary.replace(path)

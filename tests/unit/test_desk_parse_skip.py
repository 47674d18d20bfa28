"""Rasa is not asked where the decision cannot depend on its parse: our own tweets. Their decisions are the same as
with a real parse (band, ignore reason, reasons, reply, priority), and they are decided while the NLU is down.
Explicit opt-outs, exact repeats and opted-out customers are still parsed: their decisions carry Rasa's reading."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from channel_support import ACCOUNT
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from bot import desk as desk_module
from bot.ask import Assessment
from bot.channel.models import inbound_tweets
from bot.channel.processing import TweetProcessor
from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.decision.triage import Context
from bot.desk import Desk, Question
from bot.kb import KnowledgeBase
from bot.nlu.client import NluResult, NluUnavailable, parse_response
from bot.nlu.testing import canned_parse
from handoff.service import Handoff
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "tests" / "data" / "policy.yml"
RESTART = "How do I restart my Kestrel hub?"


def _dev_texts(limit: int = 60) -> list[str]:
    texts: list[str] = []
    with (ROOT / "training_data" / "conversations" / "dev_conversations.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            for turn in json.loads(line)["turns"]:
                if turn["author"] == "customer":
                    texts.append(turn["text"])
    return texts[:limit]


HOSTILE = [
    line for line in (ROOT / "tests" / "data" / "hostile_tweets.txt").read_text(encoding="utf-8").splitlines() if line
]
OPT_OUTS = ["STOP", "STOP STOP STOP", "stop replying to me", "stop sending me texts, my line is down", "no more bot"]
TEXTS = [RESTART, *OPT_OUTS, *_dev_texts(), *HOSTILE]

OWN = [
    Context(from_our_account=True),
    Context(from_our_account=True, duplicate_of="7"),
    Context(from_our_account=True, opted_out=True),
    Context(from_our_account=True, human_owns_thread=True, prior_contacts=5, waiting_minutes=600),
    Context(from_our_account=True, in_thread_after_bot_answer=True, bot_already_replied_in_interaction=True),
    Context(from_our_account=True, direct_message=True),
    Context(from_our_account=True, addressed_to_us=False),
]
CUSTOMERS = [
    Context(),
    Context(duplicate_of="7"),
    Context(opted_out=True),
    Context(opted_out=True, duplicate_of="7"),
    Context(human_owns_thread=True),
    Context(direct_message=True),
    Context(in_thread_after_bot_answer=True, bot_already_replied_in_interaction=True),
]


class RecordingNlu:
    """Stands in for Rasa: the message kind from keywords, and every text it was asked to parse."""

    def __init__(self) -> None:
        self.down = False
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def parse(self, text: str) -> NluResult:
        with self._lock:
            self.asked.append(text)
        if self.down:
            raise NluUnavailable("the NLU server is unavailable: cannot connect")
        lowered = text.lower()
        rules = [
            ("restart", "product_question"), ("down", "outage_report"), ("stop", "opt_out"), ("bot", "opt_out"),
            ("bill", "billing_issue"), ("person", "request_human"), ("thank", "thanks"), ("?", "tech_support"),
        ]  # fmt: skip
        intent = next((name for word, name in rules if word in lowered), "complaint")
        return parse_response(canned_parse(text, intent, 0.91), text)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _desk(engine: Engine, nlu: RecordingNlu) -> Desk:
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    service.create_draft(
        EntryContent(
            slug="restart-hub",
            question=RESTART,
            answer="Hold the reset button for 10 seconds, then wait 2 minutes.",
            paraphrases=("my hub is frozen how do I reboot it",),
            tags=("hub",),
            language="en",
        ),  # fmt: skip
        author="editor",
    )
    service.publish("restart-hub", author="editor")
    kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=0))
    return Desk(nlu, kb, load_policy(POLICY), ToneGuide.load(), parse_threads=3)  # type: ignore[arg-type]


def _questions() -> list[Question]:
    contexts = [*OWN, *CUSTOMERS]
    return [Question(text, contexts[i % len(contexts)], variant_seed=str(1000 + i)) for i, text in enumerate(TEXTS * 2)]


def _outcome(result: Assessment) -> dict[str, Any]:
    return {
        "decision": result.decision.to_dict(), "reply": result.reply, "reply_status": result.reply_status,
        "violations": [violation.to_dict() for violation in result.violations],
    }  # fmt: skip


def _always_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desk_module, "_decided_without_parse", lambda question: False)


def test_own_tweets_are_decided_as_with_a_parse_without_asking_rasa(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = _questions()
    own = [q for q in questions if q.context is not None and q.context.from_our_account]
    assert own and len(own) < len(questions)

    skipping, parsing = RecordingNlu(), RecordingNlu()
    the_desk = _desk(engine, skipping)
    skipped = the_desk.ask_many(questions)
    the_desk.nlu = parsing  # type: ignore[assignment]
    with monkeypatch.context() as patch:
        _always_parsed(patch)
        parsed = the_desk.ask_many(questions)

    assert Counter(parsing.asked) == Counter(q.text for q in questions)  # the reference parsed every tweet
    assert Counter(skipping.asked) == Counter(q.text for q in questions if q not in own)  # no own tweet parsed
    for question, with_skip, with_parse in zip(questions, skipped, parsed, strict=True):
        assert _outcome(with_skip) == _outcome(with_parse), question
    for question, result in zip(questions, skipped, strict=True):
        if question in own:
            assert result.decision.ignore_reason == "own_tweet"
            assert result.nlu is None and not result.nlu_unavailable
        else:
            assert result.nlu is not None  # opt-outs, repeats, opted-out customers: all parsed


def test_own_tweets_are_decided_while_the_nlu_is_down(engine: Engine) -> None:
    questions = _questions()
    nlu = RecordingNlu()
    the_desk = _desk(engine, nlu)
    reference = the_desk.ask_many(questions)
    nlu.down = True
    for use_nlu in (True, False):
        results = the_desk.ask_many(questions, use_nlu=use_nlu)
        for question, result, with_parse in zip(questions, results, reference, strict=True):
            own = question.context is not None and question.context.from_our_account
            assert result.nlu_unavailable is not own, question
            if own:
                assert _outcome(result) == _outcome(with_parse)


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("STOP", Context()),
        ("STOP STOP STOP", Context(opted_out=True)),
        ("stop sending me texts, my line is down", Context()),
        ("my bill is wrong", Context(duplicate_of="7")),
        ("my bill is wrong", Context(opted_out=True, human_owns_thread=True)),
    ],
)
def test_opt_outs_and_repeats_depend_on_the_parse(text: str, context: Context, engine: Engine) -> None:
    """Why these are still parsed: the decision without a parse is not the decision with one."""
    nlu = RecordingNlu()
    the_desk = _desk(engine, nlu)
    [with_parse] = the_desk.ask_many([Question(text, context, variant_seed="1")])
    assert nlu.asked == [text]
    nlu.down = True
    [without] = the_desk.ask_many([Question(text, context, variant_seed="1")])
    assert _outcome(without) != _outcome(with_parse)


def _store(engine: Engine, tweet_id: str, author_id: str, text: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            inbound_tweets.insert().values(
                tweet_id=tweet_id, source="mention", author_id=author_id, author_username="someone", text=text,
                conversation_id=tweet_id, created_at=now, fetched_at=now, state="new", attempts=0,
            )
        )  # fmt: skip


def test_a_batch_of_own_tweets_says_nothing_of_the_nlu(engine: Engine) -> None:
    """While the NLU is down, our own tweets are triaged at once (not left waiting for it), and a probe batch of
    them alone, which asks no parse, does not count as the NLU having answered."""
    nlu = RecordingNlu()
    nlu.down = True
    processor = TweetProcessor(engine, _desk(engine, nlu), Handoff(engine, sla_minutes=60), account_id=ACCOUNT.id)
    _store(engine, "1", "555", "@KestrelCare my bill is wrong")
    processor.step()
    assert processor.nlu_failures == 1 and nlu.asked == ["@KestrelCare my bill is wrong"]
    retry_at = processor.nlu_retry_at
    _store(engine, "2", ACCOUNT.id, "@someone we are on it")
    processor.step()  # the NLU is not asked before its retry time
    processor.nlu_retry_at = None  # the next step probes the NLU with one tweet: our own
    _store(engine, "3", ACCOUNT.id, "@someone sorted now")
    processor.step()
    with engine.connect() as conn:
        rows = {row.tweet_id: row for row in conn.execute(select(inbound_tweets)).all()}
    assert [(rows[i].state, rows[i].ignore_reason) for i in ("2", "3")] == [("done", "own_tweet")] * 2
    assert rows["1"].state == "waiting"
    assert nlu.asked == ["@KestrelCare my bill is wrong"]
    assert processor.nlu_failures == 1 and retry_at is not None

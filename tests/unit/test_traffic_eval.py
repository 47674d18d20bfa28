"""`carebot eval traffic`: the conversations file (every malformed line refused with its number), the figures,
and the replay through the worker's TweetProcessor with a keyword NLU and the fake embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from bot.nlu.client import NluResult, parse_response
from bot.nlu.testing import canned_parse
from bot.traffic import Expected, TrafficFileError, TurnOutcome, figures, parse_conversation, read_conversations
from bot.traffic_eval import replay_conversations, write_decisions
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

POLICY = Path(__file__).resolve().parent.parent / "data" / "policy.yml"


def turn(author: str = "customer", text: str = "x", turn_id: str = "t1", **extra: object) -> dict[str, object]:
    return {"id": turn_id, "author": author, "text": text, **extra}


def line(**overrides: object) -> str:
    data: dict[str, object] = {
        "conversation": "c1",
        "turns": [{"id": "t1", "author": "customer", "text": "hi", "expected": {"action": "social"}}],
    }
    data.update(overrides)
    return json.dumps(data)


BAD_LINES = [
    ("not json", "{nope", "not JSON"),
    ("a list", "[]", "JSON object"),
    ("no turns", line(turns=[]), "turns must be a non-empty list"),
    ("unknown author", line(turns=[turn("robot")]), "author must be one of"),
    ("unknown action", line(turns=[turn(expected={"action": "maybe"})]), "action must be one of"),
    ("answer without slug", line(turns=[turn(expected={"action": "answer"})]), "slug"),
    ("expected on a bot turn", line(turns=[turn("bot", expected={"action": "social"})]), "only customer turns"),
    ("repeated ids", line(turns=[turn(), turn("bot")]), "repeat"),
    ("empty text", line(turns=[turn(text=" ")]), "text must be"),
    ("bad channel", line(channel="sms"), "channel must be one of"),
    ("nested 20,000 deep", "[" * 20_000 + "]" * 20_000, "nested too deeply"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_a_malformed_line_is_refused_with_its_number(name: str, text: str, message: str) -> None:
    with pytest.raises(TrafficFileError, match=message) as caught:
        parse_conversation(text, 7)
    assert "line 7" in str(caught.value)


def test_the_file_names_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(line() + "\n\n" + line(conversation="c2") + "\n" + "{oops\n", encoding="utf-8")
    with pytest.raises(TrafficFileError, match="line 4"):
        read_conversations(path)
    path.write_text(line() + "\n" + line() + "\n", encoding="utf-8")
    with pytest.raises(TrafficFileError, match="line 2: conversation 'c1' appears twice"):
        read_conversations(path)


def outcome(action: str, band: str, reply_kind: str | None, *, slug: str | None = None,
            faq_slug: str | None = None) -> TurnOutcome:  # fmt: skip
    return TurnOutcome("c", "t", band, faq_slug, reply_kind, None, expected=Expected(action, slug))


def test_figures_judge_each_kind_of_public_post() -> None:
    report = figures([
        outcome("answer", "auto", "faq", slug="a", faq_slug="a"),  # right answer
        outcome("answer", "auto", "faq", slug="a", faq_slug="b"),  # wrong entry
        outcome("answer", "approve", None, slug="a", faq_slug="a"),  # a draft: no post
        outcome("social", "auto", "thanks"),  # right social reply
        outcome("person", "auto", "greeting"),  # a canned greeting to a problem: wrong
        outcome("person", "human", "handoff_ack"),  # right acknowledgement
        outcome("silence", "human", "outage_ack"),  # an acknowledgement to off-topic chatter: wrong
        outcome("person", "ignore", None),  # a problem silenced
        outcome("silence", "ignore", None),
    ])  # fmt: skip
    assert report["automatic_posts"] == 6 and report["automatic_posts_right"] == 3
    assert report["post_precision"] == 0.5
    assert report["answerable"] == 3 and report["answered_right"] == 1 and report["drafted_right"] == 1
    assert report["wrongly_silenced"] == 1
    assert report["social_replies_right"] == 1 and report["social_replies_wrong"] == 1
    assert report["posts_by_kind"]["faq"] == {"posts": 2, "wrong": 1, "precision": 0.5}
    assert report["expected_vs_outcome"]["person"] == {"social": 1, "person": 1, "silence": 1}


class KeywordNlu:
    """Stands in for Rasa: the message kind from the first keyword found."""

    RULES = [
        ("restart", "product_question"), ("stop", "opt_out"), ("still", "complaint"), ("thanks", "thanks"),
        ("did", "short_followup"), ("hello", "greeting"),
    ]  # fmt: skip

    def parse(self, text: str) -> NluResult:
        intent = next((name for word, name in self.RULES if word in text.lower()), "complaint")
        return parse_response(canned_parse(text, intent, 0.95), text)


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    service.create_draft(
        EntryContent(slug="restart-hub", question="How do I restart my hub?", answer="Switch it off and on again.",
                     paraphrases=("hub frozen how do I reboot it",), tags=("hub",), language="en"),
        author="editor",
    )  # fmt: skip
    service.publish("restart-hub", author="editor")
    kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=0))
    the_desk = Desk(KeywordNlu(), kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    the_desk.engine = engine  # type: ignore[attr-defined]
    return the_desk


CONVERSATIONS = [
    {"conversation": "answered", "turns": [
        {"id": "1", "author": "customer", "text": "@KestrelCare how do I restart my hub",
         "expected": {"action": "answer", "slug": "restart-hub"}},
        {"id": "2", "author": "bot", "text": "Switch it off and on again. ^bot"},
        {"id": "3", "author": "customer", "text": "thanks but still no signal", "expected": {"action": "person"}},
    ]},
    {"conversation": "with-agent", "turns": [
        {"id": "1", "author": "customer", "text": "@KestrelCare broadband is awful", "expected": {"action": "person"}},
        {"id": "2", "author": "agent", "text": "Sorry to hear that. Have you restarted the hub? ^AB"},
        {"id": "3", "author": "customer", "text": "I did.", "expected": {"action": "person"}},
    ]},
    {"conversation": "stop", "turns": [
        {"id": "1", "author": "customer", "text": "STOP", "expected": {"action": "silence"}},
    ]},
]  # fmt: skip


def test_a_replay_decides_each_customer_turn_in_its_place(desk: Desk, tmp_path: Path) -> None:
    path = tmp_path / "conversations.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS), encoding="utf-8")
    conversations = read_conversations(path)
    outcomes = replay_conversations(conversations, desk, desk.engine)  # type: ignore[attr-defined]
    by_id = {(o.conversation, o.id): o for o in outcomes}
    assert len(outcomes) == 5

    first = by_id[("answered", "1")]
    assert (first.band, first.reply_kind, first.faq_slug) == ("auto", "faq", "restart-hub")
    assert first.reply is not None and "Switch it off" in first.reply and first.reply.endswith("^bot")
    under_bot = by_id[("answered", "3")]
    assert under_bot.position == "after_bot_answer" and under_bot.band == "human" and under_bot.reply is None

    i_did = by_id[("with-agent", "3")]
    assert i_did.position == "held_by_person" and i_did.band == "human" and i_did.reply_kind is None

    stop = by_id[("stop", "1")]
    assert stop.band == "ignore" and stop.ignore_reason == "opt_out"

    report = figures(outcomes)
    assert report["post_precision"] == 1.0 and report["answer_coverage"] == 1.0 and report["wrongly_silenced"] == 0

    out = tmp_path / "decisions.jsonl"
    write_decisions(outcomes, out)
    rows = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
    assert [set(row) >= {"conversation", "id", "band", "faq_slug", "reply_kind", "reply"} for row in rows] == [True] * 5

"""Real-shaped threads tweeted into the sandbox X by customers while the real worker runs (tweepy over HTTP, the
real Rasa, the real MiniLM, a few real FAQ entries and the live policy): where a tweet stands in its conversation
decides what happens to it.

- "I did." under an agent's posted reply joins the agent's ticket, and the bot says nothing;
- "thanks but still no signal" under the bot's answer goes to a person with the thread, and the bot never replies
  twice in a conversation;
- "STOP" (under the bot's answer, or as a new tweet) is an opt-out: recorded, not answered, and the bot stays
  silent for that customer afterwards;
- "how do I stop marketing texts" is an FAQ question, answered with marketing-opt-out;
- every hostile tweet of tests/data/hostile_tweets.txt is decided, and each reply the bot posts for one fits in a
  tweet and carries the bot's signature.

And `carebot eval traffic` end to end as a process: labelled conversations in, figures and one decision per customer
turn out; a malformed file ends with one `error:` line naming the line.

One sandbox X, one database and one worker serve the whole module; each test has its own customers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from worker_support import fresh_database, small_training_data, start_worker, stop_worker, tweet, wait_for
from worker_support import worker_environment as environment_for_worker

from bot.channel.models import inbound_tweets, opt_outs, outbox, worker_heartbeats
from bot.channel.replies import queue_agent_reply
from bot.db import make_engine
from bot.sandbox.testing import running_sandbox
from bot.settings import PROJECT_ROOT
from handoff.service import Handoff
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

pytestmark = pytest.mark.rasa

HOSTILE_TWEETS = PROJECT_ROOT / "tests" / "data" / "hostile_tweets.txt"
DECIDE_TIMEOUT_S = 60
START_TIMEOUT_S = 180  # the worker loads MiniLM, embeds the FAQ and the out-of-scope texts, fits the answer model
BOT_SIGNATURE = " ^bot"


class Desk:
    """The running worker on the sandbox X, and ways to see what it did."""

    def __init__(self, sandbox_url: str, database_url: str, log: Path) -> None:
        self.sandbox_url = sandbox_url
        self.database_url = database_url
        self.log = log
        self.engine = make_engine(database_url)
        self.handoff = Handoff(self.engine)

    def wait(self, condition: Any, what: str, timeout_s: float = DECIDE_TIMEOUT_S) -> None:
        wait_for(condition, timeout_s, what, self.log, self.database_url)

    def row(self, tweet_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(inbound_tweets).where(inbound_tweets.c.tweet_id == tweet_id)).first()

    def decided(self, tweet_id: str) -> Any:
        """The stored tweet once the worker has decided it (state done)."""

        def done() -> bool:
            row = self.row(tweet_id)
            return row is not None and row.state == "done"

        self.wait(done, f"tweet {tweet_id} to be decided")
        return self.row(tweet_id)

    def posts(self) -> list[dict[str, Any]]:
        """Everything our account posted through the API (the sandbox's post log)."""
        return list(httpx.get(f"{self.sandbox_url}/sandbox/posts", timeout=10).json()["data"])

    def replies_to(self, tweet_id: str) -> list[dict[str, Any]]:
        return [post for post in self.posts() if post.get("in_reply_to_tweet_id") == tweet_id]

    def wait_for_reply(self, tweet_id: str) -> dict[str, Any]:
        self.wait(lambda: bool(self.replies_to(tweet_id)), f"our reply to tweet {tweet_id}")
        (reply,) = self.replies_to(tweet_id)
        return reply

    def outbox_settled(self) -> bool:
        """No reply is still on its way to X."""
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.id).where(outbox.c.state.not_in(("sent", "failed")))).first() is None

    def settle(self) -> None:
        self.wait(self.outbox_settled, "the outbox to settle")

    def outbox_rows_for(self, tweet_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(outbox).where(outbox.c.target_tweet_id == tweet_id)).all())

    def opted_out(self, author_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(opt_outs).where(opt_outs.c.author_id == author_id)).first()

    def open_ticket(self, conversation_id: str) -> Any:
        with self.engine.connect() as conn:
            return self.handoff.open_ticket_for(conn, conversation_id)


def _reasons(row: Any) -> list[str]:
    """The decision's reasons, for a failing assert's message."""
    return list(((row.decision or {}).get("decision") or {}).get("reasons") or []) if row is not None else []


def _decision(row: Any) -> dict[str, Any]:
    return dict((row.decision or {}).get("decision") or {})


def _slug(row: Any) -> str | None:
    return (_decision(row).get("faq") or {}).get("slug")


@pytest.fixture(scope="module")
def desk(rasa_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    directory = tmp_path_factory.mktemp("real-threads")
    database_url = fresh_database(f"sqlite:///{directory / 'carebot.db'}")
    with running_sandbox(directory / "sandbox-x.db") as sandbox:
        env = environment_for_worker(
            data_dir=directory / "var", database_url=database_url, sandbox_url=sandbox.url, rasa=rasa_server,
            training_dir=small_training_data(directory / "training"),
        )  # fmt: skip
        log = directory / "worker.log"
        worker = start_worker(env, log)
        the_desk = Desk(sandbox.url, database_url, log)
        try:

            def started() -> bool:
                assert worker.poll() is None, f"the worker exited:\n{log.read_text(errors='replace')[-3000:]}"
                with the_desk.engine.connect() as conn:
                    return conn.execute(select(worker_heartbeats.c.name)).first() is not None

            the_desk.wait(started, "the worker's first step", START_TIMEOUT_S)
            yield the_desk
        finally:
            stop_worker(worker)
            the_desk.engine.dispose()


def _auto_answered(desk: Desk, username: str, text: str, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer's FAQ question that the bot answers on its own; returns the question and the bot's answer."""
    question = tweet(desk.sandbox_url, username, text)
    row = desk.decided(question["id"])
    assert (row.band, _slug(row), _decision(row).get("reply_kind")) == ("auto", slug, "faq"), _reasons(row)
    answer = desk.wait_for_reply(question["id"])
    assert answer["text"].endswith(BOT_SIGNATURE)
    return question, answer


def test_a_reply_under_an_agents_reply_joins_their_ticket_and_the_bot_says_nothing(desk: Desk) -> None:
    opener = tweet(
        desk.sandbox_url, "rt_nia", "@KestrelCare broadband keeps dropping every evening, been like this for a week"
    )
    row = desk.decided(opener["id"])
    assert row.ticket_id is not None and row.band in ("human", "approve"), (row.band, _reasons(row))
    ticket_id = int(row.ticket_id)

    agent = desk.handoff.add_agent("rt_amy", "Amy Bell", "AB", status="online")
    desk.handoff.claim(ticket_id, agent.id)
    text = "Sorry it keeps dropping. Could you restart the Hub tonight and tell us if it helps? ^AB"
    with desk.engine.begin() as conn:
        queued = queue_agent_reply(conn, desk.handoff, ticket_id, agent, text)
    assert queued.target_tweet_id == opener["id"]
    agents_reply = desk.wait_for_reply(opener["id"])
    assert agents_reply["text"] == text

    follow_up = tweet(desk.sandbox_url, "rt_nia", "@KestrelCare I did.", in_reply_to=agents_reply["id"])
    row = desk.decided(follow_up["id"])
    decision = _decision(row)
    assert row.band == "human" and row.ignore_reason is None, (row.band, row.ignore_reason, decision["reasons"])
    assert decision["position"] in ("held_by_person", "after_agent_reply"), decision["reasons"]
    assert decision["reply_kind"] is None and row.ticket_id == ticket_id, decision
    detail = desk.handoff.ticket(ticket_id)
    incoming = [(m.direction, m.tweet_id) for m in detail.messages if m.tweet_id == follow_up["id"]]
    assert incoming == [("in", follow_up["id"])], detail.messages
    assert detail.ticket.is_open and detail.ticket.conversation_id == opener["conversation_id"]

    desk.settle()
    assert desk.replies_to(follow_up["id"]) == [] and desk.outbox_rows_for(follow_up["id"]) == []


def test_thanks_but_still_broken_under_the_bots_answer_goes_to_a_person_with_the_thread(desk: Desk) -> None:
    question, answer = _auto_answered(desk, "rt_olu", "@KestrelCare how do I restart my Kestrel hub?", "restart-router")
    conversation = question["conversation_id"]
    assert desk.open_ticket(conversation) is None  # the bot answered: nobody holds the thread yet

    follow_up = tweet(desk.sandbox_url, "rt_olu", "@KestrelCare thanks but still no signal", in_reply_to=answer["id"])
    row = desk.decided(follow_up["id"])
    decision = _decision(row)
    assert row.band == "human" and row.ignore_reason is None, (row.band, row.ignore_reason, decision["reasons"])
    assert decision["position"] == "after_bot_answer" and decision["attach_thread"], decision
    ticket = desk.open_ticket(conversation)
    assert ticket is not None and ticket.id == row.ticket_id
    messages = desk.handoff.ticket(ticket.id).messages
    assert follow_up["id"] in {m.tweet_id for m in messages if m.direction == "in"}

    desk.settle()
    assert desk.replies_to(follow_up["id"]) == [] and desk.outbox_rows_for(follow_up["id"]) == []
    in_conversation = [post for post in desk.posts() if post["conversation_id"] == conversation]
    assert [post["id"] for post in in_conversation] == [answer["id"]]  # one automated reply per conversation


def test_stop_is_an_opt_out_and_the_bot_stays_silent_for_that_customer(desk: Desk) -> None:
    # Under the bot's answer, in a conversation of its own.
    _, answer = _auto_answered(desk, "rt_pat", "@KestrelCare where do I find my wifi password", "wifi-password-find")
    stop_in_thread = tweet(desk.sandbox_url, "rt_pat", "@KestrelCare STOP", in_reply_to=answer["id"])
    # A new tweet of another customer's.
    stop_fresh = tweet(desk.sandbox_url, "rt_rae", "@KestrelCare STOP")
    for stop in (stop_in_thread, stop_fresh):
        row = desk.decided(stop["id"])
        decision = _decision(row)
        assert (row.band, row.ignore_reason) == ("ignore", "opt_out"), decision["reasons"]
        assert decision["opt_out_request"] and row.ticket_id is None
        assert desk.opted_out(row.author_id) is not None, f"no opt-out recorded for {stop['author_username']}"
    assert _decision(desk.row(stop_in_thread["id"]))["position"] == "after_bot_answer"

    # Their next FAQ questions, each a new conversation the bot would answer for anyone else.
    later = {
        "rt_pat": tweet(desk.sandbox_url, "rt_pat", "@KestrelCare how do I track my order"),
        "rt_rae": tweet(desk.sandbox_url, "rt_rae", "@KestrelCare how do I restart my Kestrel hub?"),
    }
    for username, question in later.items():
        row = desk.decided(question["id"])
        assert row.band != "auto", (username, _reasons(row))
        assert row.decision["reply_status"] != "bot_posts", (username, row.decision["reply_status"], _reasons(row))
        assert any("opted out" in reason for reason in _reasons(row)), (username, _reasons(row))

    desk.settle()
    for silent in (stop_in_thread, stop_fresh, *later.values()):
        assert desk.replies_to(silent["id"]) == [], silent["text"]
        assert desk.outbox_rows_for(silent["id"]) == [], silent["text"]


def test_how_do_i_stop_marketing_texts_is_answered_with_the_marketing_entry(desk: Desk) -> None:
    question, answer = _auto_answered(desk, "rt_sam", "@KestrelCare how do I stop marketing texts", "marketing-opt-out")
    row = desk.row(question["id"])
    assert row.ignore_reason is None and not _decision(row)["opt_out_request"]
    assert desk.opted_out(row.author_id) is None  # a question about marketing texts is not an opt-out
    assert "Contact preferences" in answer["text"]


def _as_mention(line: str) -> str:
    """A line of the hostile file as a tweet to us: @KestrelCare in front unless it names us, cut to what X allows."""
    text = line if "@kestrelcare" in line.lower() else f"@KestrelCare {line}"
    while weighted_length(text) > MAX_WEIGHTED_LENGTH:
        text = text[:-1]
    return text


def test_every_hostile_tweet_is_decided_and_every_reply_fits_and_is_signed(desk: Desk) -> None:
    lines = [line for line in HOSTILE_TWEETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) >= 20
    sent = {tweet(desk.sandbox_url, f"rt_hostile{n}", _as_mention(line))["id"]: line for n, line in enumerate(lines)}

    def all_decided() -> bool:
        with desk.engine.connect() as conn:
            states = conn.execute(
                select(inbound_tweets.c.state).where(inbound_tweets.c.tweet_id.in_(list(sent)))
            ).scalars().all()  # fmt: skip
        return len(states) == len(sent) and set(states) == {"done"}

    desk.wait(all_decided, f"the {len(sent)} hostile tweets to be decided", 90)
    desk.settle()
    replies = [post for post in desk.posts() if post.get("in_reply_to_tweet_id") in sent]
    assert replies, "not even the tweet with personal data was asked to move to DM"  # a hard rule: a public reply
    for reply in replies:
        line = sent[reply["in_reply_to_tweet_id"]]
        length = weighted_length(reply["text"])
        assert length <= MAX_WEIGHTED_LENGTH, (line[:60], length, reply["text"])
        assert reply["text"].endswith(BOT_SIGNATURE), (line[:60], reply["text"])
        for personal in ("jo.bloggs@example.com", "07700 900123", "GB82"):
            assert personal not in reply["text"], (line[:60], reply["text"])  # personal data is never echoed
    targets = [reply["in_reply_to_tweet_id"] for reply in replies]
    assert len(targets) == len(set(targets))  # at most one reply per tweet
    for tweet_id in sent:
        row = desk.row(tweet_id)
        assert row.band in ("auto", "approve", "human", "ignore"), row.band
        assert (row.band == "ignore") == (row.ignore_reason is not None), (sent[tweet_id][:60], row.band)


# ------------------------------------------------------------------------------------ carebot eval traffic

CONVERSATIONS = [
    {"conversation": "hub", "turns": [
        {"id": "hub-1", "author": "customer", "text": "@KestrelCare how do I restart my Kestrel hub?",
         "expected": {"action": "answer", "slug": "restart-router"}},
        {"id": "hub-2", "author": "bot", "text": "Turn the Hub off at the wall, wait 30 seconds, then turn it back "
                                                  "on. Give it a few minutes to reconnect. ^bot"},
        {"id": "hub-3", "author": "customer", "text": "@KestrelCare thanks but still no signal",
         "expected": {"action": "person"}},
    ]},
    {"conversation": "marketing", "turns": [
        {"id": "mkt-1", "author": "customer", "text": "@KestrelCare how do I stop marketing texts",
         "expected": {"action": "answer", "slug": "marketing-opt-out"}},
    ]},
    {"conversation": "stop", "turns": [
        {"id": "stop-1", "author": "customer", "text": "@KestrelCare STOP", "expected": {"action": "silence"}},
    ]},
    {"conversation": "engineer", "turns": [
        {"id": "eng-1", "author": "customer",
         "text": "@KestrelCare engineer didnt turn up AGAIN, third time this month", "expected": {"action": "person"}},
        {"id": "eng-2", "author": "agent", "text": "So sorry about that. Could you DM us your order number so we "
                                                    "can book a firm slot? ^AB"},
        {"id": "eng-3", "author": "customer", "text": "@KestrelCare I did.", "expected": {"action": "person"}},
    ]},
]  # fmt: skip
CUSTOMER_TURNS = sum(turn["author"] == "customer" for c in CONVERSATIONS for turn in c["turns"])  # type: ignore[misc]


def _eval_environment(rasa: Any, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_") or k == "CAREBOT_KB_EMBEDDING_CACHE_DIR"}
    env.update(
        CAREBOT_DATA_DIR=str(data_dir), CAREBOT_NLU_URL=rasa.url, CAREBOT_NLU_TOKEN=rasa.settings.effective_nlu_token
    )
    return env  # CAREBOT_TRAINING_DATA_DIR unset: the project's training_data


def _eval_traffic(rasa: Any, tmp_path: Path, conversations: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "eval", "traffic", str(conversations), "--out", str(out), "--json"],
        env=_eval_environment(rasa, tmp_path), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_eval_traffic_replays_labelled_conversations_and_writes_one_decision_per_customer_turn(
    rasa_server: Any, tmp_path: Path
) -> None:
    conversations = tmp_path / "conversations.jsonl"
    conversations.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS), encoding="utf-8")
    out = tmp_path / "decisions.jsonl"
    done = _eval_traffic(rasa_server, tmp_path, conversations, out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["nlu"] == f"the NLU server at {rasa_server.url}"  # the session's Rasa, not one of its own
    assert report["conversations"] == len(CONVERSATIONS) and report["customer_turns"] == CUSTOMER_TURNS
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_id = {line["id"]: line for line in lines}
    why = {line["id"]: (line["band"], line["faq_slug"], line["reply_kind"], line["reasons"]) for line in lines}
    assert report["wrongly_silenced"] == 0, (report["wrongly_silenced_turns"], why)
    assert report["post_precision"] == 1.0, why
    assert report["answer_coverage"] == 1.0, why
    assert report["decisions_file"] == str(out)

    assert len(lines) == CUSTOMER_TURNS
    expected_ids = [t["id"] for c in CONVERSATIONS for t in c["turns"] if t["author"] == "customer"]  # type: ignore[index]
    assert [line["id"] for line in lines] == expected_ids
    for line in lines:
        assert {"conversation", "id", "band", "faq_slug", "reply_kind", "reply"} <= set(line), line
    assert by_id["hub-3"]["band"] == "human" and by_id["hub-3"]["position"] == "after_bot_answer", why["hub-3"]
    assert by_id["hub-3"]["reply"] is None
    assert (by_id["stop-1"]["band"], by_id["stop-1"]["ignore_reason"]) == ("ignore", "opt_out"), why["stop-1"]
    assert by_id["eng-3"]["band"] == "human" and by_id["eng-3"]["reply"] is None, why["eng-3"]
    assert by_id["eng-3"]["position"] in ("held_by_person", "after_agent_reply")
    for answered, slug in (("hub-1", "restart-router"), ("mkt-1", "marketing-opt-out")):
        assert (by_id[answered]["faq_slug"], by_id[answered]["reply_kind"]) == (slug, "faq"), why[answered]
        assert by_id[answered]["reply"].endswith(BOT_SIGNATURE)


def test_eval_traffic_names_the_bad_line_of_a_malformed_file(rasa_server: Any, tmp_path: Path) -> None:
    conversations = tmp_path / "conversations.jsonl"
    conversations.write_text(json.dumps(CONVERSATIONS[0]) + "\n{not json at all\n", encoding="utf-8")
    out = tmp_path / "decisions.jsonl"
    done = _eval_traffic(rasa_server, tmp_path, conversations, out)
    assert done.returncode == 1, (done.stdout, done.stderr)
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("error:") and "line 2" in said[0], said
    assert "Traceback" not in done.stdout + done.stderr
    assert not out.exists()

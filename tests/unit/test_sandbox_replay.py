"""The replay driver: the file is checked first, tweets go out at their offsets divided by the speed, and
follow-ups land in their thread (under the care account's reply once there is one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.sandbox.replay import ReplayError, TrafficLine, read_traffic, replay
from bot.sandbox.server import create_app


class FakeTime:
    """A clock that only moves when the replay sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "x.db", allowed_hosts=["testserver"])) as test_client:
        yield test_client


def traffic(tmp_path: Path, *lines: dict[str, Any] | str) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"at": -1, "key": "b", "user": "u", "text": "t"}', "line 2: `at` must be"),
        ('{"at": 1, "key": "b", "user": "", "text": "t"}', "line 2: `user` must be"),
        ('{"at": 1, "key": "a", "user": "u", "text": "t"}', "line 2: the key 'a' is used twice"),
        ('{"at": 1, "key": "b", "user": "u", "text": "t", "reply_to": "zz"}', "line 2: reply_to 'zz'"),
        ('{"at": 1, "key": "b", "user": "u", "text": "t", "mood": "sad"}', "line 2: unknown fields mood"),
        ("[1, 2]", "line 2: expected a JSON object"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_posted(tmp_path: Path, client: TestClient, line: str, problem: str) -> None:
    path = traffic(tmp_path, {"at": 0, "key": "a", "user": "ann", "text": "@KestrelCare hi"}, line)
    with pytest.raises(ReplayError, match=problem):
        replay(path, "http://testserver", client=client)
    assert client.get("/sandbox/timeline").json()["data"] == []


def test_a_reply_to_a_later_line_is_refused(tmp_path: Path) -> None:
    path = traffic(
        tmp_path,
        {"at": 5, "key": "a", "user": "ann", "text": "first"},
        {"at": 1, "key": "b", "user": "bob", "text": "reply", "reply_to": "a"},
    )
    with pytest.raises(ReplayError, match="reply_to 'a' does not come earlier"):
        read_traffic(path)


def test_lines_go_out_in_time_order_at_offsets_divided_by_speed(tmp_path: Path, client: TestClient) -> None:
    path = traffic(
        tmp_path,
        {"at": 0, "key": "a", "user": "ann", "text": "@KestrelCare one"},
        {"at": 30, "key": "c", "user": "cat", "text": "@KestrelCare three"},
        {"at": 10, "key": "b", "user": "bob", "text": "@KestrelCare two"},
    )
    fake = FakeTime()
    posted_at: list[tuple[str, float]] = []

    def on_posted(line: TrafficLine, tweet: dict[str, Any]) -> None:
        posted_at.append((line.key, fake.now - 100.0))

    report = replay(path, "http://testserver", speed=10, client=client, clock=fake.clock, sleep=fake.sleep,
                    on_posted=on_posted)  # fmt: skip
    assert posted_at == [("a", 0.0), ("b", pytest.approx(1.0)), ("c", pytest.approx(3.0))]
    assert list(report.posted) == ["a", "b", "c"] and report.refused == []
    texts = [t["text"] for t in client.get("/sandbox/timeline").json()["data"]]
    assert texts == ["@KestrelCare one", "@KestrelCare two", "@KestrelCare three"]


def test_follow_ups_thread_under_our_reply_when_it_exists(tmp_path: Path, client: TestClient) -> None:
    path = traffic(
        tmp_path,
        {"at": 0, "key": "q", "user": "ann", "text": "@KestrelCare hub dead"},
        {"at": 1, "key": "early", "user": "ann", "text": "@KestrelCare hello??", "reply_to": "q"},
        {"at": 2, "key": "late", "user": "ann", "text": "@KestrelCare still dead", "reply_to": "q"},
    )
    fake = FakeTime()

    def answer_the_first(line: TrafficLine, tweet: dict[str, Any]) -> None:
        if line.key == "early":  # the care account replies to the first tweet before the second follow-up
            body = {
                "text": "Sorry! Try a restart ^bot",
                "reply": {"in_reply_to_tweet_id": tweet["in_reply_to_tweet_id"]},
            }
            assert client.post("/2/tweets", headers={"Authorization": "Bearer t"}, json=body).status_code == 201

    report = replay(path, "http://testserver", client=client, clock=fake.clock, sleep=fake.sleep,
                    on_posted=answer_the_first)  # fmt: skip
    timeline = {t["text"]: t for t in client.get("/sandbox/timeline").json()["data"]}
    root, ours = timeline["@KestrelCare hub dead"], timeline["Sorry! Try a restart ^bot"]
    assert timeline["@KestrelCare hello??"]["in_reply_to_tweet_id"] == root["id"]
    assert timeline["@KestrelCare still dead"]["in_reply_to_tweet_id"] == ours["id"]
    assert {t["conversation_id"] for t in timeline.values()} == {root["id"]}
    assert report.threaded_under_reply == 1


def test_refused_tweets_are_reported_and_the_replay_goes_on(tmp_path: Path, client: TestClient) -> None:
    path = traffic(
        tmp_path,
        {"at": 0, "key": "long", "user": "ann", "text": "x" * 25_001},
        {"at": 0, "key": "orphan", "user": "ann", "text": "and?", "reply_to": "long"},
        {"at": 0, "key": "fine", "user": "bob", "text": "@KestrelCare hi"},
    )
    report = replay(path, "http://testserver", speed=1000, client=client)
    assert list(report.posted) == ["fine"]
    assert [key for key, _ in report.refused] == ["long", "orphan"] and "weighted" in report.refused[0][1]


def test_limit_and_speed(tmp_path: Path, client: TestClient) -> None:
    path = traffic(tmp_path, *({"at": i, "key": f"k{i}", "user": "ann", "text": f"@KestrelCare {i}"} for i in range(5)))
    assert list(replay(path, "http://testserver", speed=1000, limit=2, client=client).posted) == ["k0", "k1"]
    with pytest.raises(ReplayError, match="speed"):
        replay(path, "http://testserver", speed=0, client=client)


def test_an_unreachable_sandbox_is_a_clear_error(tmp_path: Path) -> None:
    path = traffic(tmp_path, {"at": 0, "key": "a", "user": "ann", "text": "hi"})
    with pytest.raises(ReplayError, match="cannot reach the sandbox X"):
        replay(path, "http://127.0.0.1:9", speed=1000)

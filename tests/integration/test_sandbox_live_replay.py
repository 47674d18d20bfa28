"""The replay driver and `carebot sandbox` over real HTTP: timing at a chosen speed, follow-ups in threads, and
the command line running the server alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.replay import TrafficLine, replay
from bot.sandbox.testing import RunningSandbox, running_sandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


def created(tweet: dict[str, Any]) -> float:
    return datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00")).timestamp()


def test_replay_keeps_the_recorded_rhythm_at_speed(sandbox: RunningSandbox, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    offsets = [0, 2, 4, 10]
    path.write_text("".join(
        json.dumps({"at": at, "key": f"k{at}", "user": f"u{at}", "text": f"@KestrelCare at {at}"}) + "\n"
        for at in offsets
    ))  # fmt: skip
    report = replay(path, sandbox.url, speed=10)
    assert len(report.posted) == 4 and report.elapsed_s >= 1.0
    tweets = httpx.get(f"{sandbox.url}/sandbox/timeline").json()["data"]
    start = created(tweets[0])
    gaps = [created(t) - start for t in tweets]
    for gap, at in zip(gaps, offsets, strict=True):  # never early; late only by the machine's load
        assert at / 10 - 0.05 <= gap <= at / 10 + 1.0, (gaps, offsets)


def test_follow_ups_thread_under_a_reply_posted_meanwhile(sandbox: RunningSandbox, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        {"at": 0, "key": "q", "user": "ann", "text": "@KestrelCare no internet in LS6"},
        {"at": 0.2, "key": "other", "user": "bob", "text": "@KestrelCare same here"},
        {"at": 0.4, "key": "f1", "user": "ann", "text": "@KestrelCare any news?", "reply_to": "q"},
        {"at": 0.6, "key": "f2", "user": "bob", "text": "@KestrelCare hello?", "reply_to": "other"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    posted: dict[str, str] = {}

    def care_desk_answers_ann(line: TrafficLine, tweet: dict[str, Any]) -> None:
        posted[line.key] = tweet["id"]
        if line.key == "other":  # between Ann's tweet and her follow-up, the care desk answers her
            body = {
                "text": "We know about an outage in LS6, sorry ^bot",
                "reply": {"in_reply_to_tweet_id": posted["q"]},
            }
            httpx.post(f"{sandbox.url}/2/tweets", headers={"Authorization": "Bearer t"}, json=body)

    report = replay(path, sandbox.url, speed=2, on_posted=care_desk_answers_ann)
    timeline = {t["text"]: t for t in httpx.get(f"{sandbox.url}/sandbox/timeline").json()["data"]}
    ours = timeline["We know about an outage in LS6, sorry ^bot"]
    assert timeline["@KestrelCare any news?"]["in_reply_to_tweet_id"] == ours["id"]
    assert timeline["@KestrelCare hello?"]["in_reply_to_tweet_id"] == report.posted["other"]
    assert timeline["@KestrelCare any news?"]["conversation_id"] == report.posted["q"]


def test_the_day_replays_in_full(sandbox: RunningSandbox) -> None:
    report = replay(ROOT / "training_data" / "traffic" / "kestrel_day.jsonl", sandbox.url, speed=1_000_000)
    assert report.refused == [] and len(report.posted) >= 300
    me = httpx.get(f"{sandbox.url}/2/users/me", headers={"Authorization": "Bearer t"}).json()["data"]
    mentions = httpx.get(f"{sandbox.url}/2/users/{me['id']}/mentions", headers={"Authorization": "Bearer t"},
                         params={"max_results": 100}).json()  # fmt: skip
    assert mentions["meta"]["result_count"] == 100 and "next_token" in mentions["meta"]
    search = httpx.get(f"{sandbox.url}/2/tweets/search/recent", headers={"Authorization": "Bearer t"},
                       params={"query": "#kestreldown -@KestrelCare", "max_results": 100}).json()  # fmt: skip
    assert search["meta"]["result_count"] >= 15
    page = httpx.get(sandbox.url + "/")
    assert page.status_code == 200 and "<script>alert" not in page.text and "&lt;script&gt;" in page.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def carebot(args: list[str], tmp_path: Path, **kwargs: Any) -> Any:
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=environment,
                          cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL, **kwargs)  # fmt: skip


def test_carebot_sandbox_runs_alone_and_takes_faults_and_traffic(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/sandbox/faults").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr and server.stderr.read()
            time.sleep(0.2)
        fault = carebot(["sandbox", "fault", "search", "503", "--count", "2", "--url", url], tmp_path)
        assert fault.returncode == 0 and "search → 503 for 2 request(s)" in fault.stderr
        listed = carebot(["sandbox", "faults", "--url", url], tmp_path)
        assert json.loads(listed.stdout)[0]["kind"] == "503"
        bad = carebot(["sandbox", "fault", "search", "teapot", "--url", url], tmp_path)
        assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
        assert carebot(["sandbox", "faults", "--clear", "--url", url], tmp_path).returncode == 0
        assert httpx.get(f"{url}/sandbox/faults").json() == {"faults": []}
        day = ROOT / "training_data" / "traffic" / "kestrel_day.jsonl"
        replayed = carebot(["sandbox", "replay", str(day), "--speed", "1000000", "--limit", "20", "--quiet",
                            "--url", url], tmp_path)  # fmt: skip
        assert replayed.returncode == 0 and "Posted 20 tweets" in replayed.stderr
        assert len(httpx.get(f"{url}/sandbox/timeline").json()["data"]) == 20
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert (tmp_path / "var" / "sandbox-x.db").is_file()
    unreachable = carebot(["sandbox", "faults", "--url", url], tmp_path)
    assert unreachable.returncode == 1 and "cannot reach the sandbox X" in unreachable.stderr

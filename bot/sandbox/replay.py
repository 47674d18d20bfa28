"""Replay recorded customer traffic into the sandbox X: each JSONL line becomes a customer tweet, posted to
/sandbox/customer-tweets at its time offset divided by the speed.

Line format: {"at": seconds, "key": "t1", "user": "handle", "text": "...", "reply_to": "t0"}. `reply_to` is
optional and names an earlier line's key: the tweet follows up in that thread, under the care account's latest
reply to that line's tweet when one exists by then, else under the tweet itself. The whole file is checked
before anything is posted; a tweet the sandbox refuses is reported and the replay goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


class ReplayError(Exception):
    """The traffic file is invalid, or the sandbox X cannot be reached; the message says which line or why."""


@dataclass(frozen=True)
class TrafficLine:
    line_number: int
    at: float
    key: str
    user: str
    text: str
    reply_to: str | None = None


@dataclass
class ReplayReport:
    posted: dict[str, str] = field(default_factory=dict)  # line key → tweet id
    refused: list[tuple[str, str]] = field(default_factory=list)  # (line key, the sandbox's reason)
    threaded_under_reply: int = 0  # follow-ups posted under the care account's reply
    elapsed_s: float = 0.0


def read_traffic(path: Path) -> list[TrafficLine]:
    """The lines of a traffic file, in time order (stable for equal times); ReplayError names the bad line."""
    try:
        raw_lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read the traffic file {path}: {exc}") from exc
    lines: list[TrafficLine] = []
    keys: set[str] = set()
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        lines.append(_parse_line(path, number, raw, keys))
        keys.add(lines[-1].key)
    if not lines:
        raise ReplayError(f"{path}: no traffic lines")
    ordered = sorted(lines, key=lambda line: line.at)
    seen: set[str] = set()
    for line in ordered:
        if line.reply_to is not None and line.reply_to not in seen:
            raise ReplayError(f"{path}, line {line.line_number}: reply_to {line.reply_to!r} does not come earlier")
        seen.add(line.key)
    return ordered


def _parse_line(path: Path, number: int, raw: str, keys: set[str]) -> TrafficLine:
    where = f"{path}, line {number}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ReplayError(f"{where}: expected a JSON object")
    unknown = set(data) - {"at", "key", "user", "text", "reply_to"}
    if unknown:
        raise ReplayError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    at = data.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
        raise ReplayError(f"{where}: `at` must be a number of seconds ≥ 0")
    for name in ("key", "user", "text"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ReplayError(f"{where}: `{name}` must be a non-empty string")
    if data["key"] in keys:
        raise ReplayError(f"{where}: the key {data['key']!r} is used twice")
    reply_to = data.get("reply_to")
    if reply_to is not None and not isinstance(reply_to, str):
        raise ReplayError(f"{where}: `reply_to` must name an earlier line's key")
    return TrafficLine(number, float(at), data["key"], data["user"], data["text"], reply_to)


def replay(
    file: Path,
    base_url: str,
    speed: float = 1.0,
    *,
    limit: int | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_posted: Callable[[TrafficLine, dict[str, Any]], None] | None = None,
) -> ReplayReport:
    """Post the file's tweets to the sandbox X at `base_url`, `speed` times faster than recorded.

    `limit` stops after that many lines. `sleep` and `clock` are injectable for tests. `on_posted` is called with
    each line and the tweet the sandbox created.
    """
    if not speed > 0:
        raise ReplayError("the speed must be greater than 0")
    lines = read_traffic(file)[:limit]
    own_client = client is None
    http = client or httpx.Client(timeout=10.0)
    report = ReplayReport()
    started = clock()
    try:
        for line in lines:
            wait = started + line.at / speed - clock()
            if wait > 0:
                sleep(wait)
            payload: dict[str, Any] = {"username": line.user, "text": line.text}
            if line.reply_to is not None:
                target = report.posted.get(line.reply_to)
                if target is None:  # the thread's earlier tweet was refused, so this follow-up has no thread
                    report.refused.append((line.key, f"its thread start {line.reply_to!r} was refused"))
                    continue
                ours = _latest_reply_by_account(http, base_url, target)
                if ours is not None:
                    report.threaded_under_reply += 1
                payload["in_reply_to_tweet_id"] = ours or target
            response = _post(http, f"{base_url.rstrip('/')}/sandbox/customer-tweets", payload)
            if response.status_code == 201:
                tweet = response.json()
                report.posted[line.key] = tweet["id"]
                if on_posted is not None:
                    on_posted(line, tweet)
            else:
                report.refused.append((line.key, _reason(response)))
    finally:
        report.elapsed_s = clock() - started
        if own_client:
            http.close()
    return report


def _latest_reply_by_account(http: httpx.Client, base_url: str, tweet_id: str) -> str | None:
    url = f"{base_url.rstrip('/')}/sandbox/timeline"
    try:
        response = http.get(url, params={"in_reply_to_tweet_id": tweet_id})
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot read the sandbox X's timeline at {url}: {exc}") from exc
    body = response.json()
    account_id = body["account"]["id"]
    replies = [tweet["id"] for tweet in body["data"] if tweet["author_id"] == account_id]
    return replies[-1] if replies else None


def _post(http: httpx.Client, url: str, payload: dict[str, Any]) -> httpx.Response:
    try:
        return http.post(url, json=payload)
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot reach the sandbox X at {url}: {exc}") from exc


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return f"HTTP {response.status_code}"

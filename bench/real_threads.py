"""Benchmark of what the bot would say in public on real care threads of other brands (unlabelled).

    python -m bench.real_threads --data ../shared/data/twcs-sample/tweets.csv --json [--out FILE]

The file is the "Customer Support on Twitter" sample (columns tweet_id, author_id, inbound, created_at, text,
response_tweet_id, in_response_to_tweet_id). Every thread becomes one conversation for `carebot eval traffic`:
brand handles are replaced by @KestrelCare, brand replies are agent turns, the customer who opened the thread is
the customer and anyone else is `other`. The threads carry no labels, so the benchmark reports what the bot did
(bands, reply kinds) and lists every public post beside the tweet it answers, and every tweet it ignored with the
reason, to be read by a person.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.common import emit, machine
from bot.settings import load_settings
from bot.traffic import MAX_TEXT, Conversation, Turn
from bot.traffic_eval import run_traffic_eval

CARE_HANDLE = "@KestrelCare"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def conversations_from_twcs(path: Path) -> list[Conversation]:
    """One conversation per thread of the file, its tweets in the order they were written."""
    rows = _rows(path)
    brands = {row["author_id"] for row in rows if row["inbound"] == "False"}
    brand_mention = re.compile(r"@(" + "|".join(re.escape(b) for b in sorted(brands, key=len, reverse=True)) + r")\b")
    by_id = {row["tweet_id"]: row for row in rows}

    def root_of(row: dict[str, str]) -> dict[str, str]:
        seen = set()
        while row["in_response_to_tweet_id"] and row["tweet_id"] not in seen:
            seen.add(row["tweet_id"])
            parent = by_id.get(row["in_response_to_tweet_id"].split(".")[0])
            if parent is None:
                break
            row = parent
        return row

    threads: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        threads[root_of(row)["tweet_id"]].append(row)
    conversations = []
    for root_id, members in threads.items():
        root = by_id[root_id]
        if root["inbound"] != "True":
            continue
        members.sort(key=lambda r: (datetime.strptime(r["created_at"], "%a %b %d %H:%M:%S %z %Y"), int(r["tweet_id"])))
        turns = []
        for row in members:
            text = brand_mention.sub(CARE_HANDLE, row["text"]).strip()[:MAX_TEXT]
            if not text:
                continue
            if row["inbound"] == "False":
                author = "agent"
            elif row["author_id"] == root["author_id"]:
                author = "customer"
            else:
                author = "other"
            turns.append(Turn(row["tweet_id"], author, text))
        if any(turn.author == "customer" for turn in turns):
            conversations.append(Conversation(f"twcs-{root_id}", tuple(turns)))
    return conversations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the twcs-sample tweets.csv")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conversations = conversations_from_twcs(args.data)
    texts = {(c.id, t.id): t.text for c in conversations for t in c.turns}
    started = time.perf_counter()
    outcomes, report = run_traffic_eval(load_settings(), conversations)
    posts = [
        {"conversation": o.conversation, "id": o.id, "tweet": texts[(o.conversation, o.id)],
         "reply_kind": o.reply_kind, "faq_slug": o.faq_slug, "reply": o.reply}
        for o in outcomes if o.reply_kind is not None
    ]  # fmt: skip
    ignored = [
        {"conversation": o.conversation, "id": o.id, "tweet": texts[(o.conversation, o.id)], "reason": o.ignore_reason}
        for o in outcomes if o.band == "ignore"
    ]  # fmt: skip
    emit(
        {
            "benchmark": "real_threads",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "data": str(args.data),
            "conversations": len(conversations),
            "customer_turns": len(outcomes),
            "bands": dict(Counter(o.band for o in outcomes)),
            "public_posts": len(posts),
            "posts_by_kind": dict(Counter(p["reply_kind"] for p in posts)),
            "policy_version": report.get("policy_version"),
            "seconds": round(time.perf_counter() - started, 1),
            "posts": posts,
            "ignored": ignored,
        },
        args.out,
    )


if __name__ == "__main__":
    main()

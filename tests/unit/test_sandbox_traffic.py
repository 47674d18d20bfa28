"""The recorded traffic files: valid for the replay, within X's limits, and covering what a care desk meets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.sandbox.replay import read_traffic
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

TRAFFIC = Path(__file__).resolve().parents[2] / "training_data" / "traffic"
DAY = TRAFFIC / "kestrel_day.jsonl"


@pytest.mark.parametrize("path", sorted(TRAFFIC.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_traffic_file_replays(path: Path) -> None:
    lines = read_traffic(path)
    assert all(weighted_length(line.text) <= MAX_WEIGHTED_LENGTH for line in lines)
    assert all(line.user.replace("_", "").isalnum() and len(line.user) <= 15 for line in lines)


def test_a_kestrel_day_has_everything_a_care_desk_meets() -> None:
    lines = read_traffic(DAY)
    texts = [line.text for line in lines]
    assert len(lines) >= 300
    assert len(set(texts)) >= 250  # varied, not one template
    follow_ups = [line for line in lines if line.reply_to]
    assert len(follow_ups) >= 30
    assert len(Counter(line.reply_to for line in follow_ups)) < len(follow_ups)  # some threads go on
    search_only = [t for t in texts if "@kestrelcare" not in t.lower()]
    assert len(search_only) >= 20 and any("kestrel" in t.lower() for t in search_only)
    for marker in ("<script>", "onerror=", "\u202e", "\u200b", "{{7*7}}", "DROP TABLE", "KT-", "javascript:"):
        assert any(marker in t for t in texts), marker
    assert any(weighted_length(t) >= 270 for t in texts)
    assert any(not any(c.isalnum() for c in t.replace("@KestrelCare", "")) for t in texts)  # emoji only


def test_the_outage_storm_has_sixty_people_within_five_minutes() -> None:
    lines = read_traffic(DAY)
    words = ("down", "outage", "offline", "internet", "broadband", "connection", "nothing loading", "off")
    outage = [line for line in lines if any(word in line.text.lower() for word in words)]
    best = max(len({other.user for other in outage if start.at <= other.at <= start.at + 300}) for start in outage)
    assert best >= 60

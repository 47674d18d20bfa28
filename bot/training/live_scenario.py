"""A scenario made from the live desk's real conversations (`carebot training scenario --from-live OUT.jsonl`):
each ticket's public customer turns become scenario lines, each carrying as its reference the reply an agent
really gave to it (the first public agent reply after that turn, before the customer wrote again; the bot's
replies are no reference), and the FAQ entry that reply used when it used one. DM tickets and DMs are left out:
a scenario replays public tweets.

Personal data is stripped: the customers' texts and the agents' replies go through bot.decision.personal_data's
`redact` (what the desk's previews and the unanswered-questions export use), every customer handle becomes
customer01, customer02, … (in the `user` field and wherever one is @-mentioned), and the agent's ^AB signature
is dropped. The live database is only read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bot.db import as_utc
from bot.decision.personal_data import redact
from bot.training.scorecard import used_entry
from handoff.models import messages, tickets
from knowledge_base.models import entries, entry_versions

_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")
_SIGNATURE = re.compile(r"\s*\^[A-Z]{2,3}\s*$")
MAX_TEXT = 280  # X's length: a longer customer text is cut (a placeholder can be longer than what it replaces)


@dataclass(frozen=True)
class LiveScenario:
    lines: list[dict[str, Any]]
    threads: int  # tickets the lines come from
    with_reference: int  # lines that carry an agent's real reply


class _Pseudonyms:
    """customer01, customer02, … in order of first appearance; the care account becomes the sandbox X's."""

    def __init__(self, care_account: str, replay_as: str) -> None:
        self.care, self.replay_as = care_account.casefold(), replay_as
        self.names: dict[str, str] = {}

    def of(self, handle: str) -> str:
        key = handle.casefold()
        if key == self.care:
            return self.replay_as
        return self.names.setdefault(key, f"customer{len(self.names) + 1:02d}")

    def in_text(self, text: str) -> str:
        return _MENTION.sub(lambda match: "@" + self.of(match.group(1)), text)


def _stripped(text: str, names: _Pseudonyms) -> str:
    return redact(names.in_text(text)).strip()


def build_live_scenario(
    engine: Engine,
    *,
    care_account: str,
    replay_as: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> LiveScenario:
    """The scenario lines of the live desk's tickets (oldest first, from `since`, at most `limit` tickets) whose
    customer wrote in public; `at` counts seconds from the first line. `care_account` is the desk's handle on X,
    written as `replay_as` (the sandbox X's care account; default: the same) where a customer @-mentions it."""
    query = select(tickets.c.id, tickets.c.customer_handle).where(tickets.c.source != "dm")
    if since is not None:
        query = query.where(tickets.c.created_at >= since)
    query = query.order_by(tickets.c.created_at, tickets.c.id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        chosen = conn.execute(query).all()
        ids = [row.id for row in chosen]
        rows = conn.execute(
            select(messages).where(messages.c.ticket_id.in_(ids)).order_by(messages.c.ticket_id, messages.c.id)
        ).all() if ids else []  # fmt: skip
        answers = {
            row.slug: row.answer for row in conn.execute(
                select(entry_versions.c.slug, entry_versions.c.answer)
                .join(entries, entries.c.id == entry_versions.c.entry_id)
                .where(entry_versions.c.version == entries.c.published_version)
            )
        }  # fmt: skip
        conn.rollback()
    by_ticket: dict[int, list[Any]] = {}
    for row in rows:
        by_ticket.setdefault(row.ticket_id, []).append(row)
    names = _Pseudonyms(care_account, replay_as or care_account)
    turns: list[tuple[datetime, dict[str, Any]]] = []
    threads = 0
    for ticket in chosen:
        previous_key: str | None = None
        open_turn: dict[str, Any] | None = None
        used = False
        for message in by_ticket.get(ticket.id, []):
            public = (message.channel or "public") == "public"
            if message.direction == "in":
                if not public:
                    open_turn = None  # a DM: not replayed, and what follows answers it
                    continue
                user = names.of(message.author or ticket.customer_handle or "customer")  # the writer first
                text = _stripped(message.text, names)[:MAX_TEXT]
                if not text:
                    continue
                key = f"l{len(turns) + 1:03d}"
                line: dict[str, Any] = {"key": key, "user": user, "text": text}
                if previous_key is not None:
                    line["reply_to"] = previous_key
                turns.append((as_utc(message.created_at), line))
                previous_key, open_turn, used = key, line, True
            elif open_turn is not None and public and message.author != "bot" and message.delivery != "failed":
                reply = _stripped(_SIGNATURE.sub("", message.text), names)
                if reply:
                    reference = {"reply": reply}
                    faq = used_entry(message.text, answers)
                    if faq:
                        reference = {"faq": faq, **reference}
                    open_turn["reference"] = reference
                open_turn = None  # the first agent reply after a turn is its reference
        threads += used
    turns.sort(key=lambda item: item[0])  # stable: a thread's turns keep their order
    start = turns[0][0] if turns else datetime.now(UTC)
    renamed = {line["key"]: f"c{n:03d}" for n, (_, line) in enumerate(turns, start=1)}  # numbered in time order
    lines = []
    for moment, line in turns:
        line = {**line, "key": renamed[line["key"]]}
        if "reply_to" in line:
            line["reply_to"] = renamed[line["reply_to"]]
        lines.append({"at": round((moment - start).total_seconds(), 1), **line})
    return LiveScenario(lines, threads, sum(1 for line in lines if "reference" in line))


def write_scenario(scenario: LiveScenario, path: Path) -> None:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in scenario.lines), "utf-8")

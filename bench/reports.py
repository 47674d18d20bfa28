"""Benchmark of the reports (/reports) on PostgreSQL over a year of traffic: 1,000,000 inbound tweets with their
tickets, messages, outbox rows, audit events, CSAT answers and incidents, then every chart timed for the last 30
days and the last 365 days.

    python -m bench.reports --json [--out FILE] [--url postgresql://…] [--tweets 1000000] [--runs 7] [--keep|--reuse]

The URL defaults to CAREBOT_BENCH_POSTGRES_URL, then CAREBOT_TEST_POSTGRES_URL. The data goes into the schema
bench_reports of that database (created and migrated; dropped at the end unless --keep), so the database's own
tables are never touched. --reuse times the data a kept run left, if it holds as many tweets.

The year, in the proportions of a care desk (seeded with COPY, ids and times made up, the same every run):

- tweets spread over 365 days, busier by day (08:00-22:00 UTC) than by night; bands auto 45 %, human 27 %,
  approve 8 %, ignore 19 % (spam, duplicates, closing thanks, our own tweets, opt-outs), 1 % never triaged;
- the bot answers 85 % of auto tweets from one of 60 FAQ entries (a few entries take most answers), the rest get a
  social reply; 12 % of human and approve tweets come back in the conversation of an earlier bot answer;
- a human or approve tweet opens a ticket (a quarter of them add to the customer's open ticket instead): claimed,
  answered by one of 19 agents, resolved; 8 % reopened later and answered and resolved again; 30 % of drafts are
  rejected; each step an audit event, each reply an outbox row and a message;
- a CSAT question for 30 % of resolutions, 40 % of them answered; 60 incidents of 20 linked tickets each.

After seeding, the closed days' audit events are copied for the reports and counted per agent and day
(ReportService.refresh, as migrations 0014 and 0017 do for an existing database; `rollup_s`), the bot answers a
ticket of their conversation followed are flagged (as migration 0017 does; `came_back_s`; the worker sets the flag
on a live desk) and the tables vacuumed (what autovacuum does on a live database). Each
chart is computed through bot.web.reports.ReportService (the page's code) `--runs` times per range after one
warm-up; the report has p50 and p95 in milliseconds, the row counts of every table, and whether each chart over the
365 days equals its recount without the copies, counts and flags (`same_as_recount_365d`, checked after timing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.common import emit, machine, percentile
from bench.handoff import scratch_schema_url
from bot.db import MIGRATIONS_DIR, make_engine, upgrade
from bot.web.reports import CHARTS, ReportService

SCHEMA = "bench_reports"
AGENTS = [(f"agent{n:02d}", f"Agent {n:02d}", "".join(chr(65 + (n * 7 + k) % 26) for k in range(2)) + chr(65 + n))
          for n in range(19)]  # fmt: skip
SLUGS = [f"faq-entry-{n:02d}" for n in range(60)]
REASONS = [("spam", 8), ("duplicate", 5), ("closing_thanks", 4), ("own_tweet", 1), ("opt_out", 1)]
SECOND = timedelta(seconds=1)


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1)}  # fmt: skip


class Copier:
    """Rows for one table, sent with COPY in batches."""

    def __init__(self, cursor: Any, table: str, columns: tuple[str, ...], batch: int = 50_000) -> None:
        self.cursor, self.table, self.columns, self.batch = cursor, table, columns, batch
        self.rows: list[tuple[Any, ...]] = []
        self.count = 0
        self.before: list[Copier] = []  # tables this one refers to: sent first (foreign keys)

    def add(self, *row: Any) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        for other in self.before:
            other.flush()
        with self.cursor.copy(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN") as copy:
            for row in self.rows:
                copy.write_row(row)
        self.count += len(self.rows)
        self.rows.clear()


def _moments(rng: random.Random, count: int, end: datetime) -> Iterator[datetime]:
    """`count` moments over the 365 days before `end`, in order, three times denser by day than by night."""
    start = end - timedelta(days=365)
    hours = [3.0 if 8 <= h < 22 else 1.0 for h in range(24)]
    picked = []
    for _ in range(count):
        day = rng.randrange(365)
        hour = rng.choices(range(24), hours)[0]
        picked.append(start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600)))
    yield from sorted(m for m in picked if m < end)


def _decision(band: str, slug: str | None, reason: str | None, rng: random.Random) -> str:
    """A stored triage result about the size the worker keeps (bot/channel/processing.py _json_safe)."""
    hits = [{"entry_id": SLUGS.index(s) + 1, "slug": s, "score": round(rng.random(), 4)}
            for s in ([slug] if slug else []) + rng.sample(SLUGS, 2)]  # fmt: skip
    return json.dumps({
        "faq_hits": hits, "faq_top_score": hits[0]["score"],
        "decision": {
            "band": band, "reasons": ["a product question the FAQ answers" if slug else "an angry complaint"],
            "reply": "faq" if slug else None, "faq": {"entry_id": SLUGS.index(slug) + 1, "slug": slug,
                                                    "score": hits[0]["score"]} if slug else None,
            "intent": "product_question" if slug else "complaint", "confidence": 0.91, "priority": 3,
            "skill": "general", "dm_handover": False, "ignore_reason": reason, "position": "opener",
        },
        "reply": "Hold the reset button for 15 seconds. ^bot" if slug else None, "reply_status": "ok",
        "nlu_error": None, "faq_search_error": None, "tone_violations": [], "policy_version": 3,
        "intent": "product_question" if slug else "complaint",
    })  # fmt: skip


def seed(engine: Engine, tweets: int, now: datetime) -> dict[str, int]:
    rng = random.Random(15)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()  # type: ignore[attr-defined]
        agent_ids = list(range(1, len(AGENTS) + 1))
        with cur.copy("COPY handoff_agents (id, username, display_name, initials, kind, status, capacity, skills, "
                      "created_at, active) FROM STDIN") as copy:  # fmt: skip
            for n, (username, name, initials) in enumerate(AGENTS):
                copy.write_row((n + 1, username, name, initials, "core" if n < 7 else "on_call", "online", 8, "[]",
                                now - timedelta(days=400), True))  # fmt: skip
        with cur.copy("COPY kb_entries (id, slug, question, paraphrases, answer, tags, language, status, version, "
                      "published_version, author, created_at, updated_at) FROM STDIN") as copy:  # fmt: skip
            for n, slug in enumerate(SLUGS):
                copy.write_row((n + 1, slug, f"Question number {n}?", "[]", f"Answer {n}.", "[]", "en", "published",
                                1, 1, "editor", now - timedelta(days=400), now - timedelta(days=400)))  # fmt: skip
        inbound = Copier(
            cur,
            "x_inbound_tweets",
            (
                "tweet_id",
                "source",
                "author_id",
                "author_username",
                "text",
                "conversation_id",
                "created_at",
                "fetched_at",
                "state",
                "attempts",
                "band",
                "decision",
                "ticket_id",
                "triaged_at",
                "ignore_reason",
            ),
        )
        out = Copier(
            cur,
            "x_outbox",
            (
                "id",
                "target_tweet_id",
                "conversation_id",
                "kind",
                "author",
                "text",
                "state",
                "attempts",
                "posted_tweet_id",
                "ticket_id",
                "created_at",
                "updated_at",
                "sent_at",
                "faq_slug",
            ),
        )
        tickets_c = Copier(
            cur,
            "handoff_tickets",
            (
                "id",
                "conversation_id",
                "customer_id",
                "customer_handle",
                "source",
                "state",
                "priority",
                "skill",
                "band",
                "reasons",
                "confidence",
                "draft_reply",
                "dm_handover",
                "agent_id",
                "sla_due_at",
                "created_at",
                "updated_at",
                "claimed_at",
                "first_response_at",
                "resolved_at",
                "version",
            ),
        )
        messages_c = Copier(
            cur,
            "handoff_messages",
            ("id", "ticket_id", "direction", "tweet_id", "author", "text", "created_at", "outbox_id", "delivery"),
        )
        audit = Copier(cur, "handoff_audit_events", ("id", "at", "actor", "action", "ticket_id", "details"))
        csat = Copier(
            cur,
            "handoff_csat",
            (
                "ticket_id",
                "conversation_id",
                "customer_id",
                "agent_id",
                "state",
                "score",
                "created_at",
                "asked_at",
                "answered_at",
            ),
        )
        messages_c.before = audit.before = csat.before = [tickets_c]
        ids = {"outbox": 0, "message": 0, "audit": 0, "ticket": 0}

        def next_id(kind: str) -> int:
            ids[kind] += 1
            return ids[kind]

        def event(at: datetime, actor: str, action: str, ticket_id: int, **details: Any) -> None:
            audit.add(next_id("audit"), at, actor, action, ticket_id, json.dumps(details))

        pending: list[tuple[datetime, Any]] = []  # audit events in the future of the walk are written as they come
        answered_bot: list[tuple[str, datetime]] = []  # recent bot answers: conversations a customer may come back to
        open_by_customer: dict[str, int] = {}
        resolved_tickets: list[int] = []
        weights = [1 / (n + 1) for n in range(len(SLUGS))]  # a few entries take most answers
        reason_names, reason_weights = zip(*REASONS, strict=True)
        for n, moment in enumerate(_moments(rng, tweets, now)):
            tweet_id = str(10**18 + n)
            customer = str(10**6 + rng.randrange(200_000))
            roll = rng.random()
            band, reason, slug, ticket_id = None, None, None, None
            conversation = tweet_id
            if roll < 0.45:
                band = "auto"
            elif roll < 0.72:
                band = "human"
            elif roll < 0.80:
                band = "approve"
            elif roll < 0.99:
                band, reason = "ignore", rng.choices(reason_names, reason_weights)[0]
            if band == "auto" and rng.random() < 0.85:
                slug = rng.choices(SLUGS, weights)[0]
            if band in ("human", "approve"):
                if answered_bot and rng.random() < 0.12:
                    conversation, customer = answered_bot.pop(rng.randrange(len(answered_bot)))[0], customer
                if customer in open_by_customer and rng.random() < 0.25:
                    ticket_id = open_by_customer[customer]
                    messages_c.add(next_id("message"), ticket_id, "in", tweet_id, f"c{customer}", "and again", moment,
                                   None, "sent")  # fmt: skip
                else:
                    ticket_id = next_id("ticket")
                    _ticket(rng, ticket_id, conversation, customer, band, moment, tweet_id, next_id, event, tickets_c,
                            messages_c, out, csat, open_by_customer, resolved_tickets, agent_ids)  # fmt: skip
            inbound.add(tweet_id, "mention", customer, f"c{customer}", "my router keeps dropping the line",
                        conversation, moment, moment, "done" if band else "new", 1 if band else 0, band,
                        _decision(band, slug, reason, rng) if band else None, ticket_id,
                        moment if band else None, reason)  # fmt: skip
            if band == "auto":
                sent = moment + timedelta(seconds=40)
                out.add(next_id("outbox"), tweet_id, conversation, "faq_answer" if slug else "thanks", "bot",
                        f"Reply {n} ^bot", "sent", 1, str(2 * 10**18 + n), None, sent, sent, sent, slug)  # fmt: skip
                if slug:
                    answered_bot.append((tweet_id, sent))
                    if len(answered_bot) > 500:
                        answered_bot.pop(0)
        del pending
        for copier in (inbound, out, tickets_c, messages_c, audit, csat):
            copier.flush()
        with cur.copy("COPY handoff_incidents (id, title, state, status_note, keywords, created_by, created_at, "
                      "updated_at, resolved_at) FROM STDIN") as copy:  # fmt: skip
            for n in range(60):
                opened = now - timedelta(days=365) + timedelta(days=6 * n + 1)
                copy.write_row((n + 1, f"Outage {n}", "resolved", "fixed", '["outage"]', "lead", opened,
                                opened + timedelta(hours=5), opened + timedelta(hours=5)))  # fmt: skip
        linked = rng.sample(resolved_tickets, min(len(resolved_tickets), 60 * 20))
        with cur.copy("COPY handoff_incident_tickets (incident_id, ticket_id, linked_by, linked_at) FROM STDIN") as c:
            for n, ticket_id in enumerate(linked):
                c.write_row((n // 20 + 1, ticket_id, "lead",
                             now - timedelta(days=365) + timedelta(days=6 * (n // 20) + 1, hours=1)))  # fmt: skip
        raw.commit()
        return {"x_inbound_tweets": inbound.count, "x_outbox": out.count, "handoff_tickets": tickets_c.count,
                "handoff_messages": messages_c.count, "handoff_audit_events": audit.count,
                "handoff_csat": csat.count, "handoff_incident_tickets": len(linked)}  # fmt: skip
    finally:
        raw.close()


def _ticket(
    rng: random.Random, ticket_id: int, conversation: str, customer: str, band: str, created: datetime,
    tweet_id: str, next_id: Any, event: Any, tickets_c: Copier, messages_c: Copier, out: Copier, csat: Copier,
    open_by_customer: dict[str, int], resolved: list[int], agent_ids: list[int],
) -> None:  # fmt: skip
    """One ticket's life: claimed, answered, resolved; sometimes a draft rejected; sometimes reopened. Its row is
    written before its messages and events (their foreign keys)."""
    later: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def write_event(*values: Any, **details: Any) -> None:
        later.append((event, values, details))

    def write_message(*values: Any) -> None:
        later.append((messages_c.add, values, {}))

    agent = rng.choice(agent_ids)
    username = AGENTS[agent - 1][0]
    initials = AGENTS[agent - 1][2]
    write_message(next_id("message"), ticket_id, "in", tweet_id, f"c{customer}", "my line is down", created, None,
                   "sent")  # fmt: skip
    write_event(created, "bot", "created", ticket_id, band=band, tweet_id=tweet_id)
    start = created
    episodes = 2 if rng.random() < 0.08 else 1
    first_response = resolved_at = claimed = start
    for episode in range(episodes):
        claimed = start + timedelta(minutes=rng.expovariate(1 / 12))
        write_event(claimed, username, "claimed", ticket_id, agent=username)
        if band == "approve" and episode == 0 and rng.random() < 0.3:
            write_event(claimed + SECOND * 30, username, "draft_rejected", ticket_id, draft="…")
        first_response = claimed + timedelta(minutes=rng.expovariate(1 / 15))
        for reply in range(rng.choice((1, 1, 2, 3))):
            at = first_response + timedelta(minutes=20 * reply)
            outbox_id = next_id("outbox")
            out.add(outbox_id, f"{tweet_id}-r{episode}{reply}", conversation, "agent_reply", initials,
                    f"Reply to {ticket_id} ^{initials}", "sent", 1, f"3{ticket_id:09d}{episode}{reply}", ticket_id,
                    at, at, at, None)  # fmt: skip
            write_message(next_id("message"), ticket_id, "out", f"3{ticket_id:09d}{episode}{reply}", initials,
                           "Our reply", at, outbox_id, "sent")  # fmt: skip
            write_event(at, username, "replied", ticket_id, kind="agent_reply", outbox_id=outbox_id)
            if reply == 0:
                write_event(at, username, "answered", ticket_id, **{"from": "claimed", "to": "answered"})
            write_event(at + SECOND * 5, "bot", "delivered", ticket_id, outbox_id=outbox_id)
        resolved_at = first_response + timedelta(hours=rng.expovariate(1 / 3))
        write_event(resolved_at, username, "resolved", ticket_id, **{"from": "answered", "to": "resolved"})
        if episode + 1 < episodes:
            start = resolved_at + timedelta(hours=rng.expovariate(1 / 20))
            write_event(start, "bot", "reopened", ticket_id, **{"from": "resolved", "to": "reopened"})
    tickets_c.add(ticket_id, conversation, customer, f"c{customer}", "mention", "resolved", 3, "general",
                  "human" if band == "human" else "approve", '["an outage report"]', 0.8,
                  "Hold the reset button. ^bot" if band == "approve" else None, False, agent,
                  start + timedelta(hours=1), created, resolved_at, claimed, first_response, resolved_at,
                  6)  # fmt: skip
    for write, values, details in later:
        write(*values, **details)
    open_by_customer[customer] = ticket_id
    resolved.append(ticket_id)
    if rng.random() < 0.3:
        answered = rng.random() < 0.4
        csat.add(ticket_id, f"csat-{ticket_id}", customer, agent, "answered" if answered else "expired",
                 rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 6))[0] if answered else None, resolved_at, resolved_at,
                 resolved_at + timedelta(hours=2) if answered else None)  # fmt: skip


def flag_came_back(engine: Engine) -> None:
    """Migration 0017's flag of the bot answers a ticket of their conversation followed (the seeding leaves it
    unset)."""
    spec = importlib.util.spec_from_file_location("report_flags", MIGRATIONS_DIR / "versions" / "0017_report_flags.py")
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.begin() as conn:
        migration.flag_came_back(conn)


def vacuum(engine: Engine) -> None:
    """What autovacuum keeps up on a live database: statistics, and the visibility map for index-only scans."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def time_charts(engine: Engine, runs: int, now: datetime) -> dict[str, Any]:
    service = ReportService(engine, sla_minutes=60, clock=lambda: now)
    ranges = {
        "30d": service.period("30d"),
        "365d": service.period("custom", "day", (now - timedelta(days=364)).date(), now.date()),
    }
    found: dict[str, Any] = {}
    for spec in CHARTS:
        found[spec.name] = {}
        for label, span in ranges.items():
            service.chart(spec.name, span)  # warm-up
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                chart = service.chart(spec.name, span)
                timings.append((time.perf_counter() - started) * 1000)
            found[spec.name][label] = _ms(timings) | {"rows": len(chart.rows)}
    return found


def same_as_recount(engine: Engine, now: datetime) -> dict[str, bool]:
    """Whether each chart over the 365 days equals its recount from the audit log and the stored tweets
    (ReportService(rollups=False): no copied events, per-day counts or flags)."""
    fast = ReportService(engine, sla_minutes=60, clock=lambda: now)
    recount = ReportService(engine, sla_minutes=60, clock=lambda: now, rollups=False)
    span = fast.period("custom", "day", (now - timedelta(days=364)).date(), now.date())
    found = {}
    for spec in CHARTS:
        a, b = fast.chart(spec.name, span), recount.chart(spec.name, span)
        found[spec.name] = (a.rows, a.totals) == (b.rows, b.totals)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--url", default=os.environ.get("CAREBOT_BENCH_POSTGRES_URL")
                        or os.environ.get("CAREBOT_TEST_POSTGRES_URL"), help="the PostgreSQL database")  # fmt: skip
    parser.add_argument("--tweets", type=int, default=1_000_000, help="inbound tweets over the year")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per chart and range")
    parser.add_argument("--keep", action="store_true", help="keep the schema with its data for --reuse")
    parser.add_argument("--reuse", action="store_true", help="time the data a --keep run left (same --tweets)")
    args = parser.parse_args()
    if not args.url:
        parser.error("needs PostgreSQL: --url or CAREBOT_BENCH_POSTGRES_URL")
    admin = make_engine(args.url)
    now = datetime.combine(date.today(), datetime.min.time(), UTC) + timedelta(hours=12)
    url = scratch_schema_url(args.url, SCHEMA)
    engine = make_engine(url)
    report: dict[str, Any] = {"benchmark": "reports", "machine": machine(), "tweets": args.tweets, "runs": args.runs}
    try:
        counts = None
        if args.reuse:
            with engine.connect() as conn:
                try:
                    counts = json.loads(conn.execute(text("SELECT value FROM bench_reports_seeded")).scalar_one())
                except Exception:
                    counts = None
            if counts and counts.get("x_inbound_tweets") != args.tweets:
                counts = None
        if counts is None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
                conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
            upgrade(url)
            started = time.perf_counter()
            counts = seed(engine, args.tweets, now)
            report["seed_s"] = round(time.perf_counter() - started, 1)
            # The closed days' audit events copied (and counted per agent) for the reports, as migrations 0014 and
            # 0017 do for an existing database.
            started = time.perf_counter()
            moment = now
            report["rollup_rows"] = ReportService(engine, clock=lambda: moment).refresh()
            report["rollup_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            flag_came_back(engine)
            report["came_back_s"] = round(time.perf_counter() - started, 1)
            vacuum(engine)
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE bench_reports_seeded (value text)"))
                conn.execute(text("INSERT INTO bench_reports_seeded VALUES (:v)"), {"v": json.dumps(counts)})
        with engine.connect() as conn:
            now = conn.execute(text("SELECT max(fetched_at) FROM x_inbound_tweets")).scalar_one() + timedelta(hours=1)
        report["rows"] = counts
        report["charts_ms"] = time_charts(engine, args.runs, now)
        report["slowest_p95_ms"] = max(r["p95"] for c in report["charts_ms"].values() for r in c.values())
        report["same_as_recount_365d"] = same_as_recount(engine, now)
    finally:
        engine.dispose()
        if not args.keep:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()
    emit(report, args.out)


if __name__ == "__main__":
    main()

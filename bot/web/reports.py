"""The reports' figures: how the desk is doing over a chosen range, by hour or by day, computed in SQL from carebot's
own tables (the stored tweets and the outbox, tickets and the audit log, CSAT answers, incidents).

Every chart is a `Chart`: its columns, one row per bucket (or per agent, per FAQ entry), and totals over the
range. The same rows are the table behind the drawn chart, its CSV download and its JSON. Times are UTC.

How each figure is counted (the page says the same in words):

- volume: stored tweets by the time they were fetched, by band (auto, approve, human, ignore by its named reason;
  "waiting" is not triaged yet).
- deflection: auto ÷ (auto + approve + human). Drafts approved: approve-band tickets whose first agent reply went
  out in the bucket without the draft being rejected (sent as drafted or edited); rejected: "draft_rejected" audit
  events. Didn't help: a bot FAQ answer after which a later tweet of the same conversation went to a ticket.
- first response: per ticket episode (created, or reopened after closing), from its arrival to the first agent
  reply (the "answered" audit event); SLA met when that took at most the first-response SLA.
- time to resolve: from the episode's arrival to its "resolved" audit event.
- reopen rate: resolutions of the bucket after which the ticket was reopened (the customer wrote again).
- agents: resolutions, replies and first responses by each agent over the range.
- FAQ entries: the bot's FAQ answers by entry, and how often the customer came back to a person after one.
- CSAT: answered surveys by when they were answered: count, average score, share of 4 and 5.
- incidents: opened, resolved, and tickets linked to one.

Percentiles are continuous (linear interpolation, as PostgreSQL's percentile_cont): in SQL on PostgreSQL, in Python
over the range's durations on SQLite; both give the same figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Engine,
    Float,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from bot.channel.models import inbound_tweets, outbox
from handoff.models import (
    REPORT_ACTIONS,
    agents,
    audit_events,
    csat_surveys,
    incident_tickets,
    incidents,
    report_agent_days,
    report_events,
    report_rollup,
    tickets,
)
from knowledge_base.models import entries as kb_entries

RANGES = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom dates"}
BUCKETS = {"hour": "By hour", "day": "By day"}
MAX_DAYS = 400  # a custom range at most this long
MAX_HOUR_DAYS = 31  # by hour, at most this many days (744 bars)
IGNORE_REASONS = ("own_tweet", "spam", "opt_out", "duplicate", "closing_thanks")
IGNORE_WORDS = {
    "own_tweet": "own tweet", "spam": "spam", "opt_out": "opt-out", "duplicate": "duplicate",
    "closing_thanks": "closing thanks", "other": "other",
}  # fmt: skip
ARRIVALS = ("created", "reopened")
EPISODE_EVENTS = (*ARRIVALS, "answered")  # the audit events that start a ticket episode or answer it
ROLLUP = "audit"  # the row of handoff_report_rollup that says how far handoff_report_events goes
AGENT_DAYS = "agent_days"  # the row that says how far handoff_report_agent_days goes (at most as far as ROLLUP)
ROLLUP_DELAY = timedelta(hours=1)  # a day is rolled up once it ended this long ago (its writes are all committed)
TOP_ENTRIES = 10
MIN_ANSWERS_FOR_RATE = 3  # an entry is ranked by how often it fails only after this many answers


class ReportError(ValueError):
    """The range or bucket asked for is not one carebot reports; the message says which are."""


# ---------------------------------------------------------------------------------------------- the range
@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, cut into buckets of an hour or a day."""

    name: str  # today | 7d | 30d | custom
    start: datetime
    end: datetime
    bucket: str  # hour | day

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.bucket == "hour" else timedelta(days=1)

    def labels(self) -> list[str]:
        """Every bucket's label in order, empty ones too (the SQL returns the same labels)."""
        moment = self.start.replace(minute=0, second=0, microsecond=0)
        if self.bucket == "day":
            moment = moment.replace(hour=0)
        found = []
        while moment < self.end:
            found.append(bucket_label(moment, self.bucket))
            moment += self.step
        return found

    def describe(self) -> str:
        last = self.end - timedelta(microseconds=1)
        if self.start.date() == last.date():
            return f"{self.start:%d %b %Y}, {self.start:%H:%M}–{last:%H:%M} UTC"
        return f"{self.start:%d %b %Y} – {last:%d %b %Y} (UTC)"

    def query(self) -> dict[str, str]:
        """The query string that asks for this period again."""
        found = {"range": self.name, "bucket": self.bucket}
        if self.name == "custom":
            found |= {"from": self.start.date().isoformat(), "to": (self.end - timedelta(days=1)).date().isoformat()}
        return found


def bucket_label(moment: datetime, bucket: str) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:00") if bucket == "hour" else moment.strftime("%Y-%m-%d")


def period(
    name: str = "7d", bucket: str | None = None, start: date | None = None, end: date | None = None,
    *, now: datetime | None = None,
) -> Period:  # fmt: skip
    """The period a report covers, in whole days (UTC): today, the last 7 or 30 days (today included), or custom
    dates from `start` to `end` inclusive. The bucket defaults to hours for today, days otherwise."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    midnight = datetime.combine(now.date(), time(), UTC)
    if name not in RANGES:
        raise ReportError(f"Choose a range: {', '.join(RANGES)}.")
    if name == "today":
        first, last = midnight, midnight + timedelta(days=1)
    elif name in ("7d", "30d"):
        first, last = midnight - timedelta(days=int(name[:-1]) - 1), midnight + timedelta(days=1)
    else:
        if start is None or end is None:
            raise ReportError("A custom range needs both dates, from and to (YYYY-MM-DD).")
        if end < start:
            raise ReportError("The range ends before it starts: swap the dates.")
        if (end - start).days + 1 > MAX_DAYS:
            raise ReportError(f"A custom range covers at most {MAX_DAYS} days.")
        first = datetime.combine(start, time(), UTC)
        last = datetime.combine(end + timedelta(days=1), time(), UTC)
    if bucket is None or bucket == "":
        bucket = "hour" if name == "today" else "day"
    if bucket not in BUCKETS:
        raise ReportError(f"Choose a bucket: {', '.join(BUCKETS)}.")
    if bucket == "hour" and last - first > timedelta(days=MAX_HOUR_DAYS):
        raise ReportError(f"By hour covers at most {MAX_HOUR_DAYS} days; choose by day for a longer range.")
    if last <= first:
        last = first + timedelta(seconds=1)
    return Period(name, first, last, bucket)


# ---------------------------------------------------------------------------------------------- percentiles
def percentile_cont(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0-1) with linear interpolation between the closest ranks: PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------- charts
@dataclass(frozen=True)
class ChartColumn:
    key: str
    label: str  # the table's and the CSV's header, with its unit


@dataclass
class Chart:
    name: str
    title: str
    kind: str  # stacked (bars) | grouped (bars side by side) | lines | bars (horizontal, one per row)
    unit: str  # the y axis (or the bars' length)
    note: str  # how it is counted, in words
    columns: list[ChartColumn]
    series: list[str]  # the columns drawn, in legend order
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[list[Any]]:
        """The header and the rows: what the page's table, the CSV and the chart show."""
        return [[c.label for c in self.columns]] + [[row.get(c.key) for c in self.columns] for row in self.rows]

    def label_of(self, key: str) -> str:
        return next(c.label for c in self.columns if c.key == key)

    def to_dict(self, span: Period) -> dict[str, Any]:
        return {
            "chart": self.name, "title": self.title, "unit": self.unit, "note": self.note,
            "range": {"name": span.name, "start": span.start.isoformat(), "end": span.end.isoformat(),
                      "bucket": span.bucket},
            "columns": [{"key": c.key, "label": c.label} for c in self.columns], "rows": self.rows,
            "totals": self.totals,
        }  # fmt: skip


@dataclass(frozen=True)
class ChartSpec:
    name: str
    title: str
    roles: tuple[str, ...]  # who may see it: leads everything, editors the FAQ part
    summary: str  # the JSON operation's summary


CHARTS = (
    ChartSpec("volume", "Inbound volume by band", ("lead",), "Inbound tweets by band and ignore reason"),
    ChartSpec("deflection", "Automatic answers and their precision", ("lead",),
              "Automatic-answer share, drafts approved against rejected, bot answers that did not help"),
    ChartSpec("first-response", "First-response time and SLA", ("lead",),
              "First-response time p50 and p90, and the share within the SLA"),
    ChartSpec("resolution", "Time to resolve", ("lead",), "From a ticket's arrival to its resolution, p50 and p90"),
    ChartSpec("reopens", "Reopen rate", ("lead",), "Resolved tickets that the customer reopened"),
    ChartSpec("agents", "Work per agent", ("lead",), "Tickets resolved, replies and first-response time per agent"),
    ChartSpec("faq-busiest", "Busiest FAQ entries", ("editor", "lead"), "The FAQ entries the bot answered with most"),
    ChartSpec("faq-unhelpful", "FAQ entries that most often fail to help", ("editor", "lead"),
              "The FAQ entries after whose answer customers most often came back to a person"),
    ChartSpec("csat", "Customer satisfaction", ("lead",), "Answered CSAT surveys: count, average and share of 4-5"),
    ChartSpec("incidents", "Incidents", ("lead",), "Incidents opened and resolved, and tickets linked to them"),
)  # fmt: skip
SPECS = {spec.name: spec for spec in CHARTS}


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 1)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 2)


# ---------------------------------------------------------------------------------------------- the service
class ReportService:
    """The reports over carebot's database; `sla_minutes` is the first-response SLA (the settings' own)."""

    def __init__(
        self, engine: Engine, *, sla_minutes: int = 60, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sql_percentiles: bool | None = None, rollups: bool = True,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.sla_seconds = sla_minutes * 60
        self.clock = clock
        # percentile_cont in SQL on PostgreSQL (None: whenever the database is PostgreSQL); Python otherwise.
        self.sql_percentiles = engine.dialect.name == "postgresql" if sql_percentiles is None else sql_percentiles
        # Read closed days' audit events from handoff_report_events and their counts per agent from
        # handoff_report_agent_days, and "didn't help" from the bot answers' came_back flag (False: everything
        # recounted from the audit log and the stored tweets, the same figures more slowly; the tests compare the two).
        self.rollups = rollups

    def period(self, name: str = "7d", bucket: str | None = None, start: date | None = None,
               end: date | None = None) -> Period:  # fmt: skip
        return period(name, bucket, start, end, now=self.clock())

    def chart(self, name: str, span: Period) -> Chart:
        if name not in SPECS:
            raise ReportError(f"There is no chart {name!r}; the charts are {', '.join(SPECS)}.")
        build = getattr(self, "_" + name.replace("-", "_"))
        if self.rollups:
            self.refresh()
        with self.engine.begin() as conn:
            if self._is_pg(conn):
                # These are large one-off scans: compiling them (JIT) costs more than it saves.
                conn.exec_driver_sql("SET LOCAL jit = off")
                # A year's durations are sorted for their percentiles and its answers hashed: in memory, not on disk.
                conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            chart: Chart = build(conn, span)
        return chart

    def refresh(self) -> int:
        """Copy the audit events the charts read (answers, resolutions, replies, reopens) of every day that ended
        over `ROLLUP_DELAY` ago and is not copied yet into handoff_report_events, each with when its ticket
        episode began, then count those days' resolutions and replies per agent; return how many events were
        copied. One caller copies a day: the others find the row moved on and skip."""
        copied = self._copy_events()
        self._count_agent_days()
        return copied

    def _copy_events(self) -> int:
        until = datetime.combine((self.clock() - ROLLUP_DELAY).astimezone(UTC).date(), time(), UTC)
        r = report_rollup.c
        with self.engine.begin() as conn:
            row = conn.execute(select(r.rolled_until).where(r.name == ROLLUP)).first()
            if row is None:  # a database made without the migrations
                conn.execute(insert(report_rollup).values(name=ROLLUP, rolled_until=None))
            since = _utc(row[0]) if row is not None else None
            if since is not None and since >= until:
                return 0
            same = r.rolled_until.is_(None) if since is None else r.rolled_until == since
            moved = conn.execute(update(report_rollup).where(r.name == ROLLUP, same).values(rolled_until=until))
            if moved.rowcount != 1:
                return 0
            a = audit_events.c
            copied = select(a.id, a.ticket_id, a.action, a.at, a.actor, self._began(audit_events)).where(
                a.action.in_(REPORT_ACTIONS), a.at < until, *([a.at >= since] if since is not None else [])
            )
            columns = ["event_id", "ticket_id", "action", "at", "actor", "began_at"]
            conn.execute(insert(report_events).from_select(columns, copied))
            e = report_events.c
            count = select(func.count()).where(e.at < until, *([e.at >= since] if since is not None else []))
            return int(conn.execute(count).scalar_one())

    def _count_agent_days(self) -> None:
        """Count per UTC day and actor the resolutions and replies of the days handoff_report_events holds and
        handoff_report_agent_days does not yet (they never change, as the events they count)."""
        r = report_rollup.c
        with self.engine.begin() as conn:
            until = _utc(conn.execute(select(r.rolled_until).where(r.name == ROLLUP)).scalar())
            if until is None:
                return
            row = conn.execute(select(r.rolled_until).where(r.name == AGENT_DAYS)).first()
            if row is None:  # a database made without the migrations
                conn.execute(insert(report_rollup).values(name=AGENT_DAYS, rolled_until=None))
            since = _utc(row[0]) if row is not None else None
            if since is not None and since >= until:
                return
            same = r.rolled_until.is_(None) if since is None else r.rolled_until == since
            moved = conn.execute(update(report_rollup).where(r.name == AGENT_DAYS, same).values(rolled_until=until))
            if moved.rowcount != 1:
                return
            e = report_events.c
            counted = (
                select(self._day(conn, e.at).label("d"), e.actor, func.sum(case((e.action == "resolved", 1), else_=0)),
                       func.sum(case((e.action == "replied", 1), else_=0)))
                .where(e.action.in_(("resolved", "replied")), e.at < until,
                       *([e.at >= since] if since is not None else []))
                .group_by(literal_column_label("d"), e.actor)
            )  # fmt: skip
            conn.execute(insert(report_agent_days).from_select(["day", "actor", "resolved", "replied"], counted))

    def _rolled_until(self, conn: Connection, name: str = ROLLUP) -> datetime | None:
        if not self.rollups:
            return None
        found = conn.execute(select(report_rollup.c.rolled_until).where(report_rollup.c.name == name)).scalar()
        return _utc(found)

    def _events(self, conn: Connection, span: Period, actions: Sequence[str], *, ranged: bool = True) -> Any:
        """The audit events `actions` of the range (all of them: ranged=False) as (id, ticket_id, action, at, actor,
        began_at): closed days from handoff_report_events, the rest live from the audit log, the same columns."""
        a, r = audit_events.c, report_events.c
        until = self._rolled_until(conn)
        live = select(a.id.label("id"), a.ticket_id, a.action, a.at, a.actor,
                      self._began(audit_events).label("began_at")).where(a.action.in_(actions))  # fmt: skip
        rolled = select(r.event_id.label("id"), r.ticket_id, r.action, r.at, r.actor, r.began_at).where(
            r.action.in_(actions)
        )
        if ranged:
            live, rolled = live.where(self._within(a.at, span)), rolled.where(self._within(r.at, span))
        if until is None or (ranged and span.start >= until):
            return live.subquery("events")
        rolled = rolled.where(r.at < until)
        if ranged and span.end <= until:
            return rolled.subquery("events")
        return union_all(rolled, live.where(a.at >= until)).subquery("events")

    def _began(self, event: Any) -> Any:
        """When the ticket episode of an answer (its first) or a resolution began; NULL for other events."""
        return case(
            (event.c.action == "answered", self._arrival_at(event, EPISODE_EVENTS)),
            (event.c.action == "resolved", self._arrival_at(event, ARRIVALS)),
            else_=None,
        )

    def charts(self, span: Period, roles: Iterable[str]) -> list[Chart]:
        wanted = set(roles)
        return [self.chart(spec.name, span) for spec in CHARTS if wanted & set(spec.roles)]

    # ------------------------------------------------ SQL helpers, the same labels on both databases
    def _is_pg(self, conn: Connection) -> bool:
        return conn.dialect.name == "postgresql"

    def _bucket(self, conn: Connection, column: Any, span: Period) -> ColumnElement[Any]:
        """The bucket of `column`: on PostgreSQL its hour or date (cheap to group by; `_label` words it after),
        on SQLite its label."""
        if self._is_pg(conn):
            utc = func.timezone("UTC", column)
            if span.bucket == "hour":
                return func.date_trunc("hour", utc)
            return cast(utc, Date)
        return func.strftime("%Y-%m-%dT%H:00" if span.bucket == "hour" else "%Y-%m-%d", column)

    def _day(self, conn: Connection, column: Any) -> ColumnElement[Any]:
        """The UTC date of `column` (a date on PostgreSQL, its YYYY-MM-DD text on SQLite, as a Date column keeps it)."""
        if self._is_pg(conn):
            return cast(func.timezone("UTC", column), Date)
        return func.strftime("%Y-%m-%d", column)

    def _seconds(self, conn: Connection, later: Any, earlier: Any) -> ColumnElement[float]:
        if self._is_pg(conn):
            return cast(func.extract("epoch", later - earlier), Float)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    def _within(self, column: Any, span: Period) -> ColumnElement[bool]:
        return and_(column >= span.start, column < span.end)

    def _durations(
        self, conn: Connection, query: Any, quantiles: Sequence[float] = (0.5, 0.9), *, overall: bool = True
    ) -> tuple[dict[Any, Any], Any]:
        """Per key and over all keys: how many, the quantiles of `duration` (seconds) and how many took at most
        the SLA. `query` has the columns `key` and `duration`; one pass over it (PostgreSQL: GROUP BY ROLLUP).
        overall=False: per key only (the figures over all keys are None; PostgreSQL sorts the durations once)."""
        sub = query.subquery()
        found: dict[Any, dict[str, Any]] = {}
        whole = None
        if self.sql_percentiles:
            sla = func.sum(case((sub.c.duration <= self.sla_seconds, 1), else_=0))
            columns = [func.percentile_cont(q).within_group(sub.c.duration) for q in quantiles]
            grouped = select(func.grouping(sub.c.key), sub.c.key, func.count(), sla, *columns).group_by(
                func.rollup(sub.c.key) if overall else sub.c.key
            )
            for row in conn.execute(grouped):
                figures = {"count": int(row[2]), "sla_met": int(row[3] or 0),
                           "q": [None if v is None else float(v) for v in row[4:]]}  # fmt: skip
                if row[0]:
                    whole = figures
                else:
                    found[_label(row[1])] = figures
            return found, whole
        values: dict[Any, list[float]] = defaultdict(list)
        for key_value, seconds in conn.execute(select(sub.c.key, sub.c.duration)):
            values[_label(key_value)].append(float(seconds))

        def figures_of(durations: list[float]) -> dict[str, Any]:
            return {
                "count": len(durations), "sla_met": sum(1 for d in durations if d <= self.sla_seconds),
                "q": [percentile_cont(durations, q) for q in quantiles],
            }  # fmt: skip

        found = {key_value: figures_of(durations) for key_value, durations in values.items()}
        everything = [d for durations in values.values() for d in durations] if overall else []
        return found, figures_of(everything) if everything else None

    def _arrival_at(self, event: Any, among: Sequence[str]) -> Any:
        """When the ticket episode of `event` began: the time of the ticket's latest audit event among `among`
        before `event` if that one is an arrival (created, or reopened after closing), else NULL."""
        earlier = audit_events.alias("earlier")
        return (
            select(case((earlier.c.action.in_(ARRIVALS), earlier.c.at), else_=None))
            .where(earlier.c.ticket_id == event.c.ticket_id, earlier.c.id < event.c.id, earlier.c.action.in_(among))
            .order_by(earlier.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    def _first_responses(self, conn: Connection, span: Period, key: str) -> Any:
        """The first agent reply of each ticket episode answered in the range: (key, duration) rows, where key is
        the bucket of the reply or the agent who sent it. A reply is the first when the ticket's event before it
        (among arrivals and answers) is its arrival."""
        answer = self._events(conn, span, ("answered",))
        key_column = self._bucket(conn, answer.c.at, span) if key == "bucket" else answer.c.actor
        return select(key_column.label("key"), self._seconds(conn, answer.c.at, answer.c.began_at).label("duration")
                      ).where(answer.c.began_at.is_not(None))  # fmt: skip

    # ------------------------------------------------ the charts
    def _volume_counts(self, conn: Connection, span: Period) -> dict[str, dict[str, int]]:
        t = inbound_tweets.c
        rows = conn.execute(
            select(self._bucket(conn, t.fetched_at, span).label("b"), t.band, t.ignore_reason, func.count())
            .where(self._within(t.fetched_at, span))
            .group_by(literal_column_label("b"), t.band, t.ignore_reason)
        ).all()
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for key, band, reason, count in rows:
            label = _label(key)
            if band is None:
                key = "waiting"
            elif band == "ignore":
                key = "ignore_" + (reason if reason in IGNORE_REASONS else "other")
            else:
                key = band
            counts[label][key] += int(count)
        return counts

    def _volume(self, conn: Connection, span: Period) -> Chart:
        keys = ["auto", "approve", "human", *(f"ignore_{r}" for r in (*IGNORE_REASONS, "other")), "waiting"]
        columns = [ChartColumn("bucket", "Time (UTC)")] + [
            ChartColumn(k, ("ignore: " + IGNORE_WORDS[k[7:]] if k.startswith("ignore_") else k) + " (tweets)")
            for k in keys
        ] + [ChartColumn("total", "total (tweets)")]  # fmt: skip
        chart = Chart(
            "volume", SPECS["volume"].title, "stacked", "tweets",
            "Stored tweets by the time carebot fetched them, by the band triage gave them; ignored tweets by their "
            "named reason; waiting: not triaged yet.", columns, keys,
        )  # fmt: skip
        counts = self._volume_counts(conn, span)
        for label in span.labels():
            row: dict[str, Any] = {"bucket": label, **{k: counts.get(label, {}).get(k, 0) for k in keys}}
            row["total"] = sum(row[k] for k in keys)
            chart.rows.append(row)
        chart.totals = {k: sum(r[k] for r in chart.rows) for k in [*keys, "total"]}
        return chart

    def _answerable_counts(self, conn: Connection, span: Period) -> dict[str, dict[str, int]]:
        """The volume's auto, approve and human counts by bucket (what deflection needs of it: a narrower count)."""
        t = inbound_tweets.c
        rows = conn.execute(
            select(self._bucket(conn, t.fetched_at, span).label("b"), t.band, func.count())
            .where(self._within(t.fetched_at, span), t.band.in_(("auto", "approve", "human")))
            .group_by(literal_column_label("b"), t.band)
        ).all()
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for key, band, count in rows:
            counts[_label(key)][band] = int(count)
        return counts

    def _deflection(self, conn: Connection, span: Period) -> Chart:
        counts = self._answerable_counts(conn, span)
        t = tickets.c
        approved = _labelled(
            conn.execute(
                select(self._bucket(conn, t.first_response_at, span).label("b"), func.count())
                .where(t.band == "approve", t.draft_reply.is_not(None), self._within(t.first_response_at, span))
                .group_by(literal_column_label("b"))
            ).all()
        )
        a = audit_events.c
        rejected = _labelled(
            conn.execute(
                select(self._bucket(conn, a.at, span).label("b"), func.count())
                .where(a.action == "draft_rejected", self._within(a.at, span))
                .group_by(literal_column_label("b"))
            ).all()
        )
        answers, came_back = self._bot_answers(conn, span, key="bucket")
        columns = [
            ChartColumn("bucket", "Time (UTC)"), ChartColumn("answerable", "auto + approve + human (tweets)"),
            ChartColumn("auto", "answered automatically (tweets)"), ChartColumn("deflection", "deflection (%)"),
            ChartColumn("drafts_approved", "drafts approved"), ChartColumn("drafts_rejected", "drafts rejected"),
            ChartColumn("draft_precision", "drafts approved (%)"), ChartColumn("bot_answers", "bot FAQ answers"),
            ChartColumn("didnt_help", "came back to a person"), ChartColumn("helped", "answers that helped (%)"),
        ]  # fmt: skip
        chart = Chart(
            "deflection", SPECS["deflection"].title, "lines", "%",
            "Deflection: tweets the bot answered itself among those that needed an answer (auto, approve, human). "
            "Drafts approved: approve-band tickets whose first agent reply went out without the draft being "
            "rejected. Answers that helped: bot FAQ answers after which nothing more of the conversation went to "
            "a person.", columns, ["deflection", "draft_precision", "helped"],
        )  # fmt: skip
        totals: dict[str, int] = defaultdict(int)
        for label in span.labels():
            c = counts.get(label, {})
            answerable = c.get("auto", 0) + c.get("approve", 0) + c.get("human", 0)
            ok, bad = int(approved.get(label, 0)), int(rejected.get(label, 0))
            sent, back = answers.get(label, 0), came_back.get(label, 0)
            chart.rows.append({
                "bucket": label, "answerable": answerable, "auto": c.get("auto", 0),
                "deflection": _pct(c.get("auto", 0), answerable), "drafts_approved": ok, "drafts_rejected": bad,
                "draft_precision": _pct(ok, ok + bad), "bot_answers": sent, "didnt_help": back,
                "helped": _pct(sent - back, sent),
            })  # fmt: skip
            for key, value in (("answerable", answerable), ("auto", c.get("auto", 0)), ("drafts_approved", ok),
                               ("drafts_rejected", bad), ("bot_answers", sent), ("didnt_help", back)):  # fmt: skip
                totals[key] += value
        chart.totals = dict(totals) | {
            "deflection": _pct(totals["auto"], totals["answerable"]),
            "draft_precision": _pct(totals["drafts_approved"], totals["drafts_approved"] + totals["drafts_rejected"]),
            "helped": _pct(totals["bot_answers"] - totals["didnt_help"], totals["bot_answers"]),
        }  # fmt: skip
        return chart

    def _bot_answers(self, conn: Connection, span: Period, *, key: str) -> tuple[dict[Any, int], dict[Any, int]]:
        """The bot's sent FAQ answers of the range, and those after which a later tweet of the conversation went
        to a ticket (the customer came back to a person), by bucket or by FAQ slug."""
        def sent_answers(o: Any) -> ColumnElement[bool]:
            return and_(o.kind == "faq_answer", o.author == "bot", o.state == "sent", self._within(o.created_at, span))

        o = outbox.c
        if self.rollups:
            # The worker flags an answer when a later tweet of its conversation goes to a ticket: one index scan.
            key_column = self._bucket(conn, o.created_at, span) if key == "bucket" else o.faq_slug
            rows = conn.execute(
                select(key_column.label("k"), func.count(), func.sum(case((o.came_back, 1), else_=0)))
                .where(sent_answers(o))
                .group_by(literal_column_label("k"))
            ).all()  # fmt: skip
            return ({_label(k): int(n) for k, n, _ in rows},
                    {_label(k): int(back) for k, _, back in rows if back})  # fmt: skip
        # Recounted: those the customer came back after, with one semi-join, not a look-up per answer.
        later = inbound_tweets.alias("later")
        came_back = exists().where(
            later.c.conversation_id == o.conversation_id, later.c.ticket_id.is_not(None),
            later.c.fetched_at > o.created_at,
        )  # fmt: skip
        label = (self._bucket(conn, o.created_at, span) if key == "bucket" else o.faq_slug).label("k")
        counted = select(label, func.count()).where(sent_answers(o)).group_by(literal_column_label("k"))
        answers = _labelled(conn.execute(counted))
        backs = _labelled(conn.execute(counted.where(came_back)))
        return answers, backs

    def _first_response(self, conn: Connection, span: Period) -> Chart:
        figures, whole = self._durations(conn, self._first_responses(conn, span, "bucket"))
        columns = [
            ChartColumn("bucket", "Time (UTC)"), ChartColumn("responses", "first responses"),
            ChartColumn("p50", "p50 (minutes)"), ChartColumn("p90", "p90 (minutes)"),
            ChartColumn("sla_met", f"within the SLA of {self.sla_seconds // 60} min (%)"),
        ]  # fmt: skip
        chart = Chart(
            "first-response", SPECS["first-response"].title, "lines", "minutes",
            "From a ticket's arrival (created, or reopened after it was closed) to the first agent reply, by when "
            "the reply was queued. SLA met: within the first-response SLA.", columns, ["p50", "p90"],
        )  # fmt: skip
        for label in span.labels():
            f = figures.get(label)
            chart.rows.append({
                "bucket": label, "responses": f["count"] if f else 0, "p50": _minutes(f["q"][0]) if f else None,
                "p90": _minutes(f["q"][1]) if f else None, "sla_met": _pct(f["sla_met"], f["count"]) if f else None,
            })  # fmt: skip
        chart.totals = {
            "responses": whole["count"] if whole else 0, "p50": _minutes(whole["q"][0]) if whole else None,
            "p90": _minutes(whole["q"][1]) if whole else None,
            "sla_met": _pct(whole["sla_met"], whole["count"]) if whole else None,
        }  # fmt: skip
        return chart

    def _resolutions(self, conn: Connection, span: Period) -> Any:
        done = self._events(conn, span, ("resolved",))
        return select(self._bucket(conn, done.c.at, span).label("key"),
                      self._seconds(conn, done.c.at, done.c.began_at).label("duration")
                      ).where(done.c.began_at.is_not(None))  # fmt: skip

    def _resolution(self, conn: Connection, span: Period) -> Chart:
        figures, whole = self._durations(conn, self._resolutions(conn, span))
        columns = [
            ChartColumn("bucket", "Time (UTC)"), ChartColumn("resolved", "resolved"),
            ChartColumn("p50", "p50 (hours)"), ChartColumn("p90", "p90 (hours)"),
        ]  # fmt: skip
        chart = Chart(
            "resolution", SPECS["resolution"].title, "lines", "hours",
            "From a ticket's arrival (created, or reopened after it was closed) to its resolution, by when it was "
            "resolved.", columns, ["p50", "p90"],
        )  # fmt: skip
        for label in span.labels():
            f = figures.get(label)
            chart.rows.append(
                {
                    "bucket": label,
                    "resolved": f["count"] if f else 0,
                    "p50": _hours(f["q"][0]) if f else None,
                    "p90": _hours(f["q"][1]) if f else None,
                }
            )
        chart.totals = {"resolved": whole["count"] if whole else 0, "p50": _hours(whole["q"][0]) if whole else None,
                        "p90": _hours(whole["q"][1]) if whole else None}  # fmt: skip
        return chart

    def _reopens(self, conn: Connection, span: Period) -> Chart:
        # A resolution was reopened when its ticket has a "reopened" event after it (the ticket's last one is).
        done = self._events(conn, span, ("resolved",))
        again = self._events(conn, span, ("reopened",), ranged=False)
        last = select(again.c.ticket_id, func.max(again.c.id).label("last")).group_by(again.c.ticket_id).subquery()
        rows = conn.execute(
            select(self._bucket(conn, done.c.at, span).label("b"), func.count(),
                   func.sum(case((last.c.last > done.c.id, 1), else_=0)))
            .select_from(done.outerjoin(last, last.c.ticket_id == done.c.ticket_id))
            .group_by(literal_column_label("b"))
        ).all()  # fmt: skip
        found = {_label(key): (int(n), int(r or 0)) for key, n, r in rows}
        columns = [ChartColumn("bucket", "Time (UTC)"), ChartColumn("resolved", "resolved"),
                   ChartColumn("reopened", "reopened later"), ChartColumn("rate", "reopen rate (%)")]  # fmt: skip
        chart = Chart(
            "reopens", SPECS["reopens"].title, "lines", "%",
            "Resolutions of each bucket after which the customer wrote again and the ticket was reopened.",
            columns, ["rate"],
        )  # fmt: skip
        for label in span.labels():
            n, r = found.get(label, (0, 0))
            chart.rows.append({"bucket": label, "resolved": n, "reopened": r, "rate": _pct(r, n)})
        resolved, reopened_total = sum(n for n, _ in found.values()), sum(r for _, r in found.values())
        chart.totals = {"resolved": resolved, "reopened": reopened_total, "rate": _pct(reopened_total, resolved)}
        return chart

    def _agents(self, conn: Connection, span: Period) -> Chart:
        roster = {row.username: row for row in conn.execute(select(agents.c.username, agents.c.display_name,
                                                                    agents.c.initials))}  # fmt: skip
        work = self._agent_work(conn, span, list(roster) or [""])
        figures, _ = self._durations(conn, self._first_responses(conn, span, "actor"), overall=False)
        columns = [
            ChartColumn("agent", "agent"), ChartColumn("initials", "initials"), ChartColumn("handled", "resolved"),
            ChartColumn("replies", "replies"), ChartColumn("first_responses", "first responses"),
            ChartColumn("p50", "first response p50 (minutes)"), ChartColumn("p90", "first response p90 (minutes)"),
        ]  # fmt: skip
        chart = Chart(
            "agents", SPECS["agents"].title, "bars", "tickets resolved",
            "Per agent over the whole range: tickets resolved, replies sent (approved drafts included) and the "
            "first-response time of the episodes they answered first.", columns, ["handled"],
        )  # fmt: skip
        for username in sorted(set(work) | {k for k in figures if k in roster}):
            agent = roster[username]
            resolved, replies = work.get(username, (0, 0))
            f = figures.get(username)
            chart.rows.append({
                "agent": agent.display_name, "initials": agent.initials, "handled": resolved, "replies": replies,
                "first_responses": f["count"] if f else 0, "p50": _minutes(f["q"][0]) if f else None,
                "p90": _minutes(f["q"][1]) if f else None,
            })  # fmt: skip
        chart.rows.sort(key=lambda r: (-r["handled"], -r["replies"], r["agent"]))
        chart.totals = {k: sum(r[k] for r in chart.rows) for k in ("handled", "replies", "first_responses")}
        return chart

    def _agent_work(self, conn: Connection, span: Period, actors: list[str]) -> dict[str, tuple[int, int]]:
        """Resolutions and replies over the range by each of `actors`: the closed days counted per day in
        handoff_report_agent_days, the rest from the events."""
        work: dict[str, tuple[int, int]] = {}

        def add(rows: Iterable[Any]) -> None:
            for actor, resolved, replies in rows:
                before = work.get(actor, (0, 0))
                work[actor] = (before[0] + int(resolved or 0), before[1] + int(replies or 0))

        counted_until = self._rolled_until(conn, AGENT_DAYS)
        rest: Period | None = span
        if counted_until is not None and span.start < counted_until and _midnight(span.start):
            last = min(span.end, counted_until)
            if _midnight(last):
                d = report_agent_days.c
                add(conn.execute(
                    select(d.actor, func.sum(d.resolved), func.sum(d.replied))
                    .where(d.day >= span.start.date(), d.day < last.date(), d.actor.in_(actors))
                    .group_by(d.actor)
                ))  # fmt: skip
                rest = replace(span, start=last) if last < span.end else None
        if rest is not None:
            a = self._events(conn, rest, ("resolved", "replied")).c
            add(conn.execute(
                select(a.actor, func.sum(case((a.action == "resolved", 1), else_=0)),
                       func.sum(case((a.action == "replied", 1), else_=0)))
                .where(a.actor.in_(actors))
                .group_by(a.actor)
            ))  # fmt: skip
        return work

    def _faq_rows(self, conn: Connection, span: Period) -> list[dict[str, Any]]:
        answers, backs = self._bot_answers(conn, span, key="slug")
        questions = dict(conn.execute(select(kb_entries.c.slug, kb_entries.c.question).where(
            kb_entries.c.slug.in_([s for s in answers if s] or [""])
        )).all())  # fmt: skip
        return [
            {"entry": slug or "(no entry recorded)", "question": questions.get(slug or "", ""), "answers": n,
             "didnt_help": backs.get(slug, 0), "rate": _pct(backs.get(slug, 0), n)}
            for slug, n in answers.items()
        ]  # fmt: skip

    def _faq_columns(self) -> list[ChartColumn]:
        return [ChartColumn("entry", "FAQ entry"), ChartColumn("question", "question"),
                ChartColumn("answers", "bot answers"), ChartColumn("didnt_help", "came back to a person"),
                ChartColumn("rate", "did not help (%)")]  # fmt: skip

    def _faq_busiest(self, conn: Connection, span: Period) -> Chart:
        rows = sorted(self._faq_rows(conn, span), key=lambda r: (-r["answers"], r["entry"]))
        chart = Chart(
            "faq-busiest", SPECS["faq-busiest"].title, "bars", "bot answers",
            f"The {TOP_ENTRIES} FAQ entries the bot answered with most over the range (sent answers).",
            self._faq_columns(), ["answers"], rows[:TOP_ENTRIES],
        )  # fmt: skip
        chart.totals = {"answers": sum(r["answers"] for r in rows), "entries": len(rows)}
        return chart

    def _faq_unhelpful(self, conn: Connection, span: Period) -> Chart:
        rows = [r for r in self._faq_rows(conn, span) if r["answers"] >= MIN_ANSWERS_FOR_RATE and r["didnt_help"]]
        rows.sort(key=lambda r: (-(r["rate"] or 0), -r["didnt_help"], r["entry"]))
        chart = Chart(
            "faq-unhelpful", SPECS["faq-unhelpful"].title, "bars", "% did not help",
            f"Entries with at least {MIN_ANSWERS_FOR_RATE} bot answers, by the share of answers after which the "
            "customer's next tweet in the conversation went to a person.", self._faq_columns(), ["rate"],
            rows[:TOP_ENTRIES],
        )  # fmt: skip
        chart.totals = {"didnt_help": sum(r["didnt_help"] for r in rows), "entries": len(rows)}
        return chart

    def _csat(self, conn: Connection, span: Period) -> Chart:
        s = csat_surveys.c
        answered = and_(s.state == "answered", s.score.is_not(None), self._within(s.answered_at, span))
        happy = func.sum(case((s.score >= 4, 1), else_=0))
        rows = conn.execute(
            select(self._bucket(conn, s.answered_at, span).label("b"), func.count(), func.sum(s.score), happy)
            .where(answered).group_by(literal_column_label("b"))
        ).all()  # fmt: skip
        found = {_label(key): (int(n), int(total or 0), int(h or 0)) for key, n, total, h in rows}
        columns = [ChartColumn("bucket", "Time (UTC)"), ChartColumn("answered", "answers"),
                   ChartColumn("average", "average score (1-5)"), ChartColumn("happy", "share of 4-5 (%)")]  # fmt: skip
        chart = Chart(
            "csat", SPECS["csat"].title, "lines", "%",
            "Answered satisfaction surveys (1 very unhappy … 5 very happy) by when the customer answered.",
            columns, ["happy"],
        )  # fmt: skip
        for label in span.labels():
            n, total, h = found.get(label, (0, 0, 0))
            chart.rows.append({"bucket": label, "answered": n, "average": round(total / n, 2) if n else None,
                               "happy": _pct(h, n)})  # fmt: skip
        n = sum(v[0] for v in found.values())
        total, h = sum(v[1] for v in found.values()), sum(v[2] for v in found.values())
        chart.totals = {"answered": n, "average": round(total / n, 2) if n else None, "happy": _pct(h, n)}
        return chart

    def _incidents(self, conn: Connection, span: Period) -> Chart:
        i, link = incidents.c, incident_tickets.c

        def per_bucket(column: Any) -> dict[str, int]:
            rows = conn.execute(
                select(self._bucket(conn, column, span).label("b"), func.count())
                .where(self._within(column, span))
                .group_by(literal_column_label("b"))
            ).all()
            return {_label(key): int(n) for key, n in rows}  # fmt: skip

        opened, resolved, linked = per_bucket(i.created_at), per_bucket(i.resolved_at), per_bucket(link.linked_at)
        columns = [
            ChartColumn("bucket", "Time (UTC)"),
            ChartColumn("opened", "incidents opened"),
            ChartColumn("resolved", "incidents resolved"),
            ChartColumn("linked", "tickets linked"),
        ]
        chart = Chart(
            "incidents", SPECS["incidents"].title, "grouped", "count",
            "Incidents by when they were opened and resolved, and tickets by when they were linked to one.",
            columns, ["opened", "resolved", "linked"],
        )  # fmt: skip
        for label in span.labels():
            chart.rows.append({"bucket": label, "opened": opened.get(label, 0), "resolved": resolved.get(label, 0),
                               "linked": linked.get(label, 0)})  # fmt: skip
        chart.totals = {k: sum(r[k] for r in chart.rows) for k in ("opened", "resolved", "linked")}
        return chart


def _label(key: Any) -> Any:
    """A bucket as its label ("2026-12-02", "2026-12-02T13:00"); an agent or an FAQ entry as it is."""
    if isinstance(key, datetime):
        return key.strftime("%Y-%m-%dT%H:00")
    if isinstance(key, date):
        return key.isoformat()
    return key


def _labelled(rows: Iterable[Any]) -> dict[Any, Any]:
    return {_label(key): value for key, value in rows}


def _midnight(moment: datetime) -> bool:
    """Whether `moment` starts a UTC day (where the per-day counts can be cut)."""
    return moment.astimezone(UTC).time() == time()


def _utc(moment: datetime | None) -> datetime | None:
    """A stored time as UTC (SQLite gives it back without its zone)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def literal_column_label(name: str) -> Any:
    """GROUP BY a selected column's label (both databases accept it; it keeps the bucket expression once)."""
    from sqlalchemy import literal_column

    return literal_column(name)

"""The triage policy's versions in the database: a lead applies a refit (`carebot triage calibrate --from-history`,
or the web), looks at the difference of two versions and rolls back, as with FAQ entries.

Each apply and each rollback adds a version with who, when and why, and an audit event (policy_applied,
policy_rolled_back); the newest version is the live policy, which a new Desk reads (bot/desk.open_desk). A desk
that has none reads the policy file (training_data/policy.yml) as before, and on the first apply that file is
stored as version 1 ("shipped"), so that a rollback can always go back to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, func, insert, inspect, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from bot.channel.models import policy_versions
from bot.decision.policy import Policy, load_policy, policy_from_dict, render_policy
from handoff.models import audit_events


class PolicyVersionError(ValueError):
    """No such version, or nothing to roll back to."""


@dataclass(frozen=True)
class PolicyVersion:
    number: int
    policy: Policy
    action: str  # shipped | apply | rollback
    based_on: int | None
    created_at: datetime
    created_by: str
    reason: str


@dataclass(frozen=True)
class BarChange:
    """One bar that differs between two versions: `what` names it (a kind's automatic answer, the pooled bars,
    the social and acknowledgement confidences), old and new as the lead reads them."""

    what: str
    old: str
    new: str


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _version(row: Row[Any]) -> PolicyVersion:
    return PolicyVersion(
        number=row.number, policy=policy_from_dict(yaml.safe_load(row.policy)), action=row.action,
        based_on=row.based_on, created_at=_utc(row.created_at), created_by=row.created_by, reason=row.reason,
    )  # fmt: skip


def _bar(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.4f}"


def bars(policy: Policy) -> dict[str, str]:
    """Every bar for a public post, by name, as text: the automatic answer per kind the FAQ may answer (its own or
    the pooled one), the pooled bars, the bar for unclear kinds, the social and acknowledgement confidences."""
    found = {
        "faq.auto": policy.auto.describe(), "faq.approve": policy.approve.describe(),
        "faq.unclear": policy.unclear_auto.describe(), "target_precision": f"{policy.target_precision}",
        "social_min_confidence": _bar(policy.social_min_confidence),
        "acknowledge_min_confidence": _bar(policy.acknowledge_min_confidence),
    }  # fmt: skip
    for name, rules in policy.intents.items():
        if rules.faq != "never" and not rules.reply:
            own = "" if rules.auto is not None else " (pooled)"
            found[f"kind {name}"] = policy.auto_thresholds(name).describe() + own
    return found


def diff(old: Policy, new: Policy) -> list[BarChange]:
    """The bars that differ, old → new, in the order `bars` names them."""
    before, after = bars(old), bars(new)
    names = list(dict.fromkeys([*before, *after]))
    return [
        BarChange(name, before.get(name, "-"), after.get(name, "-"))
        for name in names
        if before.get(name) != after.get(name)
    ]


class PolicyVersions:
    def __init__(
        self, engine: Engine, policy_file: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._engine = engine
        self._file = policy_file
        self._clock = clock

    def versions(self) -> list[PolicyVersion]:
        """Every version, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(policy_versions).order_by(policy_versions.c.number.desc())).all()
        return [_version(row) for row in rows]

    def get(self, number: int) -> PolicyVersion:
        with self._engine.connect() as conn:
            row = conn.execute(select(policy_versions).where(policy_versions.c.number == number)).first()
        if row is None:
            raise PolicyVersionError(f"There is no policy version {number}.")
        return _version(row)

    def live(self) -> Policy:
        """The newest version; the policy file while there is none (or no versions table: a database before
        migration 0018)."""
        with self._engine.connect() as conn:
            if not inspect(conn).has_table(policy_versions.name):
                return load_policy(self._file)
            row = conn.execute(select(policy_versions).order_by(policy_versions.c.number.desc()).limit(1)).first()
        return load_policy(self._file) if row is None else _version(row).policy

    def live_number(self) -> int | None:
        with self._engine.connect() as conn:
            return conn.execute(select(func.max(policy_versions.c.number))).scalar()

    def _add(
        self, conn: Connection, policy: Policy, action: str, *, by: str, reason: str, based_on: int | None = None
    ) -> int:
        text = render_policy(policy)
        policy_from_dict(yaml.safe_load(text))  # never store a version that does not load
        number = self._next_number(conn)
        now = _utc(self._clock())
        conn.execute(insert(policy_versions).values(
            number=number, policy=text, action=action, based_on=based_on, created_at=now, created_by=by[:64],
            reason=reason,
        ))  # fmt: skip
        return number

    def _next_number(self, conn: Connection) -> int:
        return int(conn.execute(select(func.coalesce(func.max(policy_versions.c.number), 0))).scalar_one()) + 1

    def _seeded(self, conn: Connection) -> Policy:
        """The live policy in the caller's transaction; the policy file stored as version 1 if there was none."""
        row = conn.execute(select(policy_versions).order_by(policy_versions.c.number.desc()).limit(1)).first()
        if row is not None:
            return _version(row).policy
        shipped = load_policy(self._file)
        self._add(conn, shipped, "shipped", by="carebot", reason=f"the policy file {self._file.name}")
        return shipped

    def apply(self, policy: Policy, *, by: str, reason: str) -> PolicyVersion:
        """Make `policy` the live version, audited (policy_applied, with the bars that changed)."""
        _check_who(by, reason)
        with _one_at_a_time(), self._engine.begin() as conn:
            before = self._seeded(conn)
            number = self._add(conn, policy, "apply", by=by, reason=reason)
            changes = [c.__dict__ for c in diff(before, policy)]
            conn.execute(insert(audit_events).values(
                at=_utc(self._clock()), actor=by[:64], action="policy_applied", ticket_id=None,
                details={"version": number, "reason": reason, "changes": changes},
            ))  # fmt: skip
        return self.get(number)

    def rollback(self, number: int, *, by: str, reason: str) -> PolicyVersion:
        """A new version equal to version `number`, audited (policy_rolled_back)."""
        _check_who(by, reason)
        with _one_at_a_time(), self._engine.begin() as conn:
            before = self._seeded(conn)
            row = conn.execute(select(policy_versions).where(policy_versions.c.number == number)).first()
            if row is None:
                raise PolicyVersionError(f"There is no policy version {number}.")
            restored = _version(row).policy
            added = self._add(conn, restored, "rollback", by=by, reason=reason, based_on=number)
            changes = [c.__dict__ for c in diff(before, restored)]
            conn.execute(insert(audit_events).values(
                at=_utc(self._clock()), actor=by[:64], action="policy_rolled_back", ticket_id=None,
                details={"version": added, "restored": number, "reason": reason, "changes": changes},
            ))  # fmt: skip
        return self.get(added)


@contextmanager
def _one_at_a_time() -> Iterator[None]:
    """Two versions numbered alike (two leads at once): the second is refused, the first stands."""
    try:
        yield
    except IntegrityError as exc:
        raise PolicyVersionError("Another policy version was made at the same moment: reload and try again.") from exc


def _check_who(by: str, reason: str) -> None:
    if not isinstance(by, str) or not by.strip() or len(by) > 64:
        raise PolicyVersionError("who applies it must be a non-empty name of at most 64 characters")
    if not isinstance(reason, str) or not reason.strip():
        raise PolicyVersionError("say why (a reason)")


def live_policy(database_url: str, policy_file: Path) -> Policy:
    """The live policy of the desk on this database: its newest version, else the policy file (also when the
    database does not have the versions table yet)."""
    from bot.db import make_engine

    engine = make_engine(database_url)
    try:
        return PolicyVersions(engine, policy_file).live()
    finally:
        engine.dispose()

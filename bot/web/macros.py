"""Macros: replies an agent saves once and inserts into the reply box, with placeholders filled in for the ticket.

`{customer}` becomes the customer's @handle and `{agent}` the agent's first name. An agent keeps their own
macros; a lead may also share one with the whole team. A macro is tone-checked when it is saved (with sample
values in its placeholders, and the agent's signature), and the reply made from it is checked again on send like
any other reply, so a macro can never carry what the tone guide refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select

from bot.decision.tone import Author, ToneGuide, check
from bot.web.accounts import Account
from bot.web.console import ConsoleError
from bot.web.models import macros

MAX_TITLE = 80
MAX_BODY = 1000
MAX_PER_OWNER = 200
PLACEHOLDERS = ("customer", "agent")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class MacroError(ConsoleError):
    """The macro cannot be saved, used or deleted; the message says why, for the agent (409 in the API)."""


@dataclass(frozen=True)
class Macro:
    id: int
    title: str
    body: str
    shared: bool
    owner_id: int
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["created_at"] = self.created_at.isoformat()
        return data


def first_name(account: Account) -> str:
    return (account.display_name or account.username).split()[0]


def fill(body: str, *, customer: str | None, agent: str) -> str:
    """The macro's text for one ticket: {customer} is @handle (or "there" with no handle), {agent} a first name."""
    values = {"customer": f"@{customer}" if customer else "there", "agent": agent}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


class MacroService:
    def __init__(self, engine: Engine, guide: ToneGuide, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.guide = guide
        self.clock = clock or (lambda: datetime.now(UTC))

    def available(self, account: Account) -> list[Macro]:
        """The account's own macros, then the team's shared ones, each by title."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(macros)
                .where(or_(macros.c.owner_id == account.id, macros.c.shared.is_(True)))
                .order_by(macros.c.shared, func.lower(macros.c.title), macros.c.id)
            ).all()
        return [_macro(row) for row in rows]

    def create(self, account: Account, title: str, body: str, *, shared: bool = False) -> Macro:
        title = " ".join(title.split())
        body = body.strip()
        if not 1 <= len(title) <= MAX_TITLE:
            raise MacroError(f"A macro needs a title of 1 to {MAX_TITLE} characters.")
        if not 1 <= len(body) <= MAX_BODY:
            raise MacroError(f"A macro needs a text of 1 to {MAX_BODY} characters.")
        if shared and account.role != "lead":
            raise MacroError("Only a lead shares a macro with the team.")
        unknown = sorted({name for name in _PLACEHOLDER.findall(body) if name not in PLACEHOLDERS})
        if unknown:
            names = ", ".join("{" + name + "}" for name in unknown)
            raise MacroError(f"Unknown placeholder {names}: use {{customer}} or {{agent}}.")
        author = Author.agent(account.initials) if account.initials else Author.bot()
        sample = fill(body, customer="customer", agent=first_name(account))
        signed = f"{sample} {self.guide.signature(author)}"
        problems = [v.message for v in check(signed, author, guide=self.guide) if v.code != "duplicate"]
        if problems:
            raise MacroError("Not saved: " + " ".join(problems))
        with self.engine.begin() as conn:
            count = conn.execute(select(func.count()).where(macros.c.owner_id == account.id)).scalar_one()
            if count >= MAX_PER_OWNER:
                raise MacroError(f"You have {MAX_PER_OWNER} macros already; delete some first.")
            macro_id = conn.execute(
                insert(macros)
                .values(owner_id=account.id, shared=shared, title=title, body=body, created_at=self.clock())
                .returning(macros.c.id)
            ).scalar_one()
            row = conn.execute(select(macros).where(macros.c.id == macro_id)).one()
        return _macro(row)

    def delete(self, account: Account, macro_id: int) -> None:
        """An agent deletes their own macros; a lead also the team's shared ones."""
        with self.engine.begin() as conn:
            row = conn.execute(select(macros).where(macros.c.id == macro_id)).first()
            if row is None or (row.owner_id != account.id and not (row.shared and account.role == "lead")):
                raise MacroError(f"There is no macro {macro_id} of yours.")
            conn.execute(delete(macros).where(macros.c.id == macro_id))


def _macro(row: Any) -> Macro:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Macro(row.id, row.title, row.body, bool(row.shared), row.owner_id, created)

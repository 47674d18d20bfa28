"""The handoff queue's tables: tickets, their conversation messages, the roster of agents and the audit log.
Kept in their own MetaData; migration 0004 creates them."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()

"""The web app's tables: log-in accounts (argon2id hashes, role), sessions and log-in attempts.
Kept in their own MetaData; migration 0005 creates them."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()

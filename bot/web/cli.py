"""`carebot web` (the web app) and `carebot users` (log-in accounts)."""

from __future__ import annotations

import typer

users_app = typer.Typer(help="Log-in accounts of agents, editors and leads.", no_args_is_help=True)

"""`carebot sandbox`: run the sandbox X, replay recorded traffic into it, switch its faults."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="The sandbox X: a local X API for development, tests and agent training.")

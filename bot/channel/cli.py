"""`carebot worker`: run the X channel's worker until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from bot.settings import Settings


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_worker(settings: Settings, *, steps: int | None = None) -> None:
    """Run the worker; `steps` bounds the number of passes (None: until stopped)."""
    from bot.channel.worker import build_worker

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with build_worker(settings) as worker:
            if worker is None:
                return
            logging.getLogger(__name__).info(
                "worker running against %s (poll every %.1f s)",
                settings.effective_x_api_url, settings.x_poll_interval_s,
            )  # fmt: skip
            if steps is None:
                worker.run(stop)
            else:
                worker.sender.recover()
                for _ in range(steps):
                    worker.step()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_command(
    steps: Annotated[int | None, typer.Option(help="Stop after this many passes (default: run until stopped).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the worker: read mentions, searches and DMs from X, triage them, post replies, open tickets."""
    from bot.cli import STATE

    configure_logging(verbose)
    run_worker(STATE.settings, steps=steps)

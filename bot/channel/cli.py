"""`carebot worker`: run the X channel's worker until Ctrl-C or SIGTERM.

SIGTERM first lets the steps in flight finish (at most DRAIN_S), Ctrl-C stops at once.
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from bot.settings import Settings

DRAIN_S = 20.0  # after SIGTERM, how long the steps in flight may take before the worker stops as on Ctrl-C


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_worker(settings: Settings, *, steps: int | None = None, drain_s: float = DRAIN_S) -> None:
    """Run the worker; `steps` bounds the number of passes (None: until stopped).

    SIGTERM lets the steps in flight finish (a drain of at most `drain_s`, then it stops as on Ctrl-C); before
    the worker runs (X not answering yet), or at a second SIGTERM, it stops at once, as on Ctrl-C.
    """
    from bot.channel.worker import build_worker

    stop = threading.Event()
    running = threading.Event()
    drain = threading.Timer(drain_s, _thread.interrupt_main)
    drain.daemon = True

    def _stop(signum: int, frame: FrameType | None) -> None:
        if not running.is_set() or stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        drain.start()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with build_worker(settings) as worker:
            if worker is None:
                return
            logging.getLogger(__name__).info(
                "worker running against %s (poll every %.1f s)",
                settings.effective_x_api_url, settings.x_poll_interval_s,
            )  # fmt: skip
            running.set()
            if steps is None:
                worker.run(stop)
            else:
                worker.sender.recover()
                for _ in range(steps):
                    if stop.is_set():
                        break
                    worker.step()
    except KeyboardInterrupt:
        pass
    finally:
        drain.cancel()
        signal.signal(signal.SIGTERM, previous)


def worker_command(
    steps: Annotated[int | None, typer.Option(help="Stop after this many passes (default: run until stopped).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the worker: read mentions, searches and DMs from X, triage them, post replies, open tickets."""
    from bot.cli import STATE

    STATE.settings.check_x_user_context()  # app-only X credentials: refused before anything starts
    configure_logging(verbose)
    run_worker(STATE.settings, steps=steps)

"""Named points in the worker where a crash test can kill it with SIGKILL, to prove that the X channel's
invariants survive a crash at exactly that point.

Armed by the environment variable CAREBOT_FAILPOINT=NAME or NAME@N (die on the N-th time NAME is reached).
Unset, as in normal operation, `failpoint` does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_fetch", "after_outbox_insert", "after_post", "after_mark_sent")
_hits: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    value = os.environ.get("CAREBOT_FAILPOINT", "").strip()
    if not value:
        return None
    name, _, nth = value.partition("@")
    if name not in POINTS:
        raise ValueError(f"CAREBOT_FAILPOINT: unknown point {name!r}; known: {', '.join(POINTS)}")
    return name, int(nth or 1)


def failpoint(name: str) -> None:
    """Die here, as `kill -9` would, when CAREBOT_FAILPOINT names this point (and its hit count is reached)."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)

"""Fault injection and request counting for the sandbox X, switchable while it runs.

A fault is set per endpoint (or "*" for all) and fires on the next `count` requests (None: until cleared).
An endpoint's own fault wins over "*". Kinds:

- 429: rate limited, with x-rate-limit-reset; 429_no_reset: without it; 429_24h: the 24-hour cap
  (x-user-limit-24hour-* headers); `reset_in_s` (a finite number of seconds, at most MAX_RESET_IN_S either way,
  so a fault can announce a reset in the past or absurdly far away) sets the announced reset;
- 429_usage_cap: the monthly usage cap (a UsageCapExceeded problem, x-rate-limit-remaining above 0);
- 402: the account's pay-per-use credits are spent (a credits-depleted problem);
- 500, 503: server errors;
- hang: wait `hang_s` seconds (default 30), then answer normally;
- reset: close the connection without any response;
- post_then_drop (create_tweet, dm_send only): store the post, then close the connection without any response.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

ENDPOINTS = (
    "users_me", "mentions", "search", "tweet_lookup", "user_tweets", "create_tweet", "dm_send", "dm_events",
)  # fmt: skip
WRITE_ENDPOINTS = ("create_tweet", "dm_send")
KINDS = ("429", "429_no_reset", "429_24h", "429_usage_cap", "402", "500", "503", "hang", "reset", "post_then_drop")
DEFAULT_HANG_S = 30.0
MAX_RESET_IN_S = 1e13  # about 300,000 years: far enough for any test of a client, short enough to print


class FaultError(ValueError):
    """A fault that cannot be set; the message says why."""


@dataclass
class Fault:
    endpoint: str
    kind: str
    count: int | None = None  # requests left to fail; None: until cleared
    hang_s: float = DEFAULT_HANG_S
    reset_in_s: float | None = None  # 429 kinds: seconds until the reset time announced in the headers

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_fault(data: Any) -> Fault:
    """A Fault from JSON ({endpoint, kind, count?, hang_s?, reset_in_s?}); FaultError when it is not valid."""
    if not isinstance(data, dict):
        raise FaultError("expected a JSON object {endpoint, kind, count?, hang_s?, reset_in_s?}")
    unknown = set(data) - {"endpoint", "kind", "count", "hang_s", "reset_in_s"}
    if unknown:
        raise FaultError(f"unknown fields: {', '.join(sorted(unknown))}")
    endpoint, kind = data.get("endpoint"), str(data.get("kind"))
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise FaultError(f"endpoint must be one of {', '.join(ENDPOINTS)} or *, not {endpoint!r}")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}, not {data.get('kind')!r}")
    if kind == "post_then_drop" and endpoint not in WRITE_ENDPOINTS:
        raise FaultError("post_then_drop applies to create_tweet or dm_send only")
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultError("count must be a positive integer or null (until cleared)")
    hang_s = data.get("hang_s", DEFAULT_HANG_S)
    if isinstance(hang_s, bool) or not isinstance(hang_s, int | float) or not 0 <= hang_s <= 3600:
        raise FaultError("hang_s must be a number of seconds between 0 and 3600")
    reset_in_s = data.get("reset_in_s")
    if reset_in_s is not None and (
        isinstance(reset_in_s, bool)
        or not isinstance(reset_in_s, int | float)
        or not abs(reset_in_s) <= MAX_RESET_IN_S  # NaN too: it compares False with anything
    ):
        raise FaultError(f"reset_in_s must be a number of seconds between {-MAX_RESET_IN_S:g} and {MAX_RESET_IN_S:g}")
    return Fault(str(endpoint), kind, count, float(hang_s), None if reset_in_s is None else float(reset_in_s))


class Faults:
    """The faults in force and the request counters; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._requests: Counter[str] = Counter()

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.endpoint] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return [Fault(**fault.as_dict()) for fault in self._faults.values()]

    def take(self, endpoint: str) -> Fault | None:
        """Count a request to `endpoint` and return the fault it meets, if any (using up one of its count)."""
        with self._lock:
            self._requests[endpoint] += 1
            fault = self._faults.get(endpoint) or self._faults.get("*")
            if fault is None:
                return None
            if fault.kind == "post_then_drop" and endpoint not in WRITE_ENDPOINTS:
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self._faults[fault.endpoint]
            return Fault(**{**fault.as_dict(), "endpoint": endpoint})

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self._requests), "total": sum(self._requests.values())}

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()

"""What the handoff queue refuses, as exceptions whose messages an agent can read.

HandoffError
 ├── TicketNotFound   no ticket with that id
 ├── AgentNotFound    no roster agent with that id
 ├── Conflict         a lost race, a ticket in the wrong state or held by somebody else, a full capacity
 └── InvalidInput     a value the queue cannot store (also a ValueError)
"""

from __future__ import annotations


class HandoffError(Exception):
    """The handoff queue refused the request."""


class TicketNotFound(HandoffError):
    """There is no such ticket."""


class AgentNotFound(HandoffError):
    """There is no such agent on the roster."""


class Conflict(HandoffError):
    """The ticket or agent is not in a state that allows this; the message says why."""


class InvalidInput(HandoffError, ValueError):
    """A value the handoff queue does not accept; the message says which and why."""

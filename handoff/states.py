"""The ticket state machine as data: which action may move a ticket from which state to which.

Pure: no I/O. The service turns each allowed move into a conditional UPDATE.

    queued ──claim──> claimed ──answer──> answered ──resolve──> resolved
      ▲                 │ release ▲                │               │
      └─────────────────┘         └──── reopen ────┘               │ reopen (the customer wrote again)
                            (the customer wrote again: the holder owes a reply)
    claimed ──resolve──> resolved (nothing to say: praise, spam, sorted elsewhere)
    queued|reopened|claimed|answered ──return_to_bot──> returned_to_bot ──reopen──> reopened (like queued)
    claimed|answered ──requeue──> queued (the holder's account was disabled)
    queued|reopened|claimed|answered ──resolve_incident──> resolved (its incident was resolved, with a closing reply)
"""

from __future__ import annotations

from typing import Final

STATES: Final = ("queued", "claimed", "answered", "resolved", "returned_to_bot", "reopened")
# While a ticket of a conversation is in one of these, a human owns the thread and the bot stays silent.
OPEN_STATES: Final = ("queued", "claimed", "answered", "reopened")
# Waiting in the queue for somebody to take it.
CLAIMABLE_STATES: Final = ("queued", "reopened")
# Held by an agent: these count against the agent's capacity.
HELD_STATES: Final = ("claimed", "answered")
CLOSED_STATES: Final = ("resolved", "returned_to_bot")

# (action, from state) → to state. Anything missing is illegal.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    ("claim", "queued"): "claimed",
    ("claim", "reopened"): "claimed",
    ("release", "claimed"): "queued",
    ("answer", "claimed"): "answered",
    ("answer", "answered"): "answered",  # a further reply
    ("resolve", "answered"): "resolved",
    ("resolve", "claimed"): "resolved",  # closed without a reply
    ("return_to_bot", "queued"): "returned_to_bot",
    ("return_to_bot", "reopened"): "returned_to_bot",
    ("return_to_bot", "claimed"): "returned_to_bot",
    ("return_to_bot", "answered"): "returned_to_bot",
    ("reopen", "resolved"): "reopened",
    ("reopen", "returned_to_bot"): "reopened",
    ("reopen", "answered"): "claimed",  # the customer wrote again after the holder's reply
    ("reassign", "queued"): "claimed",
    ("reassign", "reopened"): "claimed",
    ("reassign", "claimed"): "claimed",
    ("reassign", "answered"): "answered",
    ("requeue", "claimed"): "queued",
    ("requeue", "answered"): "queued",
    # A lead resolves an incident (handoff/incidents.py): each open ticket linked to it is resolved, whoever holds
    # it and whether or not anybody took it, with the incident's closing reply under its thread.
    ("resolve_incident", "queued"): "resolved",
    ("resolve_incident", "reopened"): "resolved",
    ("resolve_incident", "claimed"): "resolved",
    ("resolve_incident", "answered"): "resolved",
}
ACTIONS: Final = tuple(dict.fromkeys(action for action, _ in TRANSITIONS))

# How an agent reads a state, and an action, in an error message.
STATE_WORDS: Final = {
    "queued": "waiting in the queue",
    "claimed": "taken and not yet answered",
    "answered": "answered",
    "resolved": "resolved",
    "returned_to_bot": "returned to the bot",
    "reopened": "reopened and waiting in the queue",
}
ACTION_WORDS: Final = {
    "claim": "taken",
    "release": "released",
    "answer": "answered",
    "resolve": "resolved",
    "return_to_bot": "returned to the bot",
    "reopen": "reopened",
    "reassign": "reassigned",
    "requeue": "put back in the queue",
    "resolve_incident": "resolved with its incident",
}


def next_state(action: str, state: str) -> str | None:
    """The state `action` moves a ticket in `state` to, or None when the move is not allowed."""
    return TRANSITIONS.get((action, state))


def allowed_from(action: str) -> tuple[str, ...]:
    """The states from which `action` is allowed."""
    return tuple(state for (name, state) in TRANSITIONS if name == action)


def refusal(action: str, state: str, ticket_id: int) -> str:
    """Why `action` is not allowed now, in words an agent reads."""
    return f"Ticket {ticket_id} cannot be {ACTION_WORDS[action]}: it is {STATE_WORDS[state]}."

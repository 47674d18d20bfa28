"""The handoff queue: tickets for the conversations a human must answer, their state machine, the roster of agents
with capacities and skills, and the audit log. It never imports bot/ or knowledge_base/.

    from handoff import Handoff, Escalation, transaction
"""

from handoff.errors import AgentNotFound, Conflict, HandoffError, InvalidInput, TicketNotFound
from handoff.service import (
    Agent,
    AuditEvent,
    Escalation,
    Handoff,
    Message,
    QueueRow,
    RosterRow,
    ShiftPicture,
    Ticket,
    TicketDetail,
    transaction,
)

__all__ = [
    "Agent", "AgentNotFound", "AuditEvent", "Conflict", "Escalation", "Handoff", "HandoffError", "InvalidInput",
    "Message", "QueueRow", "RosterRow", "ShiftPicture", "Ticket", "TicketDetail", "TicketNotFound", "transaction",
]  # fmt: skip

"""The handoff queue: tickets, their state machine, agents and the audit log.

Not built yet (see the README's status table). It will never import bot/ or knowledge_base/.
"""

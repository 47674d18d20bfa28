"""carebot's application: it composes the knowledge base and the handoff queue with the NLU service,
the decision, the tone rules and the X channel, and offers them as the `carebot` command."""

"""The FAQ knowledge base: entries with versions, embeddings and the search index.

Not built yet (see the README's status table). It will never import bot/ or handoff/.
"""

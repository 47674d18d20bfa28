"""The FAQ knowledge base: entries with versions, embeddings and the search index. Never imports bot/ or handoff/.

service.KnowledgeBaseService (editing, publishing, history, import) · search.FaqSearcher (search(text, k))
· io (YAML/CSV files) · tweet_length.weighted_length · testing.FakeEmbedder (for tests) · errors.KbError.
"""

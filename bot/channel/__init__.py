"""The X channel: the X API adapter (the one module that imports tweepy), intake of mentions, replies, DMs and
keyword searches, the outbox and the sender that never posts two replies to one tweet, and the worker."""

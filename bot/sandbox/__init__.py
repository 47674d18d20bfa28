"""The sandbox X: a local server speaking the subset of X API v2 that carebot uses, with a page where a person
tweets as a customer, a replay driver for recorded traffic, and fault injection for tests."""

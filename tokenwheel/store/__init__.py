"""Persistence: the event table, the session index and the event store over them."""

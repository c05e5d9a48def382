"""Plain-Python heart of Token Wheel: events, the session aggregate, domain errors."""

"""The model side: catalog, loading, distributions, sampling and caches.

Never imports Flask or SQLAlchemy; returns plain dataclasses (see ``types``).
"""

"""The OpenAPI document written when it is first read, not when the app is made.

flask-smorest documents each blueprint's views as the blueprint is registered: about half
of the time it takes to make an app (measured: 20 of 47 ms), spent again by every app
`make test-fast` makes (about 400) though few of them ever serve the document. Here the
blueprints' routes are registered at once, as before, and their documentation the first
time anything reads ``api.spec`` (the document's routes, ``flask openapi``), in the order
the blueprints (and ``document_later``'s edits, e.g. a security scheme) were registered,
so the document is the same. A lock makes two first requests for the document write it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask_smorest import Api


class DocumentedOnFirstRead(Api):
    """An ``Api`` whose views are documented when ``spec`` is first read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending: list[Callable[[Any], None]] = []
        self._writing = threading.RLock()
        self._documenting = False
        self._spec: Any = None
        super().__init__(*args, **kwargs)

    @property
    def spec(self) -> Any:
        with self._writing:
            if not self._documenting:  # a read while documenting gets the spec as it is
                self._documenting = True
                try:
                    while self._pending:
                        self._pending.pop(0)(self._spec)
                finally:
                    self._documenting = False
            return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def document_later(self, edit: Callable[[Any], None]) -> None:
        """Apply ``edit`` to the apispec ``APISpec`` when the document is first read, after
        the edits queued before it."""
        with self._writing:
            self._pending.append(edit)

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        """flask-smorest's ``register_blueprint``, the documentation left for later."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)

        def document(spec: Any) -> None:
            blp.register_views_in_doc(self, self._app, spec, name=name, parameters=parameters)
            spec.tag({"name": name, "description": blp.description})

        self.document_later(document)

"""flask-smorest pieces shared by our blueprints: a parser that answers 400, and the
answers any route can give without its view saying so, documented on each of them: 429
(rate limits), 413 and 415 (a body too large or not JSON, on routes that take one) and,
on routes that need the model, 503 (the model queue is full, or the model cannot load)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from copy import deepcopy
from typing import Any

import flask
import flask_smorest
import marshmallow
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from .json_reader import JsonBodyError, read_json
from .requests import BODY_METHODS
from .schemas import ApiErrorSchema

TOO_MANY_REQUESTS = (
    "Too many requests from this address (TOKENWHEEL_RATE_LIMIT); Retry-After says when "
    "to try again."
)


BODY_TOO_LARGE = "The request body is larger than TOKENWHEEL_MAX_BODY_BYTES (64 KiB by default)."
BODY_NOT_JSON = "The request has a body that is not JSON (Content-Type: application/json)."
MODEL_BUSY = (
    "The model is busy (its queue is full; Retry-After says when to try again) or cannot "
    "load here now; the message says which."
)


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: flask.Request) -> Any:
        """webargs' own hook for reading a body (it would call ``json.loads`` itself):
        our reader instead, so every schema gets the same limits as ``get_json``."""
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing  # no body: the schema decides whether one was needed
        try:
            return read_json(data)
        except JsonBodyError as exc:
            abort(400, exc=exc, messages={"json": [exc.message]})


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()

    def __init__(
        self, *args: Any, rate_limited: bool = True, model_backed: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limited = rate_limited
        self.model_backed = model_backed

    def route(
        self,
        rule: str,
        *,
        parameters: Any = None,
        needs_model: bool = True,
        links: dict[int, dict[str, Any]] | None = None,
        **options: Any,
    ) -> Callable[..., Any]:
        """``needs_model=False`` marks a route of a model-backed blueprint that never
        asks the model (no 503 is documented for it). Every operation's id is
        ``<blueprint>_<view function>``; ``links`` are OpenAPI links by status code
        (api/links.py)."""
        register = super().route(rule, parameters=parameters, **options)
        takes_body = bool(BODY_METHODS & set(options.get("methods", ())))

        def decorator(func: Callable[..., Any]) -> Any:
            func = self.doc(operationId=f"{self.name}_{func.__name__}")(func)
            if links:
                responses = {status: {"links": value} for status, value in links.items()}
                func = self.doc(responses=responses)(func)
            responses = getattr(func, "_apidoc", {}).get("response", {}).get("responses", {})
            implied = {
                429: self.rate_limited and TOO_MANY_REQUESTS,
                413: takes_body and BODY_TOO_LARGE,
                415: takes_body and BODY_NOT_JSON,
                503: self.model_backed and needs_model and MODEL_BUSY,
            }
            for status, description in implied.items():
                if description and status not in responses:
                    func = self.alt_response(
                        status, schema=ApiErrorSchema, description=description
                    )(func)
            return register(func)

        return decorator

    def register_views_in_doc(
        self, api: Any, app: flask.Flask, spec: Any, *, name: str, parameters: Any
    ) -> None:
        """flask-smorest deep-copies every view's documentation each time the blueprint is
        registered on an app, and apispec deep-copies each path's operations again,
        marshmallow schema instances included, though the spec only reads them: those
        copies were most of the cost of creating an app (about 400 apps in
        `make test-fast`). The schemas are shared instead; everything else is copied."""
        docs: dict[str, Any] = self._docs  # type: ignore[has-type]
        self._docs: dict[str, Any] = _SharingSchemas(docs)
        try:
            super().register_views_in_doc(
                api, app, _SharingSpec(spec), name=name, parameters=parameters
            )
        finally:
            self._docs = docs


class _SharingSpec:
    """The two things flask-smorest's ``register_views_in_doc`` uses of an apispec
    ``APISpec``, with each path's operations handed over as :class:`_SharingSchemas`."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.openapi_version = spec.openapi_version

    def path(self, *, operations: dict[str, Any], **kwargs: Any) -> Any:
        return self.spec.path(operations=_SharingSchemas(operations), **kwargs)


class _SharingSchemas(dict[str, Any]):
    """A view-documentation dict whose deep copy keeps the schema instances it holds."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        memo.update((id(schema), schema) for schema in _schemas(self))
        return {key: deepcopy(value, memo) for key, value in self.items()}


def _schemas(value: Any) -> Iterator[marshmallow.Schema]:
    if isinstance(value, marshmallow.Schema):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _schemas(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _schemas(item)

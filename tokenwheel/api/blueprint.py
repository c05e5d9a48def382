"""flask-smorest pieces shared by our blueprints: a parser that answers 400, and the 429
that any rate-limited route can answer, documented on each of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask_smorest
from webargs.flaskparser import FlaskParser

from .schemas import ApiErrorSchema

TOO_MANY_REQUESTS = (
    "Too many requests from this address (TOKENWHEEL_RATE_LIMIT); Retry-After says when "
    "to try again."
)


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args: Any, rate_limited: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limited = rate_limited

    def route(self, rule: str, *, parameters: Any = None, **options: Any) -> Callable[..., Any]:
        register = super().route(rule, parameters=parameters, **options)

        def decorator(func: Callable[..., Any]) -> Any:
            responses = getattr(func, "_apidoc", {}).get("response", {}).get("responses", {})
            if self.rate_limited and 429 not in responses:
                func = self.alt_response(429, schema=ApiErrorSchema, description=TOO_MANY_REQUESTS)(
                    func
                )
            return register(func)

        return decorator

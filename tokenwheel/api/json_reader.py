"""The one reader of JSON request bodies, for webargs (the schemas) and Flask
(``request.get_json``) alike.

Python's ``json.loads`` accepts more than the API can take, and fails on some of it in
ways that are not ``JSONDecodeError`` (so they were 500s): nesting a few thousand levels
deep raises RecursionError, an integer of more than 4,300 digits raises ValueError (and
long ones cost quadratic time to convert), ``NaN`` and ``Infinity`` are read as floats,
and ``"\\ud800"`` becomes a string with a lone surrogate, which no UTF-8 encoder (the
tokenizer's, the database driver's) accepts. This reader refuses all of them, before any
field is looked at, with :class:`JsonBodyError` (a ``ValueError``, so Flask's
``get_json`` treats it as any malformed body), and the API answers 400.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask.json.provider import DefaultJSONProvider

from tokenwheel.domain.rules import MAX_JSON_DEPTH, MAX_JSON_INTEGER_DIGITS

# JSON strings (with their escapes) and the brackets outside them. The string pattern is
# the unrolled form, linear in the length of the text.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# Only a \u escape in the surrogate range can produce a lone surrogate: the UTF-8
# decoder refuses encoded surrogates, so a body without one needs no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonBodyError(ValueError):
    """A body that is not JSON the API can read; the message says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _too_deep(text: str) -> bool:
    """Nesting deeper than MAX_JSON_DEPTH, counted outside strings, without parsing (the
    parser itself is what must not see such a body)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise JsonBodyError(
            f"The body holds an integer of {len(text.lstrip('-'))} digits; no number the API "
            f"takes has more than {MAX_JSON_INTEGER_DIGITS}."
        )
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonBodyError(f"The body holds the number {text[:40]}, too large for a number.")
    return value


def _constant(name: str) -> Any:
    raise JsonBodyError(f"The body holds {name}, which is not a JSON number.")


def _check_text(value: Any) -> None:
    """Every string, keys included, must be encodable as UTF-8 (no lone surrogates)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonBodyError(
                    "The body holds text that is not valid Unicode (a lone surrogate such as "
                    "\\ud800: write a character outside the BMP as a surrogate pair)."
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_json(data: bytes | str) -> Any:
    """The value of a JSON body, or :class:`JsonBodyError`."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonBodyError("The body is not UTF-8 text.") from None
    else:
        text = data
    if _too_deep(text):
        raise JsonBodyError(f"The body is nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_number, parse_constant=_constant)
    except JsonBodyError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonBodyError(f"Invalid JSON body: {exc.msg} (character {exc.pos}).") from None
    except (RecursionError, ValueError):  # a backstop: the checks above come first
        raise JsonBodyError("Invalid JSON body.") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_text(value)
    return value


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON with our reader. Keys stay sorted (Flask's default): every answer, a
    repeated one for an Idempotency-Key included, comes out byte for byte the same for
    the same result."""

    sort_keys = True

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return read_json(s)

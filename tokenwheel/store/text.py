"""Text that every database can hold, given back exactly as it was given.

PostgreSQL refuses U+0000 (NUL) in a text column and in JSONB ("unsupported Unicode
escape sequence"), yet NUL is real text here: SmolLM2's token 190 and Gemma's ``<0x00>``
are the byte 0, a spin can land on them, and a prompt may contain one. So the store
encodes, on both databases alike (exports, answers and the analyst views are then the
same everywhere), every string that contains U+0000 or starts with :data:`MARKER`
(U+FDD0, a Unicode noncharacter, which text never needs) as the marker followed by the
string's ASCII-escaped JSON text, and decodes it when reading::

    "a\\x00b"  <->  "\\ufdd0" + '"a\\\\u0000b"'

Every other string is stored as it is. docs/events.md tells analysts how to read such a
value in the views.
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "\ufdd0"


def encode_text(text: str) -> str:
    if "\x00" in text or text.startswith(MARKER):
        return MARKER + json.dumps(text, ensure_ascii=True)
    return text


def decode_text(text: str) -> str:
    if not text.startswith(MARKER):
        return text
    try:
        decoded = json.loads(text[len(MARKER) :])
    except ValueError:
        return text  # not ours (written before the encoding existed): as stored
    return decoded if isinstance(decoded, str) else text


def encode_value(value: Any) -> Any:
    """A JSON value with every string in it (keys too) encoded."""
    if isinstance(value, str):
        return encode_text(value)
    if isinstance(value, dict):
        return {encode_value(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, str):
        return decode_text(value)
    if isinstance(value, dict):
        return {decode_value(k): decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value

"""How a token is shown: its exact text, its bytes, visible whitespace, special names.

A byte-level BPE token (GPT-2, SmolLM2) can be part of a UTF-8 character: its decoded
text is then U+FFFD, which hides what it is. We recover the token's bytes from the
vocabulary, flag it ``partial_utf8`` and show the bytes in ``display_text``. A control
character (the byte tokens 0x00-0x1F and 0x7F) is shown as its bytes too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
# Glyphs every common font has (DejaVu included): ␠ and ␍ draw as empty boxes on Linux.
VISIBLE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "⇤"}


@dataclass(frozen=True)
class TokenInfo:
    text: str
    display_text: str
    partial_utf8: bool
    special: bool
    end_of_sequence: bool


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's reversible map from bytes to printable characters, inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _shown(ch: str) -> str:
    """A character as shown: whitespace by its glyph, any other control character (NUL,
    ESC, DEL, C1 controls: invisible, or worse, on a page) as its UTF-8 bytes, as a
    partial character is shown."""
    glyph = VISIBLE.get(ch)
    if glyph is not None:
        return glyph
    if unicodedata.category(ch) == "Cc":
        return "⟨" + " ".join(f"{b:02X}" for b in ch.encode("utf-8")) + "⟩"
    return ch


def visible(text: str) -> str:
    return "".join(_shown(ch) for ch in text)


class TokenDescriber:
    """Builds :class:`TokenInfo` for one tokenizer (cached per id)."""

    def __init__(self, tokenizer: Any, eos_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"
        self.special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
            if getattr(added, "special", False):
                self.special_ids.add(int(token_id))
        self.eos_ids = eos_ids
        self._cache: dict[int, TokenInfo] = {}

    def token_bytes(self, token_id: int) -> bytes | None:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return None
        match = _BYTE_TOKEN.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        if self.byte_level:
            table = _byte_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
            return None
        return piece.replace("▁", " ").encode("utf-8")

    def describe(self, token_id: int, text: str) -> TokenInfo:
        info = self._cache.get(token_id)
        if info is not None:
            return info
        special = token_id in self.special_ids
        partial = False
        if special:
            display = text or str(self.tokenizer.convert_ids_to_tokens(token_id))
        else:
            raw = self.token_bytes(token_id)
            if raw is not None:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    partial = True
            if partial and raw is not None:
                display = "⟨" + " ".join(f"{b:02X}" for b in raw) + "⟩"
            else:
                display = visible(text)
        info = TokenInfo(
            text=text,
            display_text=display,
            partial_utf8=partial,
            special=special,
            end_of_sequence=token_id in self.eos_ids,
        )
        self._cache[token_id] = info
        return info

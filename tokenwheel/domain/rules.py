"""Every range, default and limit a request is held to, in one place.

The API's schemas, the services and the messages people read all import these names, so
a limit changes here and nowhere else. Each ``check_*`` function raises
:class:`~tokenwheel.domain.errors.InvalidCommand` with a message built from the same
constants the schemas document.
"""

from __future__ import annotations

import math
import re
import unicodedata

from .errors import InvalidCommand

# ---------------------------------------------------------------- the wheel

DEFAULT_THRESHOLD = 0.01
MIN_THRESHOLD, MAX_THRESHOLD = 0.0, 1.0
DEFAULT_TEMPERATURE = 1.0
# Any temperature above zero works (the distribution subtracts the largest logit before
# dividing); above 10 every wheel is flat and nothing more is learned.
MAX_TEMPERATURE = 10.0
DEFAULT_OTHER_TOP_K = 10
MAX_OTHER_TOP_K = 100
MAX_SEED = 2**63 - 1

# Sampling rules, applied after temperature as transformers' warpers apply them (TopK,
# TopP, MinP). Each default is "off". top_k above the vocabulary keeps everything; the
# bound only keeps the number to the documented digits.
DEFAULT_TOP_K = 0
MAX_TOP_K = 1_000_000
DEFAULT_TOP_P = 1.0  # 0 < top_p <= 1
DEFAULT_MIN_P = 0.0  # 0 <= min_p < 1
MAX_VERSION = 999_999_999  # an expected version, an If-Match tag (nine digits)

# The lab's greedy-vs-sampled comparison: continuation tokens per path. Each step is one
# forward pass per path (about 40 ms for SmolLM2 on 2 cores), so 50 steps stay near a
# few seconds.
MIN_COMPARE_STEPS, MAX_COMPARE_STEPS = 1, 50
# Scoring a text: the most likely tokens listed at each position beside the text's own.
SCORE_ALTERNATIVES = 5

# ---------------------------------------------------------------- request bodies

# What a JSON body may hold before any field is looked at. Our bodies are flat objects;
# 64 levels leave room for any client's wrapping while the reader stays far from
# Python's recursion limit (about 1,000 levels: deeper bodies raised RecursionError).
MAX_JSON_DEPTH = 64
# The longest documented number is MAX_SEED (19 digits); one more digit still reaches
# the field's range check, anything longer is refused by the reader (Python refuses to
# convert integers of more than 4,300 digits, and converting long ones costs quadratic
# time).
MAX_JSON_INTEGER_DIGITS = 20
# A body must arrive within this many seconds once its request line and headers have:
# a client that announces a body and then stalls holds a server thread while it waits.
BODY_READ_TIMEOUT = 10.0

# ---------------------------------------------------------------- sessions and classes

# A class code is typed by students and put in URLs and file names: keep it short and plain.
# Compared exactly ("7B" and "7b" are two classes).
CLASS_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
CLASS_CODE_RULE = "1 to 32 letters, digits, '-' or '_'"
_CLASS_CODE = re.compile(CLASS_CODE_PATTERN)

# A class a teacher opens gets a code from this alphabet: no 0/O and no 1/I/L (a written
# "l" is a "1"), so it reads aloud and copies from a board without mistakes. 31 symbols,
# 6 long: about 9 * 10^8 codes.
# Students may type it in lower case, with spaces or dashes: :func:`normalize_class_code`.
CLASS_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CLASS_CODE_LENGTH = 6
MAX_CLASS_NAME_CHARS = 80
CLASS_OPEN, CLASS_CLOSED = "open", "closed"
CLASS_STATUSES = (CLASS_OPEN, CLASS_CLOSED)
# A nickname is shown to the teacher only: short, trimmed, unique in its class ignoring case.
MAX_NICKNAME_CHARS = 24
# A guess is one word, perhaps several tokens: bounded in characters and in tokens (each
# token costs one scoring step of the model).
MAX_GUESS_CHARS = 40
MAX_GUESS_TOKENS = 8
ROUND_OPEN, ROUND_REVEALED = "open", "revealed"

APPEND_CATEGORY = "other"  # the one category a client may name: sample from the Other wedge
MAX_TOKEN_TEXT_CHARS = 1000

ACTIVE, EXPIRED, DELETED = "active", "expired", "deleted"
STATUSES = (ACTIVE, EXPIRED, DELETED)

# ---------------------------------------------------------------- teachers' lists and files

MAX_PAGE = 1_000_000  # 200 million sessions at the largest page size
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# A session list shows each session's prompt and current text cut to this many characters
# (the prompt's start, the text's end): enough to recognize it, bounded per row.
LIST_TEXT_CHARS = 200
EXPORT_FORMATS = ("csv", "json")

# ---------------------------------------------------------------- live class streams

# A live stream sends at most this many events per read of the table (a stream resumed
# far back catches up in batches), and its first snapshot shows at most this many of
# the class's active sessions (the most recently created).
LIVE_BATCH = 200
LIVE_MAX_STUDENTS = 100
# How often readers look at the table: SQLite has nothing to listen to, so it is polled;
# PostgreSQL readers are woken by NOTIFY and look anyway this often (a missed
# notification costs at most this delay).
LIVE_POLL_SECONDS = 0.2
LIVE_FALLBACK_SECONDS = 1.0
LIVE_HEARTBEAT_SECONDS = 15.0  # a comment line, so proxies and clients see a live stream
LIVE_RETRY_MS = 2000  # the SSE "retry:" hint: how soon a client reconnects
MAX_EVENT_ID = 2**63 - 1  # a Last-Event-ID (events.id is a 64-bit integer)
DEFAULT_EXPORT_FORMAT = "json"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_wheel_settings(
    threshold: float, temperature: float, other_top_k: int = DEFAULT_OTHER_TOP_K
) -> None:
    """The settings of a wheel (the API validates first; other callers may not)."""
    if not (_number(threshold) and MIN_THRESHOLD <= threshold <= MAX_THRESHOLD):
        raise InvalidCommand(
            f"threshold must be a number from {MIN_THRESHOLD:g} to {MAX_THRESHOLD:g}."
        )
    if not (_number(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise InvalidCommand(
            f"temperature must be a number above 0 and at most {MAX_TEMPERATURE:g}."
        )
    if not (
        isinstance(other_top_k, int)
        and not isinstance(other_top_k, bool)
        and 0 <= other_top_k <= MAX_OTHER_TOP_K
    ):
        raise InvalidCommand(f"other_top_k must be a whole number from 0 to {MAX_OTHER_TOP_K}.")


def check_sampling_rules(
    top_k: int = DEFAULT_TOP_K, top_p: float = DEFAULT_TOP_P, min_p: float = DEFAULT_MIN_P
) -> None:
    """top-k, top-p and min-p (the API validates first; other callers may not)."""
    if not (isinstance(top_k, int) and not isinstance(top_k, bool) and 0 <= top_k <= MAX_TOP_K):
        raise InvalidCommand(f"top_k must be a whole number from 0 (off) to {MAX_TOP_K}.")
    if not (_number(top_p) and 0 < top_p <= 1):
        raise InvalidCommand("top_p must be a number above 0 and at most 1 (1 = off).")
    if not (_number(min_p) and 0 <= min_p < 1):
        raise InvalidCommand("min_p must be a number from 0 (off) up to, not including, 1.")


def check_compare_steps(steps: object) -> None:
    if not (
        isinstance(steps, int)
        and not isinstance(steps, bool)
        and MIN_COMPARE_STEPS <= steps <= MAX_COMPARE_STEPS
    ):
        raise InvalidCommand(
            f"steps must be a whole number from {MIN_COMPARE_STEPS} to {MAX_COMPARE_STEPS}."
        )


def check_seed(seed: object) -> None:
    if seed is not None and not (
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    ):
        raise InvalidCommand(f"seed must be a whole number from 0 to {MAX_SEED}.")


def check_class_code(class_code: str | None) -> None:
    """None (no class) or a code of :data:`CLASS_CODE_RULE`; anything else is refused."""
    if class_code is None:
        return
    if not isinstance(class_code, str) or not _CLASS_CODE.fullmatch(class_code):
        raise InvalidCommand(f"class_code must be {CLASS_CODE_RULE}.")


def normalize_class_code(raw: str) -> str | None:
    """The opened-class code a student typed (any case, spaces and dashes ignored), or
    None when it cannot be one (then it may still be an old free-text code)."""
    code = "".join(ch for ch in raw if ch not in " -").upper()
    if len(code) == CLASS_CODE_LENGTH and all(ch in CLASS_CODE_ALPHABET for ch in code):
        return code
    return None


def _one_line(value: object, what: str, limit: int) -> str:
    """A short name: trimmed, inner runs of whitespace made one space, no control or
    invisible characters, 1 to ``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidCommand(f"{what} must be a string.")
    text = " ".join(value.split())
    if not text or is_blank(text):
        raise InvalidCommand(f"{what} is blank: it needs a visible character.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in text):
        raise InvalidCommand(f"{what} may not hold control or invisible characters.")
    if len(text) > limit:
        raise InvalidCommand(f"{what} is {len(text)} characters long; the limit is {limit}.")
    return text


def check_class_name(name: object) -> str:
    return _one_line(name, "name", MAX_CLASS_NAME_CHARS)


def check_nickname(nickname: object) -> tuple[str, str]:
    """The nickname as kept (trimmed, one space between words) and the key that makes
    it unique in its class: NFKC, case-folded ("Ana", "ANA" and "ａｎａ" are one)."""
    text = _one_line(nickname, "nickname", MAX_NICKNAME_CHARS)
    return text, unicodedata.normalize("NFKC", text).casefold()


def check_guess(text: object) -> str:
    """A guess as typed, trimmed (a guess is a word: no line breaks)."""
    return _one_line(text, "text", MAX_GUESS_CHARS)


# Characters that show nothing by themselves: spaces (Zs), control characters (Cc) and
# format characters (Cf: zero-width space and joiners, the byte order mark, the word
# joiner, direction marks, the soft hyphen). A prompt of only these looks empty.
INVISIBLE_CATEGORIES = frozenset({"Zs", "Cc", "Cf"})


def is_blank(text: str) -> bool:
    return all(ch.isspace() or unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in text)


def check_prompt(prompt: object, max_chars: int | None = None, what: str = "Prompt") -> str:
    """A prompt is a string with something visible in it, at most ``max_chars``
    characters; returned as it is (kept verbatim). ``what`` names it in the messages (a
    scored text is held to the same rules)."""
    if not isinstance(prompt, str):
        raise InvalidCommand(f"{what} must be a string.")
    if max_chars is not None and len(prompt) > max_chars:
        raise InvalidCommand(f"{what} is {len(prompt)} characters long; the limit is {max_chars}.")
    if is_blank(prompt):
        raise InvalidCommand(
            f"{what} is blank: it needs a visible character (spaces, line breaks and "
            "invisible characters such as zero-width spaces do not count)."
        )
    return prompt


APPEND_FORMS = (
    "Send exactly one of: token_id (optionally with token_text), token_text, "
    f"or category '{APPEND_CATEGORY}'."
)


def check_append_form(token_id: int | None, token_text: str | None, category: str | None) -> None:
    """Exactly one way to name the token: ``token_id`` (optionally with an agreeing
    ``token_text``), ``token_text`` alone, or ``category="other"`` alone."""
    if category is not None and category != APPEND_CATEGORY:
        raise InvalidCommand(f"category must be '{APPEND_CATEGORY}' when given.")
    if category is not None and (token_id is not None or token_text is not None):
        raise InvalidCommand(APPEND_FORMS)
    if token_id is None and token_text is None and category is None:
        raise InvalidCommand(APPEND_FORMS)


def check_page(page: int, page_size: int) -> None:
    if not 1 <= page <= MAX_PAGE or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidCommand(
            f"page must be from 1 to {MAX_PAGE} and page_size from 1 to {MAX_PAGE_SIZE}."
        )


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidCommand(f"status must be one of {', '.join(STATUSES)}.")


def check_export_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise InvalidCommand(f"format must be one of {', '.join(EXPORT_FORMATS)}.")

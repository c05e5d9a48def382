"""The hostile suite's cases: what an attacker sends, and what the server must answer.

Each case is one request on a fresh connection. ``{s}`` in a path is the victim
session's student URL (``/api/sessions/<id>``), ``{t}`` its teacher URL. Unless a case
says otherwise it must change nothing (``stores`` events), and any 4xx/5xx must be a
JSON body with ``error`` and ``message`` and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
DEPTH = 64  # rules.MAX_JSON_DEPTH
LIMIT = 65536  # TOKENWHEEL_MAX_BODY_BYTES's default


@dataclass(frozen=True)
class Case:
    id: str
    method: str = "POST"
    path: str = "{s}/set-prompt"
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = JSON
    status: int | tuple[int, ...] = 400
    stores: int = 0
    teacher: bool = False  # send the teacher token
    raw: bytes | None = None  # the whole request, sent as it is ({s}/{t} filled in)
    half_close: bool = False  # shut our side down after sending
    pause: float = 0.0  # seconds to wait before sending ``rest``
    rest: bytes = b""
    content_length: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int, leaf: str = "1", open_: str = "[", close: str = "]") -> str:
    return open_ * depth + leaf + close * depth


def objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


# ---------------------------------------------------------------- 1. nesting
for depth in (DEPTH + 1, 100, 900, 1000, 3000, 10000):
    add(
        Case(f"array-nesting-{depth}", path="{s}/append-token", body=nested(depth).encode()),
        Case(
            f"object-nesting-as-token_id-{depth}",
            path="{s}/append-token",
            body=('{"token_id": ' + objects(depth) + "}").encode(),
        ),
    )
for path in ("/api/sessions", "{s}/spin", "{s}/undo", "{s}/set-prompt"):
    add(Case(f"nesting-3000-on-{path}", path=path, body=nested(3000, "{}").encode()))
add(
    Case(
        "nesting-in-an-unknown-field",
        body=('{"prompt": "x", "extra": ' + nested(20000, '"deep"') + "}").encode(),
    ),
    Case("nesting-at-the-limit-is-read", body=nested(DEPTH - 1, "{}").encode()),
    Case(
        "nesting-brackets-inside-strings-are-text",
        body=j({"prompt": "[{" * 100}),
        status=200,
        stores=1,
    ),
)

# ---------------------------------------------------------------- 2. long integers
for digits in (21, 400, 4300, 4301, 5000, 30000):
    number = "9" * digits
    add(
        Case(
            f"seed-{digits}-digits-create",
            path="/api/sessions",
            body=f'{{"seed": {number}}}'.encode(),
        ),
        Case(f"seed-{digits}-digits-spin", path="{s}/spin", body=f'{{"seed": {number}}}'.encode()),
        Case(
            f"token_id-{digits}-digits",
            path="{s}/append-token",
            body=f'{{"token_id": {number}}}'.encode(),
        ),
        Case(
            f"expected_version-{digits}-digits",
            path="{s}/undo",
            body=f'{{"expected_version": {number}}}'.encode(),
        ),
    )
add(
    Case(
        "token_id-negative-5000-digits",
        path="{s}/append-token",
        body=b'{"token_id": -' + b"9" * 5000 + b"}",
    ),
    Case("seed-2**63", path="/api/sessions", body=j({"seed": 2**63})),
    Case("seed-negative", path="/api/sessions", body=j({"seed": -1})),
    Case("token_id-2**63", path="{s}/append-token", body=j({"token_id": 2**63})),
    Case("token_id-negative", path="{s}/append-token", body=j({"token_id": -1})),
    Case("expected_version-0", path="{s}/undo", body=j({"expected_version": 0})),
    Case("expected_version-10**9", path="{s}/undo", body=j({"expected_version": 10**9})),
    Case("threshold-as-long-integer", path="{s}/spin", body=b'{"threshold": ' + b"1" * 5000 + b"}"),
    Case("temperature-exponent-overflow", path="{s}/spin", body=b'{"temperature": 1e999}'),
    Case("temperature-exponent-underflow", path="{s}/spin", body=b'{"temperature": 1e-999}'),
    Case(
        "threshold-huge-mantissa",
        path="{s}/spin",
        body=b'{"threshold": 0.' + b"1" * 30000 + b"}",
        status=200,
        stores=1,
    ),
)
for constant in ("NaN", "Infinity", "-Infinity"):
    for name in ("threshold", "temperature"):
        add(Case(f"{name}-{constant}", path="{s}/spin", body=f'{{"{name}": {constant}}}'.encode()))

# ---------------------------------------------------------------- 3. text
SURROGATES = ['"a\\ud800b"', '"\\udc00"', '"\\ud83d"', '"\\ude00x"', '"\\udfff\\ud800"']
for s in SURROGATES:
    add(
        Case(f"prompt-{s}", body=f'{{"prompt": {s}}}'.encode()),
        Case(f"token_text-{s}", path="{s}/append-token", body=f'{{"token_text": {s}}}'.encode()),
        Case(f"class_code-{s}", path="/api/sessions", body=f'{{"class_code": {s}}}'.encode()),
    )
add(
    Case("surrogate-as-a-key", body=b'{"prompt": "x", "\\ud800": 1}'),
    Case("surrogate-in-model_name", path="/api/sessions", body=b'{"model_name": "\\ud800"}'),
    Case(
        "surrogate-pair-is-a-character",
        body=b'{"prompt": "The cat \\ud83d\\ude00"}',
        status=200,
        stores=1,
    ),
    Case("utf8-encoded-surrogate-bytes", body=b'{"prompt": "\xed\xa0\x80"}'),
    Case("latin1-bytes", body=b'{"prompt": "caf\xe9"}'),
    Case("overlong-utf8", body=b'{"prompt": "\xc0\xaf"}'),
    Case("utf16-body", body='{"prompt": "x"}'.encode("utf-16")),
    Case("bom-before-json", body=b'\xef\xbb\xbf{"prompt": "x"}'),
    Case("nul-in-prompt", body=j({"prompt": "a\x00b"}), status=200, stores=1),
    Case("nul-only-prompt-is-blank", body=j({"prompt": "\x00"})),
    Case("nul-in-class_code", path="/api/sessions", body=j({"class_code": "a\x00b"})),
    Case("nul-in-model_name", path="/api/sessions", body=j({"model_name": "a\x00b"})),
    Case("nul-in-token_text", path="{s}/append-token", body=j({"token_text": "\x00b"})),
    Case(
        "nul-token-by-text",
        path="{s}/append-token",
        body=j({"token_text": "\x00"}),
        status=200,
        stores=1,
    ),
    Case(
        "nul-token-by-id", path="{s}/append-token", body=j({"token_id": 190}), status=200, stores=1
    ),
    Case("undo-the-nul-token", path="{s}/undo", body=None, content_type=None, status=200, stores=1),
    Case("marker-character-prompt", body=j({"prompt": "\ufdd0 marked"}), status=200, stores=1),
    Case("escaped-nul-text-prompt", body=j({"prompt": "\\u0000 as text"}), status=200, stores=1),
    Case("prompt-4001-chars", body=j({"prompt": "a" * 4001})),
    Case("prompt-4000-invisible", body=j({"prompt": "\u200b" * 4000})),
    Case("prompt-600-tokens", body=j({"prompt": " a" * 600})),
    Case("prompt-controls", body=j({"prompt": "\x1b[31m\x07\x08"}), status=200, stores=1),
    Case("prompt-rtl-override-only", body=j({"prompt": "\u202e\u202d"})),
)
for name, text in {
    "zero-width-space": "\u200b",
    "zero-width-joiners": "\u200c\u200d\u200c",
    "bom": "\ufeff",
    "word-joiner": "\u2060\u2060",
    "nbsp-and-ideographic-space": "\u00a0\u3000",
    "soft-hyphen": "\u00ad",
    "mixed-invisible": " \u200b\n\ufeff\t\u2060 ",
    "line-separators": "\u2028\u2029",
}.items():
    add(Case(f"blank-prompt-{name}", body=j({"prompt": text})))

# ---------------------------------------------------------------- wrong types, shapes
for name, value in {
    "number": 5,
    "float": 1.5,
    "bool": True,
    "null": None,
    "array": ["The cat"],
    "object": {"text": "The cat"},
    "empty": "",
}.items():
    add(Case(f"prompt-as-{name}", body=j({"prompt": value})))
for name, value in {
    "string": "12",
    "float": 1.5,
    "bool": True,
    "array": [12],
    "object": {"id": 12},
    "out-of-vocabulary": 49152,
}.items():
    add(Case(f"token_id-as-{name}", path="{s}/append-token", body=j({"token_id": value})))
for field_name in ("threshold", "temperature"):
    for name, value in {
        "string": "0.5",
        "bool": False,
        "array": [0.5],
        "negative": -0.5,
        "big": 11,
    }.items():
        add(Case(f"{field_name}-as-{name}", path="{s}/spin", body=j({field_name: value})))
add(
    Case("seed-as-string", path="/api/sessions", body=j({"seed": "7"})),
    Case("seed-as-float", path="/api/sessions", body=j({"seed": 7.5})),
    Case("class_code-too-long", path="/api/sessions", body=j({"class_code": "a" * 33})),
    Case("class_code-with-space", path="/api/sessions", body=j({"class_code": "7 b"})),
    Case("class_code-sql", path="/api/sessions", body=j({"class_code": "' OR 1=1 --"})),
    Case("model_name-unknown", path="/api/sessions", body=j({"model_name": "gpt-17"})),
    Case("model_name-path", path="/api/sessions", body=j({"model_name": "../../etc/passwd"})),
    Case("model_name-long", path="/api/sessions", body=j({"model_name": "m" * 5000})),
    Case("unknown-field", path="/api/sessions", body=j({"admin": True})),
    Case("append-two-forms", path="{s}/append-token", body=j({"token_id": 5, "category": "other"})),
    Case("append-bad-category", path="{s}/append-token", body=j({"category": "OTHER"})),
    Case("append-nothing", path="{s}/append-token", body=j({})),
    Case(
        "append-token_text-not-a-token", path="{s}/append-token", body=j({"token_text": " mat mat"})
    ),
    Case("append-token_text-5000", path="{s}/append-token", body=j({"token_text": "x" * 5000})),
    Case("stale-expected_version", path="{s}/undo", body=j({"expected_version": 1}), status=409),
)
for name, body in {
    "top-level-array": b"[1, 2]",
    "top-level-string": b'"prompt"',
    "top-level-number": b"5",
    "top-level-null": b"null",
    "truncated": b'{"prompt": "x"',
    "trailing-comma": b'{"prompt": "x",}',
    "single-quotes": b"{'prompt': 'x'}",
    "comment": b'{"prompt": "x" /* hi */}',
    "trailing-garbage": b'{"prompt": "x"} {}',
    "unquoted-key": b'{prompt: "x"}',
    "only-whitespace": b"   \r\n\t ",
    "bare-word": b"true",
    "duplicate-keys": b'{"prompt": 1, "prompt": []}',
    "control-char-in-string": b'{"prompt": "a\x01b"}',
    "bad-escape": b'{"prompt": "\\x41"}',
    "short-unicode-escape": b'{"prompt": "\\u12"}',
}.items():
    add(Case(f"json-{name}", body=body))

# ---------------------------------------------------------------- content types
for content_type, status in {
    "text/plain": 415,
    "text/plain;charset=UTF-8": 415,
    "application/x-www-form-urlencoded": 415,
    "multipart/form-data; boundary=x": 415,
    "application/xml": 415,
    "text/html": 415,
    "application/json; charset=utf-16": 200,  # JSON is UTF-8 (RFC 8259), whatever it says
    "application/vnd.evil+json": 200,
}.items():
    add(
        Case(
            f"content-type-{content_type}",
            body=j({"prompt": "The dog"}),
            content_type=content_type,
            status=status,
            stores=1 if status == 200 else 0,
        )
    )
add(
    Case("no-content-type-with-body", body=j({"prompt": "x"}), content_type=None, status=415),
    Case("empty-json-body-set-prompt", body=b"", status=400),
    Case(
        "undo-with-form-body",
        path="{s}/undo",
        body=b"a=1",
        content_type="application/x-www-form-urlencoded",
        status=415,
    ),
)

# ---------------------------------------------------------------- headers
for value in ('W/"abc"', '"1", "2"', "x" * 300, "W/ 1", '""', "-1", "1e3", "\u00ff"):
    add(
        Case(
            f"if-match-{value[:12]!r}",
            path="{s}/undo",
            body=None,
            content_type=None,
            headers=(("If-Match", value),),
        )
    )
add(
    Case(
        "if-match-stale",
        path="{s}/undo",
        body=None,
        content_type=None,
        headers=(("If-Match", 'W/"1"'),),
        status=409,
    ),
    Case(
        "if-match-disagrees-with-body",
        path="{s}/undo",
        body=j({"expected_version": 2}),
        headers=(("If-Match", "3"),),
    ),
    Case(
        "if-match-on-delete-stale",
        method="DELETE",
        path="{s}",
        body=None,
        content_type=None,
        headers=(("If-Match", "1"),),
        status=409,
    ),
)
for value in ("", " ", "x" * 256, "ключ", "a b", "\x7f"):
    add(
        Case(
            f"idempotency-key-{value[:6]!r}",
            path="{s}/undo",
            body=None,
            content_type=None,
            headers=(("Idempotency-Key", value),),
        )
    )
add(
    Case(
        "teacher-no-token",
        method="GET",
        path="/api/teacher/sessions",
        body=None,
        content_type=None,
        status=401,
    ),
    Case(
        "teacher-wrong-token",
        method="GET",
        path="/api/teacher/sessions",
        body=None,
        content_type=None,
        headers=(("Authorization", "Bearer nope"),),
        status=401,
    ),
    Case(
        "teacher-basic-auth",
        method="GET",
        path="/api/teacher/sessions",
        body=None,
        content_type=None,
        headers=(("Authorization", "Basic YTpi"),),
        status=401,
    ),
    Case(
        "teacher-token-latin1",
        method="GET",
        path="/api/teacher/sessions",
        body=None,
        content_type=None,
        headers=(("Authorization", "Bearer \u00ff\u00fe"),),
        status=401,
    ),
    Case(
        "teacher-token-huge",
        method="GET",
        path="/api/teacher/sessions",
        body=None,
        content_type=None,
        headers=(("Authorization", "Bearer " + "x" * 8000),),
        status=(401, 400, 431),
    ),
    Case(
        "forged-request-id",
        method="GET",
        path="{s}",
        body=None,
        content_type=None,
        headers=(("X-Request-ID", "a b INFO forged"),),
        status=200,
    ),
    Case(
        "x-forwarded-for-spoof",
        method="GET",
        path="{s}",
        body=None,
        content_type=None,
        headers=(("X-Forwarded-For", "1.2.3.4, \u00ff"),),
        status=200,
    ),
    Case(
        "content-length-negative",
        body=b"{}",
        headers=(("Content-Length", "-1"),),
        content_length=False,
    ),
    Case(
        "content-length-not-a-number",
        body=b"{}",
        headers=(("Content-Length", "12abc"),),
        content_length=False,
    ),
    Case(
        "content-length-twice-different",
        body=b"{}",
        headers=(("Content-Length", "2"), ("Content-Length", "3")),
        content_length=False,
    ),
    Case(
        "content-length-with-chunked",
        body=b"2\r\n{}\r\n0\r\n\r\n",
        headers=(("Content-Length", "13"), ("Transfer-Encoding", "chunked")),
        content_length=False,
    ),
    Case(
        "content-length-huge-no-body",
        body=b"",
        headers=(("Content-Length", str(10**12)),),
        content_length=False,
        status=413,
    ),
    Case(
        "content-length-past-the-limit",
        body=b"{}",
        headers=(("Content-Length", str(LIMIT + 1)),),
        content_length=False,
        status=413,
    ),
)

# ---------------------------------------------------------------- query strings
WHEEL = "{s}/next-token-probs"
for query in (
    "threshold=-0.01",
    "threshold=1.01",
    "threshold=nan",
    "threshold=inf",
    "threshold=-inf",
    "threshold=1e999",
    "threshold=abc",
    "threshold=",
    "threshold=0x10",
    "temperature=0",
    "temperature=-1",
    "temperature=10.5",
    "temperature=1e-400",
    "temperature=nan",
    "other_top_k=-1",
    "other_top_k=101",
    "other_top_k=1.5",
    "other_top_k=" + "9" * 4000,
    "other_top_k=" + "9" * 30,
    "threshold=%ff",
    "threshold=0.5%00",
    "threshold=" + "1" * 4000,
):
    add(
        Case(
            f"wheel-{query[:40]}-{len(query)}",
            method="GET",
            path=f"{WHEEL}?{query}",
            body=None,
            content_type=None,
        )
    )
for query in ("other_top_k=" + "9" * 5000, "threshold=" + "1" * 5000):
    add(
        Case(
            f"wheel-past-the-request-line-limit-{query[:12]}",
            method="GET",
            path=f"{WHEEL}?{query}",
            body=None,
            content_type=None,
            status=414,
        )
    )
add(
    Case(
        "wheel-repeated-parameters",
        method="GET",
        path=f"{WHEEL}?threshold=0.1&threshold=0.2",
        body=None,
        content_type=None,
        status=200,
    ),
    Case(
        "wheel-unknown-parameter",
        method="GET",
        path=f"{WHEEL}?evil=1",
        body=None,
        content_type=None,
        status=(200, 400),
    ),
)
TEACHER_LIST = "/api/teacher/sessions"
for query in (
    "page=0",
    "page=-1",
    "page=1000001",
    "page=200000000000000000",
    "page=" + "9" * 4000,
    "page=1.5",
    "page=x",
    "page_size=0",
    "page_size=201",
    "page_size=" + "9" * 30,
    "status=gone",
    "class_code=a%00b",
    "class_code=" + "a" * 33,
    "created_after=yesterday",
    "created_after=0000-01-01",
    "created_before=99999-01-01",
    "created_after=2026-13-45",
    "created_after=2026-01-01T25:00",
    "model=" + "m" * 129,
    "model=",
):
    add(
        Case(
            f"teacher-list-{query[:40]}-{len(query)}",
            method="GET",
            path=f"{TEACHER_LIST}?{query}",
            body=None,
            content_type=None,
            teacher=True,
        )
    )
for query in ("model=a%00b", "model=%ff%fe", "page=1000000", "model=%ef%b7%90x"):
    add(
        Case(
            f"teacher-list-ok-{query[:30]}",
            method="GET",
            path=f"{TEACHER_LIST}?{query}",
            body=None,
            content_type=None,
            teacher=True,
            status=200,
        )
    )
for path in ("replay", "next-token-probs"):
    for query in (
        "version=0",
        "version=-1",
        "version=1000000000",
        "version=" + "9" * 3900,
        "version=x",
        "",
    ):
        add(
            Case(
                f"teacher-{path}-{query[:30] or 'no-version'}-{len(query)}",
                method="GET",
                path=f"{{t}}/{path}?{query}",
                body=None,
                content_type=None,
                teacher=True,
            )
        )
    add(
        Case(
            f"teacher-{path}-past-the-latest",
            method="GET",
            path=f"{{t}}/{path}?version=999999999",
            body=None,
            content_type=None,
            teacher=True,
        )
    )
for fmt in ("xml", "", "csv%00", "../etc"):
    add(
        Case(
            f"teacher-export-format-{fmt!r}",
            method="GET",
            path=f"{{t}}/export?format={fmt}",
            body=None,
            content_type=None,
            teacher=True,
        )
    )

# ---------------------------------------------------------------- paths
for sid in (
    "nope",
    "%00",
    "a%00b",
    "%ff%fe",
    "..%2F..%2Fetc",
    "00000000-0000-0000-0000-000000000000",
    "x" * 3000,
    "%ef%b7%90",
    "'%20OR%201=1%20--",
    "%0d%0aSet-Cookie:x",
):
    add(
        Case(
            f"session-id-{sid[:20]}-{len(sid)}-get",
            method="GET",
            path=f"/api/sessions/{sid}",
            body=None,
            content_type=None,
            status=404,
        ),
        Case(
            f"session-id-{sid[:20]}-{len(sid)}-append",
            path=f"/api/sessions/{sid}/append-token",
            body=j({"token_id": 5}),
            status=404,
        ),
        Case(
            f"session-id-{sid[:20]}-{len(sid)}-teacher",
            method="GET",
            path=f"/api/teacher/sessions/{sid}",
            body=None,
            content_type=None,
            teacher=True,
            status=404,
        ),
    )
for code, status in {
    "%00": 400,
    "a%00b": 400,
    "x" * 40: 400,
    "%ff": 400,
    "nobody": 404,
    "7%20b": 400,
}.items():
    add(
        Case(
            f"class-code-path-{code[:12]}",
            method="GET",
            path=f"/api/teacher/classes/{code}/statistics",
            body=None,
            content_type=None,
            teacher=True,
            status=status,
        )
    )
add(
    Case(
        "empty-session-id", path="/api/sessions//append-token", body=j({"token_id": 5}), status=404
    ),
    Case(
        "unknown-route", method="GET", path="/api/nothing", body=None, content_type=None, status=404
    ),
    Case(
        "unknown-route-deep",
        method="GET",
        path="/api/" + "a/" * 500,
        body=None,
        content_type=None,
        status=404,
    ),
    Case(
        "dot-dot-static",
        method="GET",
        path="/static/../../../etc/passwd",
        body=None,
        content_type=None,
        status=404,
    ),
    Case(
        "encoded-dot-dot-static",
        method="GET",
        path="/static/..%2f..%2fapp.py",
        body=None,
        content_type=None,
        status=404,
    ),
    Case("trailing-slash", method="GET", path="{s}/", body=None, content_type=None, status=404),
)

# ---------------------------------------------------------------- methods
for method, path in (
    ("PUT", "/api/sessions"),
    ("PATCH", "{s}"),
    ("DELETE", "/api/models"),
    ("PUT", "{s}/undo"),
    ("GET", "{s}/undo"),
    ("POST", "/api/models"),
    ("TRACE", "{s}"),
    ("FOO", "/api/health"),
    ("POST", "/api/health"),
    ("DELETE", "/api/teacher/sessions"),
):
    add(
        Case(
            f"method-{method}-{path}",
            method=method,
            path=path,
            body=None,
            content_type=None,
            status=405,
            teacher=True,
        )
    )
add(
    Case(
        "head-on-a-get-route", method="HEAD", path="{s}", body=None, content_type=None, status=200
    ),
    Case(
        "options-without-cors",
        method="OPTIONS",
        path="{s}",
        body=None,
        content_type=None,
        status=200,
    ),
)

# ---------------------------------------------------------------- sizes
PAD = LIMIT - len(b'{"prompt": "", "x": ""}')
add(
    Case("body-exactly-at-the-limit", body=j({"prompt": "", "x": "y" * PAD})),
    Case("body-one-past-the-limit", body=j({"prompt": "", "x": "y" * (PAD + 1)}), status=413),
    Case("body-twice-the-limit", body=b"[" + b"0," * LIMIT + b"0]", status=413),
    Case(
        "many-small-keys", body=("{" + ",".join(f'"k{i}": {i}' for i in range(4000)) + "}").encode()
    ),
)

# ---------------------------------------------------------------- 4. chunked bodies (raw)
SET = (
    "POST {s}/set-prompt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
OK_BODY = b'{"prompt": "The bird"}'
for name, chunks in {
    "size-zz": b"zz\r\n{}\r\n0\r\n\r\n",
    "size-negative": b"-5\r\n{}\r\n0\r\n\r\n",
    "size-huge": b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    "size-with-space": b"2 \r\n{}\r\n0\r\n\r\n",
    "chunk-longer-than-declared": b"2\r\n" + OK_BODY + b"\r\n0\r\n\r\n",
    "chunk-shorter-than-declared": b"40\r\n" + OK_BODY + b"\r\n0\r\n\r\n",
    "missing-terminator": b"16\r\n" + OK_BODY + b"0\r\n\r\n",
    "bad-extension": b"16;\x01=\r\n" + OK_BODY + b"\r\n0\r\n\r\n",
    "bare-lf": b"16\n" + OK_BODY + b"\n0\n\n",
    "bad-trailer": b"16\r\n" + OK_BODY + b"\r\n0\r\nBad Trailer: x\r\n\r\n",
    "past-the-limit": b"".join(b"1000\r\n" + b" " * 4096 + b"\r\n" for _ in range(17))
    + b"0\r\n\r\n",
}.items():
    status = 413 if name == "past-the-limit" else 400
    add(Case(f"chunked-{name}", raw=SET.encode() + chunks, status=status, half_close=True))
add(
    Case(
        "chunked-valid",
        raw=SET.encode() + b"16\r\n" + OK_BODY + b"\r\n0\r\n\r\n",
        status=200,
        stores=1,
    ),
    Case(
        "chunked-in-pieces",
        raw=SET.encode()
        + b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in OK_BODY)
        + b"0\r\n\r\n",
        status=200,
        stores=1,
    ),
    Case(
        "chunked-unterminated-then-close",
        raw=SET.encode() + b"16\r\n" + OK_BODY[:5],
        half_close=True,
    ),
)

# ---------------------------------------------------------------- 7. short and slow bodies
LIE = b'{"prompt":"lie"}'
for path in ("{s}/set-prompt", "{s}/append-token", "{s}/undo", "/api/sessions"):
    body = LIE if "prompt" in path else (b'{"token_id": 5}' if "append" in path else b"{}")
    add(
        Case(
            f"short-body-then-close-{path}",
            path=path,
            body=body,
            headers=(("Content-Length", "66"),),
            content_length=False,
            half_close=True,
        )
    )
add(
    Case(
        "short-delete-then-close",
        method="DELETE",
        path="{s}",
        body=b"{}",
        headers=(("Content-Length", "66"),),
        content_length=False,
        half_close=True,
    ),
    Case(  # the server waits BODY_READ_TIMEOUT (10 s) for the rest, then gives up
        "stalled-body-times-out",
        body=LIE[:8],
        headers=(("Content-Length", str(len(LIE))),),
        content_length=False,
    ),
    Case(
        "slow-body-arrives",
        body=LIE[:8],
        headers=(("Content-Length", str(len(LIE))),),
        content_length=False,
        pause=1.0,
        rest=LIE[8:],
        status=200,
        stores=1,
    ),
)

# ---------------------------------------------------------------- gunicorn's own refusals (raw)
for name, raw, status in (
    ("request-line-garbage", b"GARBAGE\r\n\r\n", 400),
    ("request-line-empty-method", b" / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request-line-lowercase-method", b"get /api/health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request-line-bad-version", b"GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ("request-line-no-version", b"GET /api/health\r\nHost: x\r\n\r\n", 400),
    ("request-line-nul", b"GET /api/\x00health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("request-line-tab", b"GET\t/api/health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (
        "header-name-with-space",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        400,
    ),
    ("header-no-colon", b"GET /api/health HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    ("header-value-nul", b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("header-obs-fold", b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("header-bare-lf", b"GET /api/health HTTP/1.1\nHost: x\n\n", 400),
    (
        "header-underscore-name",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1\r\n\r\n",
        200,
    ),
    ("uri-too-long", b"GET /api/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (
        "too-many-headers",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
        + b"\r\n",
        431,
    ),
    (
        "header-line-too-long",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
        431,
    ),
    (
        "transfer-encoding-gzip",
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        (400, 501),
    ),
    (
        "transfer-encoding-chunked-twice",
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
):
    add(Case(f"gunicorn-{name}", raw=raw, status=status))
add(
    Case(
        "gunicorn-transfer-encoding-gzip-chunked",
        raw=b"POST /api/sessions HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        status=(400, 501),
    )
)

# ---------------------------------------------------------------- the lab's compare and score
# Neither stores anything, whatever it answers.
for path in ("{s}/compare", "/api/score"):
    name = path.rsplit("/", 1)[-1]
    add(
        Case(f"{name}-nesting-3000", path=path, body=nested(3000, "{}").encode()),
        Case(f"{name}-array-body", path=path, body=j([1, 2])),
        Case(f"{name}-string-body", path=path, body=j("text")),
        Case(f"{name}-surrogate", path=path, body=b'{"text": "\\ud800", "steps": 1}'),
    )
for digits in (21, 4301, 30000):
    add(
        Case(
            f"compare-steps-{digits}-digits",
            path="{s}/compare",
            body=f'{{"steps": {"9" * digits}}}'.encode(),
        )
    )
add(
    Case("compare-steps-zero", path="{s}/compare", body=j({"steps": 0})),
    Case("compare-steps-51", path="{s}/compare", body=j({"steps": 51})),
    Case("compare-steps-as-string", path="{s}/compare", body=j({"steps": "3"})),
    Case("compare-steps-as-true", path="{s}/compare", body=j({"steps": True})),
    Case("compare-steps-nan", path="{s}/compare", body=b'{"steps": NaN}'),
    Case("compare-top-p-zero", path="{s}/compare", body=j({"steps": 2, "top_p": 0})),
    Case(
        "compare-temperature-huge", path="{s}/compare", body=j({"steps": 2, "temperature": 1e308})
    ),
    Case("compare-seed-2**63", path="{s}/compare", body=j({"steps": 2, "seed": 2**63})),
    Case("compare-valid", path="{s}/compare", body=j({"steps": 2, "seed": 1}), status=200),
    Case("score-text-missing", path="/api/score", body=j({})),
    Case("score-text-number", path="/api/score", body=j({"text": 7})),
    Case("score-text-object", path="/api/score", body=j({"text": {"a": 1}})),
    Case("score-text-blank", path="/api/score", body=j({"text": " \u200b\n"})),
    Case("score-text-too-long", path="/api/score", body=j({"text": "a " * 2001})),
    Case("score-text-too-many-tokens", path="/api/score", body=j({"text": " 9" * 1500})),
    Case("score-model-unknown", path="/api/score", body=j({"text": "x", "model_name": "gpt-17"})),
    Case("score-model-path", path="/api/score", body=j({"text": "x", "model_name": "../../x"})),
    Case("score-nul-is-text", path="/api/score", body=j({"text": "a\x00b"}), status=200),
    Case("score-valid", path="/api/score", body=j({"text": "The cat sat."}), status=200),
)


def by_id() -> dict[str, Case]:
    seen: dict[str, Case] = {}
    for case in CASES:
        assert case.id not in seen, f"two cases named {case.id}"
        seen[case.id] = case
    return seen

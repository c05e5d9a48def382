"""Reading a live stream (Server-Sent Events) from the Flask test client, frame by frame."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.api.teacher_client import TOKEN
from tokenwheel.bench.live import parse_frames

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class LiveStream:
    """``next()`` is the next event (``event``, ``id``, ``data`` parsed from JSON), or
    the bare ``retry`` hint; comments are skipped. The app's generator runs in the
    caller's thread: ``next()`` blocks until the server sends something."""

    def __init__(self, response: TestResponse) -> None:
        self.response = response
        self._chunks: Iterator[bytes] = iter(response.response)  # type: ignore[arg-type]
        self._buffer = ""
        self._ready: list[dict[str, Any]] = []
        self.comments = 0

    def next(self) -> dict[str, Any]:
        while not self._ready:
            chunk = next(self._chunks).decode()
            if chunk.startswith(":"):
                self.comments += 1
            frames, self._buffer = parse_frames(self._buffer + chunk)
            for fields in frames:
                parsed: dict[str, Any] = dict(fields)
                if "data" in parsed:
                    parsed["data"] = json.loads(parsed["data"])
                if "id" in parsed:
                    parsed["id"] = int(parsed["id"])
                self._ready.append(parsed)
        return self._ready.pop(0)

    def rest(self) -> list[str]:
        """Everything left until the server ends the stream, as raw text."""
        return [chunk.decode() for chunk in self._chunks]

    def close(self) -> None:
        self.response.close()


def open_live(
    client: FlaskClient, class_code: str, last_event_id: str | int | None = None
) -> LiveStream:
    headers = dict(AUTH)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    response = client.get(
        f"/api/teacher/classes/{class_code}/live", headers=headers, buffered=False
    )
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "text/event-stream"
    return LiveStream(response)

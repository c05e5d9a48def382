"""One process of the race test: 16 threads append to one session through the Flask app
(WSGI, the fake model), half of them naming the version they decided on (If-Match).

Prints "ready", waits for "go" on stdin, then prints one JSON line with every response's
status and the state each successful response showed.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
from pathlib import Path
from typing import Any

from tests.fakes import FakeModels
from tokenwheel import create_app
from tokenwheel.settings import Settings

THREADS = 16


class ConflictCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "version conflict" in record.getMessage():
            self.count += 1


def main() -> None:
    url, session_id, per_thread, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    models = FakeModels()
    models.fakes["fake"].max_context = 100_000
    settings = Settings(
        instance_path=Path(tmp),
        database_url=url,
        scheduler_enabled=False,
        rate_limit="",
        max_generated_tokens=100_000,
    )
    app = create_app(settings, models=models)  # type: ignore[arg-type]
    retries = ConflictCounter()
    logging.getLogger("tokenwheel.services.repository").addHandler(retries)
    logging.getLogger("tokenwheel.services.repository").setLevel(logging.INFO)
    seen: list[dict[str, Any]] = []
    statuses: list[int] = []
    blind: list[int] = []  # statuses of appends that named no version
    lock = threading.Lock()
    url_base = f"/api/sessions/{session_id}"

    def student(n: int) -> None:
        client = app.test_client()
        rng = random.Random(n)
        optimistic = n % 2 == 0
        version: int | None = None
        for _ in range(per_thread):
            headers = {}
            if optimistic:
                if version is None:
                    r = client.get(url_base)
                    with lock:
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            seen.append(state_of(r.json))
                    version = r.json.get("version")
                headers["If-Match"] = f'W/"{version}"'
            r = client.post(
                f"{url_base}/append-token",
                json={"token_id": rng.randrange(1, 15)},
                headers=headers,
            )
            with lock:
                statuses.append(r.status_code)
                if not optimistic:
                    blind.append(r.status_code)
                if r.status_code == 200:
                    seen.append(state_of(r.json))
            # a 409 tells the current version: decide again on it
            version = r.json.get("version")

    print("ready", flush=True)
    sys.stdin.readline()
    threads = [threading.Thread(target=student, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        json.dumps({"statuses": statuses, "blind": blind, "seen": seen, "retries": retries.count})
    )


def state_of(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": body["version"],
        "ids": [t["token_id"] for t in body["token_history"]],
        "appended": "appended_token" in body,
    }


if __name__ == "__main__":
    main()

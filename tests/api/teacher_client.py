"""A teacher's client and a lesson built through the student API, for the teacher tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.settings import Settings

TOKEN = "correct-horse-battery-staple-42"
SEED = 20261125


def teacher_app(settings: Settings, registry: ModelRegistry, **overrides: Any) -> Flask:
    return make_app(settings.with_overrides(teacher_token=TOKEN, **overrides), registry)


class Teacher:
    """Checks status codes as it goes, like :class:`Student`."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, path: str, expect: int = 200, **query: Any) -> Any:
        r = self.client.get(f"/api/teacher{path}", headers=self.headers, query_string=query)
        assert r.status_code == expect, (r.status_code, r.data[:500])
        return r

    def json(self, path: str, **query: Any) -> Any:
        return self.get(path, **query).json


@dataclass
class Lesson:
    """A session a student built step by step, with what the student saw after each
    version (GET /api/sessions/{id}, minus last_accessed)."""

    student: Student
    seen: dict[int, dict[str, Any]] = field(default_factory=dict)
    appended: list[dict[str, Any]] = field(default_factory=list)  # append responses, in order

    def record(self, version: int) -> None:
        state = self.student.state()
        del state["last_accessed"]
        self.seen[version] = state


def most_likely(student: Student) -> int:
    """The most likely next token, whether or not it clears the wheel's threshold: after a
    draw from the tail the distribution can be flat enough to have no wedge at all."""
    wheel = student.probs()
    head = wheel["above_threshold_tokens"] or wheel["other_category"]["sample_tokens"]
    return int(head[0]["token_id"])


def second_wedge(student: Student) -> int:
    wheel = student.probs(temperature=1.5, threshold=0.001)["above_threshold_tokens"]
    return int(wheel[1]["token_id"])


def build_lesson(
    client: FlaskClient, class_code: str = "7b", prompt: str = "The cat sat on the"
) -> Lesson:
    """Prompt, spin onto Other, pick the top wedge, undo, reset the prompt, pick by text,
    pick the second wedge: every kind of event a student can make."""
    # seeded, so the draw from Other (and every step after it) is the same on every run
    student = Student(client, class_code=class_code, seed=SEED)
    lesson = Lesson(student)
    lesson.record(1)
    student.prompt(prompt)
    lesson.record(2)
    steps = [
        lambda: lesson.appended.append(student.append(category="other")),
        lambda: lesson.appended.append(student.append(token_id=most_likely(student))),
        student.undo,
        lambda: student.prompt("Once upon a"),
        lambda: lesson.appended.append(student.append(token_text=" time")),
        lambda: lesson.appended.append(
            student.append(token_id=second_wedge(student), temperature=1.5, threshold=0.001)
        ),
    ]
    for version, step in enumerate(steps, start=3):
        step()
        lesson.record(version)
    return lesson

"""The lab's routes over HTTP on the fake model: fork, and many spins."""

from __future__ import annotations

import math
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.api.teacher_client import TOKEN, Teacher
from tests.api.test_errors import event_count
from tests.api.test_protection import app_with, assert_429, from_address
from tests.fakes import MAX_CONTEXT as FAKE_CONTEXT
from tests.fakes import VOCAB, FakeModels, fake_logits
from tokenwheel.settings import Settings

UNKNOWN = "/api/sessions/00000000-0000-0000-0000-000000000000"


def _story(client: FlaskClient) -> Student:
    student = Student(client, class_code="lab-7", seed=3)
    student.prompt("The cat")
    for _ in range(3):
        r = client.post(f"{student.url}/spin", json={"threshold": 0.05})
        assert r.status_code == 200, r.json
    return student


def _events(client: FlaskClient, student: Student) -> Any:
    r = client.get(student.url)
    assert r.status_code == 200
    return r.json


def test_fork_copies_the_session_now_and_as_it_was(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    parent = _events(fake_client, student)
    r = fake_client.post(f"{student.url}/fork")
    assert r.status_code == 201, r.json
    fork = r.json
    assert fork["session_id"] != student.id and fork["version"] == 1
    assert r.headers["ETag"] == 'W/"1"'
    assert fork["forked_from"] == {"session_id": student.id, "version": parent["version"]}
    assert fork["class_code"] == "lab-7" and fork["model_name"] == parent["model_name"]
    assert fork["current_text"] == parent["current_text"]
    assert fork["initial_prompt"] == parent["initial_prompt"]
    same = ("token_id", "token_text", "probability", "selection", "selected_at")
    assert [{k: t[k] for k in same} for t in fork["token_history"]] == [
        {k: t[k] for k in same} for t in parent["token_history"]
    ]
    # as it was after the first spin (version 3: created, prompt, spin)
    r = fake_client.post(f"{student.url}/fork", json={"version": 3})
    assert r.status_code == 201, r.json
    assert r.json["forked_from"]["version"] == 3
    assert [{k: t[k] for k in same} for t in r.json["token_history"]] == [
        {k: t[k] for k in same} for t in parent["token_history"][:1]
    ]
    # the fork is a session like any other: GET, append, and the parent is unchanged
    assert fake_client.get(f"/api/sessions/{fork['session_id']}").status_code == 200
    r = fake_client.post(f"/api/sessions/{fork['session_id']}/spin", json={})
    assert r.status_code == 200 and r.json["version"] == 2
    now = _events(fake_client, student)
    assert {**now, "last_accessed": None} == {**parent, "last_accessed": None}


@pytest.mark.parametrize(
    "body", [{"version": 0}, {"version": 6}, {"version": -1}, {"version": "2"}, {"version": True}]
)
def test_a_fork_at_a_bad_version_is_400_and_stores_nothing(
    fake_client: FlaskClient, body: dict[str, Any]
) -> None:
    student = _story(fake_client)
    before = fake_client.get("/api/teacher/sessions?class_code=lab-7")
    r = fake_client.post(f"{student.url}/fork", json=body)
    assert r.status_code == 400, r.json
    after = fake_client.get("/api/teacher/sessions?class_code=lab-7")
    assert before.status_code == after.status_code
    if before.status_code == 200:
        assert before.json["total"] == after.json["total"]


def test_a_branch_keeps_the_first_tokens_whichever_version_added_them(
    fake_client: FlaskClient,
) -> None:
    """token_count cuts the text at a position: after an undo (versions are not positions)
    and in a fork, whose copied tokens all share its version 1."""
    student = _story(fake_client)  # three spins: versions 3, 4, 5
    assert fake_client.post(f"{student.url}/undo").status_code == 200  # version 6
    r = fake_client.post(f"{student.url}/spin", json={"threshold": 0.05})  # version 7
    assert r.status_code == 200
    parent = _events(fake_client, student)
    ids = [t["token_id"] for t in parent["token_history"]]
    assert len(ids) == 3
    r = fake_client.post(f"{student.url}/fork", json={"token_count": 2})
    assert r.status_code == 201, r.json
    fork = r.json
    assert fork["forked_from"] == {"session_id": student.id, "version": parent["version"]}
    assert [t["token_id"] for t in fork["token_history"]] == ids[:2]
    # a branch of the fork at its first (copied) token, and one with no token at all
    url = f"/api/sessions/{fork['session_id']}/fork"
    r = fake_client.post(url, json={"token_count": 1})
    assert r.status_code == 201, r.json
    assert [t["token_id"] for t in r.json["token_history"]] == ids[:1]
    assert r.json["forked_from"] == {"session_id": fork["session_id"], "version": 1}
    r = fake_client.post(url, json={"token_count": 0, "version": 1})
    assert r.status_code == 201 and r.json["token_history"] == []
    assert r.json["initial_prompt"] == parent["initial_prompt"]


@pytest.mark.parametrize(
    "body",
    [
        {"token_count": 4},
        {"token_count": -1},
        {"token_count": "1"},
        {"token_count": 2, "version": 3},  # version 3 had one token
    ],
)
def test_a_branch_past_the_text_is_400_and_stores_nothing(
    fake_app: Any, fake_client: FlaskClient, body: dict[str, Any]
) -> None:
    student = _story(fake_client)
    before = event_count(fake_app)
    r = fake_client.post(f"{student.url}/fork", json=body)
    assert r.status_code == 400, r.json
    assert r.json["message"]
    assert event_count(fake_app) == before


def test_fork_of_an_unknown_or_deleted_session_is_404(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    assert fake_client.delete(student.url).status_code == 200
    assert fake_client.post(f"{student.url}/fork").status_code == 404
    assert fake_client.post(f"{UNKNOWN}/fork").status_code == 404
    assert fake_client.post("/api/sessions/junk/fork").status_code == 404


def test_a_retried_fork_with_its_key_answers_the_first(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    headers = {"Idempotency-Key": "fork-1"}
    first = fake_client.post(f"{student.url}/fork", json={"version": 4}, headers=headers)
    again = fake_client.post(f"{student.url}/fork", json={"version": 4}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json["session_id"] == first.json["session_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = fake_client.post(f"{student.url}/fork", json={"version": 3}, headers=headers)
    assert other.status_code == 422


def test_sample_counts_spins_and_changes_nothing(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    before = _events(fake_client, student)
    wheel = student.probs(threshold=0.05)
    body = {"n": 1000, "seed": 42, "threshold": 0.05}
    r = fake_client.post(f"{student.url}/sample", json=body)
    assert r.status_code == 200, r.json
    sample = r.json
    assert sample["n"] == 1000 and sample["seed"] == 42 and sample["version"] == before["version"]
    assert [t["token_id"] for t in sample["tokens"]] == [
        t["token_id"] for t in wheel["above_threshold_tokens"]
    ]
    assert [t["probability"] for t in sample["tokens"]] == [
        t["probability"] for t in wheel["above_threshold_tokens"]
    ]
    assert sample["other"]["probability"] == wheel["other_category"]["total_probability"]
    assert sum(t["count"] for t in sample["tokens"]) + sample["other"]["count"] == 1000
    for p, count in [(t["probability"], t["count"]) for t in sample["tokens"]] + [
        (sample["other"]["probability"], sample["other"]["count"])
    ]:
        assert abs(count - 1000 * p) <= 4 * (1000 * p * (1 - p)) ** 0.5 + 1e-9
    assert "display_text" in sample["tokens"][0]
    again = fake_client.post(f"{student.url}/sample", json=body)
    assert again.json == sample
    fresh = fake_client.post(f"{student.url}/sample", json={"n": 50})
    assert fresh.status_code == 200 and isinstance(fresh.json["seed"], int)
    repeat = fake_client.post(f"{student.url}/sample", json={"n": 50, "seed": fresh.json["seed"]})
    assert repeat.json == fresh.json
    after = _events(fake_client, student)
    assert after["version"] == before["version"]
    assert after["token_history"] == before["token_history"]


@pytest.mark.parametrize(
    "body",
    [{"n": 0}, {"n": 1001}, {}, {"n": "5"}, {"n": 5, "seed": -1}, {"n": 5, "temperature": 0}],
)
def test_sample_refuses_bad_input(fake_client: FlaskClient, body: dict[str, Any]) -> None:
    student = _story(fake_client)
    version = _events(fake_client, student)["version"]
    r = fake_client.post(f"{student.url}/sample", json=body)
    assert r.status_code == 400, r.json
    assert _events(fake_client, student)["version"] == version


SAMPLE_RULES = {"top_k": 9, "top_p": 0.8, "min_p": 0.05}


def _kept_shares(wheel: dict[str, Any]) -> dict[int, float]:
    """The kept tokens' probabilities renormalized, computed from the wheel's true
    probabilities and kept flags (not from its sampling_probability)."""
    tokens = wheel["above_threshold_tokens"] + wheel["other_category"]["sample_tokens"]
    kept = {t["token_id"]: t["probability"] for t in tokens if t["kept"]}
    total = sum(kept.values())
    return {token_id: p / total for token_id, p in kept.items()}


def _within_4_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * (n * p * (1 - p)) ** 0.5 + 1e-9


def test_sample_with_rules_lands_only_on_kept_tokens_as_often_as_renormalized(
    fake_client: FlaskClient,
) -> None:
    student = _story(fake_client)
    # threshold 0: every token has a wedge, the whole vocabulary is listed
    wheel = student.probs(threshold=0, other_top_k=0, **SAMPLE_RULES)
    shares = _kept_shares(wheel)
    assert 1 < len(shares) < len(wheel["above_threshold_tokens"])  # the rules cut some
    totals: dict[int, int] = {}
    for seed in range(10):
        r = fake_client.post(
            f"{student.url}/sample", json={"n": 1000, "seed": seed, "threshold": 0, **SAMPLE_RULES}
        )
        assert r.status_code == 200, r.json
        body = r.json
        assert body["sampling"] == wheel["sampling"]
        assert body["other"]["count"] == 0 and body["other"]["kept_token_count"] == 0
        for token, shown in zip(body["tokens"], wheel["above_threshold_tokens"], strict=True):
            assert token["token_id"] == shown["token_id"]
            assert token["kept"] == shown["kept"]
            assert token["sampling_probability"] == shown["sampling_probability"]
            totals[token["token_id"]] = totals.get(token["token_id"], 0) + token["count"]
    assert sum(totals.values()) == 10_000
    for token_id, count in totals.items():
        if token_id not in shares:
            assert count == 0, token_id  # cut tokens are never drawn
        else:
            assert _within_4_sigma(count, 10_000, shares[token_id]), (token_id, count)


def test_sample_with_rules_counts_the_other_wedge_by_its_kept_tokens(
    fake_client: FlaskClient,
) -> None:
    student = _story(fake_client)
    rules = {"top_k": 12}
    wheel = student.probs(threshold=0.05, other_top_k=100, **rules)
    shares = _kept_shares(wheel)
    head = {t["token_id"] for t in wheel["above_threshold_tokens"]}
    other_share = sum(p for token_id, p in shares.items() if token_id not in head)
    assert 0 < other_share < 1
    other = 0
    for seed in range(10):
        body = fake_client.post(
            f"{student.url}/sample", json={"n": 1000, "seed": seed, "threshold": 0.05, **rules}
        ).json
        assert math.isclose(body["other"]["sampling_probability"], other_share, rel_tol=1e-9)
        assert body["other"]["probability"] == wheel["other_category"]["total_probability"]
        assert body["other"]["kept_token_count"] == wheel["other_category"]["kept_token_count"]
        other += body["other"]["count"]
    assert _within_4_sigma(other, 10_000, other_share)


def test_sample_with_rules_repeats_with_its_seed_and_differs_from_no_rules(
    fake_client: FlaskClient,
) -> None:
    student = _story(fake_client)
    body = {"n": 1000, "seed": 5, "threshold": 0, **SAMPLE_RULES}
    first = fake_client.post(f"{student.url}/sample", json=body).json
    assert fake_client.post(f"{student.url}/sample", json=body).json == first
    plain = fake_client.post(f"{student.url}/sample", json={"n": 1000, "seed": 5, "threshold": 0})
    assert [t["count"] for t in plain.json["tokens"]] != [t["count"] for t in first["tokens"]]
    assert all(t["kept"] for t in plain.json["tokens"])
    assert plain.json["sampling"]["kept_token_count"] == plain.json["other"][
        "kept_token_count"
    ] + len(plain.json["tokens"])


SAMPLE_BAD_RULES = [
    {"top_p": 0},
    {"top_k": -1},
    {"min_p": 1},
    {"top_p": 1.5},
    {"min_p": -0.5},
    {"top_k": 1.5},
    {"top_k": "3"},
    {"top_p": True},
]


@pytest.mark.parametrize("bad", SAMPLE_BAD_RULES, ids=str)
def test_sample_refuses_bad_rules_and_stores_nothing(
    fake_client: FlaskClient, bad: dict[str, Any]
) -> None:
    student = _story(fake_client)
    before = _events(fake_client, student)
    r = fake_client.post(f"{student.url}/sample", json={"n": 5, **bad})
    assert r.status_code == 400, r.json
    assert r.json["error"] and r.json["message"]
    after = _events(fake_client, student)
    assert after["version"] == before["version"]
    assert after["token_history"] == before["token_history"]


def test_sample_of_an_unknown_session_or_without_a_prompt(fake_client: FlaskClient) -> None:
    assert fake_client.post(f"{UNKNOWN}/sample", json={"n": 5}).status_code == 404
    student = Student(fake_client)
    assert fake_client.post(f"{student.url}/sample", json={"n": 5}).status_code == 400


def test_openapi_documents_the_lab(fake_client: FlaskClient) -> None:
    spec = fake_client.get("/api/openapi.json").json
    fork = spec["paths"]["/api/sessions/{session_id}/fork"]["post"]
    sample = spec["paths"]["/api/sessions/{session_id}/sample"]["post"]
    assert {"201", "400", "404"} <= set(fork["responses"])
    assert {"200", "400", "404"} <= set(sample["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["Sample"]["properties"]["n"]["description"]
    assert schemas["ForkedSession"]["properties"]["forked_from"]


def test_forks_per_hour_per_client_are_limited(settings: Settings) -> None:
    app = app_with(settings, sessions_per_hour=2)
    client = from_address(app.test_client(), "198.51.100.40")
    student = Student(client)
    student.prompt("The cat")
    for _ in range(2):
        assert client.post(f"{student.url}/fork").status_code == 201
    count = event_count(app)
    body = assert_429(client.post(f"{student.url}/fork"), 3600)
    assert "forked 2 sessions" in body["message"]
    assert event_count(app) == count


def test_a_teacher_reads_a_fork_like_any_session(settings: Settings) -> None:
    app = make_app(settings.with_overrides(teacher_token=TOKEN), FakeModels())  # type: ignore[arg-type]
    client = app.test_client()
    student = _story(client)
    r = client.post(f"{student.url}/fork", json={"version": 4})
    assert r.status_code == 201
    fork = r.json["session_id"]
    teacher = Teacher(client)
    listed = teacher.json("/sessions", class_code="lab-7")
    assert fork in {row["session_id"] for row in listed["sessions"]}
    detail = teacher.json(f"/sessions/{fork}")
    assert detail["timeline"][0]["type"] == "SessionForked"
    assert len(detail["state"]["token_history"]) == 2
    at = teacher.json(f"/sessions/{fork}/replay", version=1)
    assert at["event"]["type"] == "SessionForked"
    assert at["state"]["current_text"] == detail["state"]["current_text"]
    stats = teacher.json(f"/sessions/{fork}/statistics")
    assert stats["session_id"] == fork and stats["version"] == 1
    teacher.get(f"/sessions/{fork}/next-token-probs", version=1)
    for fmt in ("json", "csv"):
        teacher.get(f"/sessions/{fork}/export", format=fmt)
    teacher.get("/classes/lab-7/statistics")
    teacher.get("/classes/lab-7/export", format="csv")


# ---------------------------------------------------------------- greedy vs sampled


def _direct_probs(ids: list[int], temperature: float) -> list[float]:
    """softmax(logits / T) on the fake model's logits, computed here."""
    logits = [x / temperature for x in fake_logits(ids)]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _check_path(path: dict[str, Any], start: list[int], steps: int, temperature: float) -> None:
    """Each token's probability is the direct one after the path so far; the sums, the
    text and the reason the path stopped agree with its tokens."""
    ids = list(start)
    for token in path["tokens"]:
        probs = _direct_probs(ids, temperature)
        assert math.isclose(token["probability"], probs[token["token_id"]], abs_tol=1e-12)
        assert math.isclose(token["log_probability"], math.log(token["probability"]), rel_tol=1e-9)
        assert token["token_text"] == VOCAB[token["token_id"]]
        ids.append(token["token_id"])
    assert path["log_probability"] == pytest.approx(
        sum(t["log_probability"] for t in path["tokens"]), abs=1e-12
    )
    assert path["text"] == "".join(t["token_text"] for t in path["tokens"])
    eos = [t["end_of_sequence"] for t in path["tokens"]]
    assert not any(eos[:-1])  # nothing after an end-of-sequence token
    if path["stopped"] == "end_of_sequence":
        assert eos[-1]
    elif path["stopped"] == "steps":
        assert len(path["tokens"]) == steps and not any(eos)
    else:
        assert path["stopped"] == "context_limit" and len(ids) == FAKE_CONTEXT


def _session_ids(fake_client: FlaskClient, student: Student) -> list[int]:
    state = _events(fake_client, student)
    ids = FakeModels().encode_prompt("fake", state["initial_prompt"])
    return ids + [t["token_id"] for t in state["token_history"]]


def test_compare_greedy_takes_the_argmax_and_sampled_repeats_with_its_seed(
    fake_client: FlaskClient, fake_app: Any
) -> None:
    student = _story(fake_client)
    before = _events(fake_client, student)
    events = event_count(fake_app)
    start = _session_ids(fake_client, student)
    body = {"steps": 12, "seed": 9, "temperature": 0.8, "top_k": 6, "top_p": 0.95}
    r = fake_client.post(f"{student.url}/compare", json=body)
    assert r.status_code == 200, r.json
    out = r.json
    assert r.headers["ETag"] == f'W/"{before["version"]}"'
    assert (out["session_id"], out["version"], out["steps"], out["seed"]) == (
        student.id,
        before["version"],
        12,
        9,
    )
    assert out["temperature"] == 0.8
    assert out["sampling"] == {"top_k": 6, "top_p": 0.95, "min_p": 0.0}
    assert out["current"]["text"] == "".join(t["token_text"] for t in before["token_history"])
    assert math.isclose(out["current"]["log_probability"], before["log_probability"])
    ids = list(start)
    for token in out["greedy"]["tokens"]:
        probs = _direct_probs(ids, 0.8)
        best = max(range(len(probs)), key=lambda i: (probs[i], -i))
        assert token["token_id"] == best
        ids.append(best)
    for name in ("greedy", "sampled"):
        _check_path(out[name], start, 12, 0.8)
    assert fake_client.post(f"{student.url}/compare", json=body).json == out
    other = fake_client.post(f"{student.url}/compare", json={**body, "seed": 10}).json
    assert other["greedy"] == out["greedy"]
    after = _events(fake_client, student)
    assert after["version"] == before["version"]
    assert after["token_history"] == before["token_history"]
    assert event_count(fake_app) == events


def test_compare_samples_only_kept_tokens_and_picks_a_seed(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    start = _session_ids(fake_client, student)
    r = fake_client.post(f"{student.url}/compare", json={"steps": 20, "top_k": 2})
    assert r.status_code == 200, r.json
    out = r.json
    assert isinstance(out["seed"], int) and out["temperature"] == 1.0
    ids = list(start)
    for token in out["sampled"]["tokens"]:
        probs = _direct_probs(ids, 1.0)
        two = sorted(range(len(probs)), key=lambda i: (-probs[i], i))[:2]
        assert token["token_id"] in two  # top_k=2 keeps only these
        ids.append(token["token_id"])
    again = fake_client.post(
        f"{student.url}/compare", json={"steps": 20, "top_k": 2, "seed": out["seed"]}
    )
    assert again.json == out


def test_compare_paths_stop_at_the_end_of_sequence_or_the_context_limit(
    fake_client: FlaskClient,
) -> None:
    student = Student(fake_client)
    prompt = " the cat sat on the mat." * 7  # 42 tokens of the fake's 64
    student.prompt(prompt)
    start = FakeModels().encode_prompt("fake", prompt)
    reasons = set()
    for seed in range(12):
        out = fake_client.post(
            f"{student.url}/compare", json={"steps": 50, "seed": seed, "temperature": 10}
        ).json
        for name in ("greedy", "sampled"):
            _check_path(out[name], start, 50, 10)
            reasons.add(out[name]["stopped"])
    assert reasons == {"end_of_sequence", "context_limit"}
    short = fake_client.post(f"{student.url}/compare", json={"steps": 1, "seed": 0}).json
    assert short["greedy"]["stopped"] in {"steps", "end_of_sequence"}
    assert len(short["greedy"]["tokens"]) == len(short["sampled"]["tokens"]) == 1


COMPARE_BAD = [
    {},
    {"steps": 0},
    {"steps": 51},
    {"steps": "5"},
    {"steps": True},
    {"steps": 5.5},
    {"steps": 5, "seed": -1},
    {"steps": 5, "temperature": 0},
    {"steps": 5, "temperature": 10.5},
    *({"steps": 5, **bad} for bad in SAMPLE_BAD_RULES),
]


@pytest.mark.parametrize("body", COMPARE_BAD, ids=str)
def test_compare_refuses_bad_input_and_stores_nothing(
    fake_client: FlaskClient, fake_app: Any, body: dict[str, Any]
) -> None:
    student = _story(fake_client)
    version = _events(fake_client, student)["version"]
    events = event_count(fake_app)
    r = fake_client.post(f"{student.url}/compare", json=body)
    assert r.status_code == 400, r.json
    assert r.json["error"] and r.json["message"]
    assert _events(fake_client, student)["version"] == version
    assert event_count(fake_app) == events


def test_compare_of_an_unknown_session_without_a_prompt_or_at_the_limit(
    fake_client: FlaskClient,
) -> None:
    assert fake_client.post(f"{UNKNOWN}/compare", json={"steps": 5}).status_code == 404
    assert fake_client.post("/api/sessions/junk/compare", json={"steps": 5}).status_code == 404
    student = Student(fake_client)
    assert fake_client.post(f"{student.url}/compare", json={"steps": 5}).status_code == 400
    student.prompt(" the" * (FAKE_CONTEXT - 1))
    student.append(token_id=2)  # the window is full
    r = fake_client.post(f"{student.url}/compare", json={"steps": 5})
    assert r.status_code == 400 and "context window" in r.json["message"]

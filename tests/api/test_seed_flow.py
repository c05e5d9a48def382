"""The seed's example user flow, end to end on the real bundled model."""

from __future__ import annotations

import math

from flask.testing import FlaskClient

from tests.api.conftest import BUNDLED, Student


def test_seed_example_flow(client: FlaskClient) -> None:
    # 1. create (no model named: the effective default, the bundled model here)
    r = client.post("/api/sessions", json={})
    assert r.status_code == 201
    assert set(r.json) == {"session_id", "model_name", "created_at", "version"}
    assert r.json["version"] == 1 and r.headers["ETag"] == 'W/"1"'
    assert r.json["model_name"] == BUNDLED
    sid = r.json["session_id"]
    url = f"/api/sessions/{sid}"

    # 2. set the prompt
    r = client.post(f"{url}/set-prompt", json={"prompt": "The cat sat on the"})
    assert r.status_code == 200
    assert r.json["current_text"] == "The cat sat on the"
    assert r.json["token_count"] == 5 and r.json["message"] == "Prompt set successfully"

    # 3. the wheel
    r = client.get(f"{url}/next-token-probs", query_string={"threshold": 0.01})
    assert r.status_code == 200
    first = r.json
    assert first["threshold"] == 0.01 and first["temperature"] == 1.0
    assert first["vocabulary_size"] == 49152
    assert len(first["above_threshold_tokens"]) >= 3
    assert first["other_category"]["token_count"] > 40000

    # 4. spin lands on Other: the server samples from the tail
    r = client.post(f"{url}/append-token", json={"category": "other"})
    assert r.status_code == 200
    other = r.json
    token = other["appended_token"]
    assert token["category"] == "other" and token["sampled_from_other"] is True
    assert token["probability"] < 0.01
    assert other["previous_text"] == "The cat sat on the"
    assert other["current_text"] == "The cat sat on the" + token["token_text"]
    info = other["other_category_info"]
    assert info["total_probability"] == first["other_category"]["total_probability"]
    assert info["token_count"] == first["other_category"]["token_count"]
    assert info["selected_token_rank"] >= 1
    assert other["token_history"][0]["selected_at"]

    # 5. undo
    r = client.post(f"{url}/undo")
    assert r.status_code == 200
    assert r.json["current_text"] == "The cat sat on the"
    assert r.json["removed_token"]["token_id"] == token["token_id"]
    assert r.json["token_history"] == [] and r.json["message"] == "Last token removed successfully"

    # 6. the same distribution again
    r = client.get(f"{url}/next-token-probs", query_string={"threshold": 0.01})
    # versions count events: the undo is one more, though the text is back where it was
    assert (first["version"], r.json["version"]) == (2, 4)
    assert {**r.json, "version": 2} == first

    # 7. pick an explicit wedge by id and text
    top = first["above_threshold_tokens"][0]
    r = client.post(
        f"{url}/append-token", json={"token_id": top["token_id"], "token_text": top["token_text"]}
    )
    assert r.status_code == 200
    appended = r.json["appended_token"]
    assert appended["probability"] == top["probability"]  # what the wheel showed
    assert appended["category"] == "above_threshold" and appended["rank"] == 1
    assert "other_category_info" not in r.json

    # state
    r = client.get(url)
    assert r.status_code == 200
    state = r.json
    assert state["initial_prompt"] == "The cat sat on the"
    assert state["current_text"] == "The cat sat on the" + top["token_text"]
    assert state["generation_count"] == 1 and state["model_name"] == BUNDLED
    assert state["token_history"][0]["token_id"] == top["token_id"]
    assert state["last_accessed"] >= state["created_at"]

    # 9. clean up
    r = client.delete(url)
    assert r.status_code == 200
    assert r.json == {"message": "Session deleted successfully", "session_id": sid, "version": 6}
    for method, path in (
        ("get", url),
        ("post", f"{url}/set-prompt"),
        ("get", f"{url}/next-token-probs"),
        ("post", f"{url}/append-token"),
        ("post", f"{url}/undo"),
        ("delete", url),
    ):
        body = (
            {"prompt": "x"} if "prompt" in path else {"token_id": 1} if "append" in path else None
        )
        r = getattr(client, method)(path, json=body)
        assert r.status_code == 404, (method, path)
        assert r.json["error"] and r.json["message"]


def test_distribution_invariants(student: Student) -> None:
    student.prompt("Once upon a time, there was a")
    for threshold, temperature, k in [
        (0.01, 1.0, 10),
        (0.05, 0.5, 3),
        (0.001, 2.0, 100),
        (0.0, 1.0, 0),
        (1.0, 1.0, 5),
        (0.02, 0.1, 10),
    ]:
        d = student.probs(threshold=threshold, temperature=temperature, other_top_k=k)
        head = d["above_threshold_tokens"]
        tail = d["other_category"]
        probs = [t["probability"] for t in head]
        assert probs == sorted(probs, reverse=True)
        assert all(p >= threshold for p in probs)
        assert len(head) + tail["token_count"] == d["vocabulary_size"] == 49152
        assert math.isclose(d["total_above_threshold_probability"], sum(probs), abs_tol=1e-9)
        assert math.isclose(
            d["total_above_threshold_probability"] + tail["total_probability"], 1.0, abs_tol=1e-9
        )
        samples = tail["sample_tokens"]
        assert len(samples) == min(k, tail["token_count"])
        assert all(s["probability"] < threshold for s in samples)
        sample_probs = [s["probability"] for s in samples]
        assert sample_probs == sorted(sample_probs, reverse=True)
        if samples and len(samples) < tail["token_count"]:
            # the samples are the top of the tail: nothing left in Other beats the last one
            assert tail["total_probability"] - sum(sample_probs) <= (
                sample_probs[-1] * (tail["token_count"] - len(samples)) + 1e-9
            )
        for t in head + samples:
            assert math.isclose(math.log(t["probability"]), t["log_probability"], abs_tol=1e-9)
        assert d["threshold"] == threshold and d["temperature"] == temperature


def test_temperature_sharpens_and_flattens(student: Student) -> None:
    student.prompt("The capital of France is")
    cold = student.probs(temperature=0.5, threshold=0.0, other_top_k=0)
    warm = student.probs(temperature=2.0, threshold=0.0, other_top_k=0)
    top_cold = cold["above_threshold_tokens"][0]
    top_warm = warm["above_threshold_tokens"][0]
    assert top_cold["token_id"] == top_warm["token_id"]
    assert top_cold["probability"] > top_warm["probability"]


def test_explicit_token_in_the_tail_is_recorded_as_other(student: Student) -> None:
    student.prompt("The cat sat on the")
    d = student.probs(threshold=0.05)
    sample = d["other_category"]["sample_tokens"][2]
    r = student.append(token_id=sample["token_id"], threshold=0.05)
    t = r["appended_token"]
    assert t["category"] == "other" and t["sampled_from_other"] is False
    assert t["selection"] == "explicit" and t["probability"] == sample["probability"]
    assert r["other_category_info"]["selected_token_rank"] == 3
    assert r["other_category_info"]["total_probability"] == d["other_category"]["total_probability"]


def test_token_text_alone_appends_that_token(student: Student) -> None:
    student.prompt("The cat sat on the")
    r = student.append(token_text=" mat")
    assert r["current_text"] == "The cat sat on the mat"
    state = student.state()
    assert state["token_history"][0]["token_text"] == " mat"


def test_set_prompt_resets_generated_tokens(student: Student) -> None:
    student.prompt("Hello")
    student.append(token_text=" world")
    r = student.prompt("Goodbye")
    assert r["current_text"] == "Goodbye"
    state = student.state()
    assert state["generation_count"] == 0 and state["initial_prompt"] == "Goodbye"

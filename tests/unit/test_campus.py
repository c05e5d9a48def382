"""``tokenwheel campus`` refuses, before starting anything, what a campus cannot run on.

(Starting one is tests/system/test_campus.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokenwheel.campus import HAPROXY_CONFIG, SERVER_PORTS, Campus, CampusError, campus_environment


def test_a_campus_needs_postgresql() -> None:
    with pytest.raises(CampusError, match="needs PostgreSQL"):
        campus_environment({})  # the SQLite default
    with pytest.raises(CampusError, match="needs PostgreSQL"):
        campus_environment({"TOKENWHEEL_DATABASE_URL": "sqlite:////tmp/x.sqlite3"})


def test_a_campus_needs_redis_to_answer() -> None:
    env = {
        "TOKENWHEEL_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "TOKENWHEEL_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens on port 1
    }
    with pytest.raises(CampusError, match=r"Redis at redis://127.0.0.1:1/0 does not answer"):
        campus_environment(env)


def test_a_bad_setting_is_named() -> None:
    with pytest.raises(CampusError, match="TOKENWHEEL_SESSION_TTL"):
        campus_environment({"TOKENWHEEL_SESSION_TTL": "0"})


def test_the_campus_runs_as_many_servers_as_the_configuration_lists(tmp_path: Path) -> None:
    servers = re.findall(r"^\s*server\s+(s\d)\s", HAPROXY_CONFIG.read_text(), re.MULTILINE)
    assert servers == [f"s{n}" for n in range(1, len(SERVER_PORTS) + 1)]
    with pytest.raises(CampusError, match="lists 3 servers"):
        Campus(server_ports=(8001, 8002), log_dir=tmp_path)

"""The layers of DESIGN.md, lint and types hold (the same checks as `make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["lint-imports"],
        ["ruff", "check", "tokenwheel", "tests"],
        ["ruff", "format", "--check", "tokenwheel", "tests"],
        ["mypy"],
    ],
    ids=lambda c: c[0] if c[0] != "ruff" else f"ruff-{c[1]}",
)
def test_tool_passes(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_domain_imports_only_the_standard_library() -> None:
    """Belt and braces for the import-linter contract: scan the source directly."""
    allowed = set(sys.stdlib_module_names) | {"tokenwheel"}
    for path in (ROOT / "tokenwheel" / "domain").glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in {"import", "from"} and not words[1].startswith("."):
                top = words[1].split(".")[0]
                assert top in allowed, f"{path.name}: {line}"
                if top == "tokenwheel":
                    assert words[1].startswith("tokenwheel.domain"), f"{path.name}: {line}"

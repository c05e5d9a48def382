"""The layers hold where the import linter cannot look: the domain's imports, and the
unit tier's (tests/unit imports neither torch nor transformers, so it stays fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")

# Imports each module in turn and names the first one that brings in a heavy package.
FIRST_HEAVY_IMPORT = """
import importlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
    heavy = sorted(m for m in sys.argv[1].split(",") if m in sys.modules)
    if heavy:
        print(name, "imports", ", ".join(heavy))
        break
"""


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


def test_the_unit_tier_imports_neither_torch_nor_transformers() -> None:
    """In a fresh interpreter, as pytest would: the conftest files, then every module."""
    unit = Path(__file__).parent
    modules = ["tests.conftest", "tests.unit"]
    modules += [f"tests.unit.{p.stem}" for p in sorted(unit.glob("*.py")) if p.stem != "__init__"]
    result = subprocess.run(
        [sys.executable, "-c", FIRST_HEAVY_IMPORT, ",".join(HEAVY), *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "", result.stdout

"""The layers hold where the import linter cannot look: the domain's imports, and the
unit tier's (tests/unit imports neither torch nor transformers, so it stays fast)."""

from __future__ import annotations

import ast
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


MAX_FILE_LINES = 400
MAX_CLASS_LINES = 250


def test_one_module_one_job_no_file_or_class_grows_past_its_limit() -> None:
    """The size limits issue 11 set (a module over 400 lines or a class over 250 does more
    than one job): a new use case goes into a new module, not into the largest one."""
    too_long = []
    for path in sorted((ROOT / "tokenwheel").rglob("*.py")):
        source = path.read_text()
        name = str(path.relative_to(ROOT))
        lines = len(source.splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_long.append(f"{name}: class {node.name}, {size} lines")
    assert too_long == []

"""Worker processes for the multi-process tests: ``python -m <module> <args>`` that print
"ready", wait for one line on stdin, then print their result as one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    def __init__(
        self, module: str, args: list[str], count: int, env: dict[str, str] | None = None
    ) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    def __enter__(self) -> Workers:
        for proc in self.procs:  # every worker built its app before any starts
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        return self

    def finish(self, line: str, timeout: float) -> list[dict[str, Any]]:
        """Send ``line`` to every worker, wait for them, check they ran clean."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line)
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=timeout) for proc in self.procs]
        for proc, (_, err) in zip(self.procs, outputs, strict=True):
            assert proc.returncode == 0, err
            assert "Traceback" not in err and "locked" not in err, err
        return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

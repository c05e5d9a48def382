"""``tokenwheel campus`` (``make campus``): docs/operations.md's campus on one machine.

HAProxy, configured by ``deploy/haproxy.cfg`` (the file an operator copies to a real
balancer), on 127.0.0.1:8080 in front of three ``tokenwheel serve`` on
127.0.0.1:8001-8003, all on the PostgreSQL database of ``TOKENWHEEL_DATABASE_URL`` and
on Redis. It runs in the foreground; Ctrl-C or SIGTERM stops everything it started, and
so does the death of any of it. tests/system/test_campus.py starts its campus with the
same class, on free ports.

Each child runs in a process group of its own, so that stopping a server stops its
gunicorn workers and their inference processes too, and so that a Ctrl-C in the
terminal reaches this process only, which then stops the children in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from .settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
HAPROXY = "/usr/sbin/haproxy"  # Debian's package; `haproxy` on the PATH is tried first
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FRONT_PORT = 8080
SERVER_PORTS = (8001, 8002, 8003)  # deploy/haproxy.cfg lists three servers
HOST = "127.0.0.1"
READY_TIMEOUT = 300.0  # three servers loading their model at once on a small machine
STOP_TIMEOUT = 20.0


class CampusError(Exception):
    """The campus cannot start; the message says why and what to do."""


@dataclass
class Child:
    """One process the campus started (a server or HAProxy), in its own process group."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    terminated: bool = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group: gunicorn, its workers, their inference processes."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)

    def terminate(self) -> None:
        """Ask the group to stop (gunicorn finishes its requests and stops)."""
        if self.alive() and not self.terminated:
            self.signal_group(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL what is left after STOP_TIMEOUT; then make sure
        nothing of the group outlived its leader."""
        self.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.signal_group(signal.SIGKILL)  # stragglers whose leader already exited


def campus_environment(env: Mapping[str, str]) -> tuple[str, str]:
    """The database and Redis URLs a campus needs, or CampusError saying what is wrong."""
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        raise CampusError(str(exc)) from None
    if not settings.database_url.startswith("postgresql"):
        raise CampusError(
            "a campus needs PostgreSQL: set TOKENWHEEL_DATABASE_URL="
            "postgresql+psycopg://user@host/dbname (several servers share one database; "
            "SQLite's file belongs to one machine)"
        )
    redis_url = settings.redis_url or DEFAULT_REDIS_URL
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise CampusError(
            f"Redis at {redis_url} does not answer ({exc}); the servers count rate limits "
            "there together. Start it, or set TOKENWHEEL_REDIS_URL."
        ) from None
    return settings.database_url, redis_url


def find_haproxy() -> str:
    found = shutil.which("haproxy") or (HAPROXY if Path(HAPROXY).exists() else None)
    if found is None:
        raise CampusError("HAProxy is not installed: apt-get install haproxy")
    return found


def _die_with_us() -> Callable[[], None] | None:
    """A preexec function that asks Linux to SIGTERM the child when the thread that
    started it ends (PR_SET_PDEATHSIG), so that even a SIGKILLed campus leaves no
    servers behind. Start children from the main thread, which ends with the process."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    set_death_signal, term = 1, int(signal.SIGTERM)

    def preexec() -> None:
        prctl(set_death_signal, term)

    return preexec


class Campus:
    """HAProxy in front of three ``tokenwheel serve``; a context manager that stops all
    it started. ``echo`` copies the children's output to standard output, each line
    prefixed with its name; it is also kept in ``log_dir/<name>.log``."""

    def __init__(
        self,
        *,
        port: int = FRONT_PORT,
        server_ports: Sequence[int] = SERVER_PORTS,
        env: Mapping[str, str] | None = None,
        log_dir: Path = Path("instance") / "campus",
        echo: bool = True,
        config: Path = HAPROXY_CONFIG,
        serve_args: Sequence[str] = (),
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        if len(server_ports) != len(SERVER_PORTS):
            raise CampusError(f"{config.name} lists {len(SERVER_PORTS)} servers")
        self.port = port
        self.server_ports = tuple(server_ports)
        self.base_env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.echo = echo
        self.config = config
        self.serve_args = tuple(serve_args)
        self.ready_timeout = ready_timeout
        self.servers: list[Child] = []
        self.haproxy: Child | None = None
        self._echo_lock = threading.Lock()

    # ------------------------------------------------------------------ starting

    def start(self) -> None:
        """Check the environment, migrate once, start the servers, wait until each is
        ready, start HAProxy and wait until it routes to them. On failure, everything
        started so far is stopped and CampusError says why."""
        database_url, redis_url = campus_environment(self.base_env)
        haproxy = find_haproxy()
        if not self.config.exists():
            raise CampusError(f"no HAProxy configuration at {self.config}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._migrate(database_url)
        env = {
            **self.base_env,
            "TOKENWHEEL_DATABASE_URL": database_url,
            "TOKENWHEEL_REDIS_URL": redis_url,
            # HAProxy appends the client's address to X-Forwarded-For
            "TOKENWHEEL_TRUSTED_PROXIES": self.base_env.get("TOKENWHEEL_TRUSTED_PROXIES") or "1",
        }
        try:
            for n, port in enumerate(self.server_ports, start=1):
                command = [sys.executable, "-m", "tokenwheel", "serve"]
                command += ["--host", HOST, "--port", str(port), *self.serve_args]
                self.servers.append(self._spawn(f"s{n}", port, command, env))
            deadline = time.monotonic() + self.ready_timeout
            for server in self.servers:
                self._wait_ready(server, deadline)
            front = {
                **self.base_env,
                "TOKENWHEEL_CAMPUS_BIND": f"{HOST}:{self.port}",
                **{
                    f"TOKENWHEEL_CAMPUS_SERVER{n}": f"{HOST}:{port}"
                    for n, port in enumerate(self.server_ports, start=1)
                },
            }
            command = [haproxy, "-f", str(self.config), "-db"]
            self.haproxy = self._spawn("haproxy", self.port, command, front)
            self._wait_ready(self.haproxy, time.monotonic() + 30)
        except BaseException:
            self.stop()
            raise

    def _migrate(self, database_url: str) -> None:
        """Once, before any server starts (each server's own migrate then finds the
        schema current; three first migrations at once would race)."""
        from .store import migrate
        from .store.database import make_engine

        engine = make_engine(database_url)
        try:
            migrate.upgrade(engine)
        except Exception as exc:
            raise CampusError(f"cannot migrate the database: {exc}") from exc
        finally:
            engine.dispose()

    def _spawn(self, name: str, port: int, command: list[str], env: dict[str, str]) -> Child:
        log = self.log_dir / f"{name}.log"
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_us(),  # only a prctl call, looked up before the fork
        )
        assert proc.stdout is not None
        threading.Thread(
            target=self._copy_output,
            args=(name, proc.stdout, log),
            name=f"campus-{name}-output",
            daemon=True,
        ).start()
        return Child(name, port, proc, log)

    def _copy_output(self, name: str, stream: IO[bytes], log: Path) -> None:
        prefix = f"{name:>7} | ".encode()
        with stream, log.open("ab") as out:
            for line in stream:
                out.write(line)
                out.flush()
                if self.echo:
                    with self._echo_lock:
                        sys.stdout.buffer.write(prefix + line)
                        sys.stdout.buffer.flush()

    def _wait_ready(self, child: Child, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not child.alive():
                raise CampusError(
                    f"{child.name} exited with {child.proc.returncode}; see {child.log}"
                )
            if ready(child.port):
                return
            time.sleep(0.5)
        raise CampusError(f"{child.name} was not ready in time; see {child.log}")

    # ------------------------------------------------------------------ running, stopping

    def children(self) -> list[Child]:
        return [*self.servers, *([self.haproxy] if self.haproxy else [])]

    def watch(self, stop: threading.Event | None = None) -> Child | None:
        """Wait until one of the children exits (returned) or ``stop`` is set (None)."""
        while stop is None or not stop.is_set():
            for child in self.children():
                if not child.alive():
                    return child
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        """HAProxy first (no new requests), then the servers, all at once; each whole
        process group."""
        if self.haproxy is not None:
            self.haproxy.stop()
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Campus:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def ready(port: int, path: str = "/api/ready") -> bool:
    """Whether 127.0.0.1:``port`` answers ``path`` with 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class Stopped(Exception):
    """SIGTERM arrived: stop the campus as Ctrl-C would."""


def run(campus: Campus) -> int:
    """The foreground command: start, report, wait for a signal or a dead child, stop."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        campus.start()
        print(
            f"Token Wheel campus on http://{HOST}:{campus.port}/ : HAProxy in front of "
            + ", ".join(f"{s.name} on :{s.port}" for s in campus.servers)
            + f" (logs in {campus.log_dir}/). Ctrl-C stops it.",
            flush=True,
        )
        dead = campus.watch()
        assert dead is not None
        print(
            f"tokenwheel campus: {dead.name} exited with {dead.proc.returncode}; "
            f"stopping the others (see {dead.log})",
            file=sys.stderr,
            flush=True,
        )
        return 1
    except (KeyboardInterrupt, Stopped):
        print("tokenwheel campus: stopping", file=sys.stderr, flush=True)
        return 0
    except CampusError as exc:
        print(f"tokenwheel campus: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        # a second Ctrl-C must not leave half the campus running
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        campus.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
